//! Integrity and time travel: tampering found at the exact position (API and
//! CLI), and reads "as of" an instant.

use std::process::Command;

use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use projections::db::Db;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// Runs SQL as someone with direct access to the database would, append-only
/// triggers out of the way.
async fn tamper(db: &Db, statements: &[String]) {
    match db {
        Db::Sqlite(s) => {
            let mut all = vec![
                "DROP TRIGGER IF EXISTS events_no_update".to_owned(),
                "DROP TRIGGER IF EXISTS events_no_delete".to_owned(),
            ];
            all.extend(statements.iter().cloned());
            for sql in all {
                sqlx::raw_sql(&sql)
                    .execute(&s.writer)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        Db::Postgres(p) => {
            let mut all = vec!["ALTER TABLE events DISABLE TRIGGER USER".to_owned()];
            all.extend(statements.iter().cloned());
            for sql in all {
                sqlx::raw_sql(&sql)
                    .execute(&p.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

fn positions(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .collect()
}

on_both!(verify_names_the_exact_position_of_tampering, tampering);
async fn tampering(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let keys = [
        app.create_app("data").await,
        app.create_app("order").await,
        app.create_app("deletion").await,
        app.create_app("intact").await,
    ];
    for i in 0..4 {
        for key in &keys {
            let body = device_body(&format!("t{i}"));
            assert!(
                app.put(&format!("/v1/devices/d{i}"), &key.token, body)
                    .await
                    .status
                    < 300
            );
        }
    }
    for key in &keys {
        let report = app.get("/v1/audit/verify", &key.token).await;
        assert_eq!(report.status, 200);
        assert_eq!(report.body["ok"], json!(true), "{}", report.body);
        assert_eq!(report.body["events"], json!(6));
    }
    let intact = app.get("/v1/audit/verify", &keys[3].token).await.body;
    let data = positions(&app.events(&keys[0].token).await);
    let order = positions(&app.events(&keys[1].token).await);
    let deletion = positions(&app.events(&keys[2].token).await);

    // Data: one event's body changed in place.
    // Order: two events of one app swap positions.
    // Deletion: an event in the middle removed.
    let (d, o1, o2, x) = (data[3], order[2], order[4], deletion[3]);
    tamper(
        &app.db.db,
        &[
            format!(r#"UPDATE events SET data = '{{"external_id":"d1","push_token":"evil"}}' WHERE position = {d}"#),
            format!("UPDATE events SET position = -1 WHERE position = {o1}"),
            format!("UPDATE events SET position = {o1} WHERE position = {o2}"),
            format!("UPDATE events SET position = {o2} WHERE position = -1"),
            format!("DELETE FROM events WHERE position = {x}"),
        ],
    )
    .await;

    let expect = [(0, d), (1, o1), (2, deletion[4])];
    for (i, position) in expect {
        let report = app.get("/v1/audit/verify", &keys[i].token).await;
        assert_eq!(report.body["ok"], json!(false), "{}", report.body);
        assert_eq!(report.body["position"], json!(position), "{}", report.body);
        assert!(
            report.body["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }
    let still = app.get("/v1/audit/verify", &keys[3].token).await.body;
    assert_eq!(still, intact, "other apps' chains are untouched");

    // The CLI reports the same and fails.
    let mut command = Command::new(BIN);
    command.arg("verify").args(app.db.cli_args());
    let out = command.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(reports.len(), 4, "{stdout}");
    let mut broken: Vec<i64> = reports
        .iter()
        .filter(|r| r["ok"] == json!(false))
        .filter_map(|r| r["position"].as_i64())
        .collect();
    let mut wanted = vec![d, o1, deletion[4]];
    wanted.sort_unstable();
    broken.sort_unstable();
    assert_eq!(broken, wanted);
    let one = Command::new(BIN)
        .arg("verify")
        .args(app.db.cli_args())
        .args(["--app", keys[3].app_id.as_str()])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    // Progress goes to stderr (plain lines when not on a terminal), with
    // the app's own event count as the total.
    let stderr = String::from_utf8_lossy(&one.stderr);
    let app_events = app.events(&keys[3].token).await.len();
    assert!(
        stderr.contains(&format!("{app_events}/{app_events} events (100.0 %)")),
        "{stderr}"
    );
    // An app the log does not hold is not a chain that verifies.
    let unknown = Command::new(BIN)
        .arg("verify")
        .args(app.db.cli_args())
        .args(["--app", "0190a8a2-0000-7000-8000-000000000000"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("the log holds no app"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// The recorded time of the app's last event, percent-encoded.
pub(crate) async fn stamp(app: &TestApp, token: &str) -> String {
    let events = app.events(token).await;
    events
        .last()
        .and_then(|e| e["recorded_at"].as_str())
        .map(herald_tests::app::segment)
        .unwrap_or_default()
}

on_both!(reads_as_of_an_instant_rebuild_the_past, time_travel);
async fn time_travel(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let before = stamp(&app, &a.token).await;
    let body = device_body("t1");
    assert_eq!(app.put("/v1/devices/d1", &a.token, body).await.status, 201);
    let props = json!({"properties": {"plan": "free"}});
    assert_eq!(
        app.patch("/v1/devices/d1/properties", &a.token, props)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({"name": "Ann"}))
            .await
            .status,
        201
    );
    let t1 = stamp(&app, &a.token).await;
    let props = json!({"properties": {"plan": "pro"}});
    assert_eq!(
        app.patch("/v1/devices/d1/properties", &a.token, props)
            .await
            .status,
        200
    );
    let status = json!({"status": "suspended", "reason": "fraud"});
    assert_eq!(
        app.put("/v1/users/u1/status", &a.token, status)
            .await
            .status,
        200
    );
    assert_eq!(app.delete("/v1/devices/d1", &a.token).await.status, 204);

    let then = app
        .get(&format!("/v1/devices/d1?as_of={t1}"), &a.token)
        .await;
    assert_eq!(then.status, 200, "{}", then.body);
    assert_eq!(then.body["properties"], json!({"plan": "free"}));
    assert_eq!(
        app.get("/v1/devices/d1", &a.token).await.status,
        404,
        "deleted now"
    );
    assert_eq!(
        app.get(&format!("/v1/devices/d1?as_of={before}"), &a.token)
            .await
            .status,
        404,
        "did not exist then"
    );
    let user_then = app.get(&format!("/v1/users/u1?as_of={t1}"), &a.token).await;
    assert_eq!(user_then.status, 200);
    assert_eq!(user_then.body["status"], "active");
    assert_eq!(user_then.body["name"], "Ann");
    assert_eq!(user_then.body["device_count"], 0, "d1 was never theirs");
    let user_now = app.get("/v1/users/u1", &a.token).await;
    assert_eq!(user_now.body["status"], "suspended");
    assert_eq!(
        app.get(&format!("/v1/users/u1?as_of={before}"), &a.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/v1/devices/d1?as_of=last-week", &a.token)
            .await
            .invalid_fields(),
        ["as_of"]
    );
}
