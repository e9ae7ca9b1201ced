//! Rebuilding read models beside the live ones: the result equals the
//! incrementally built model, nothing written during the rebuild is lost,
//! an interrupted rebuild resumes, a second one at once is refused, and
//! the CLI and admin endpoint report.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::runtime::RuntimeError;
use infra::runtime::read_models as rebuildable_projections;
use infra::runtime::rebuild::{Progress, Rebuilt, rebuild, rebuild_in_batches};
use infra::runtime::rebuild_guard;
use projections::db::Db;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// Every row of every projection table, as sorted text.
pub(crate) async fn dump(db: &Db) -> Vec<String> {
    let mut rows = Vec::new();
    for projection in rebuildable_projections() {
        for table in projection.tables() {
            let mut lines: Vec<String> = match db {
                Db::Sqlite(s) => {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                            .bind(*table)
                            .fetch_all(&s.reader)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    let row = columns
                        .iter()
                        .map(|c| format!("quote({c})"))
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    sqlx::query_scalar(&format!("SELECT {row} FROM {table}"))
                        .fetch_all(&s.reader)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"))
                }
                Db::Postgres(p) => sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
                    .fetch_all(&p.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            };
            lines.sort();
            rows.extend(lines.into_iter().map(|l| format!("{table}: {l}")));
        }
    }
    rows
}

fn device(token: &str, user: Option<&str>) -> serde_json::Value {
    json!({"push_token": token, "send_platform": "fcm", "device_platform": "android", "user_id": user})
}

/// A bit of everything every projection handles.
async fn history(app: &TestApp) -> String {
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    let extra = app
        .post(
            "/v1/api-keys",
            &a.token,
            json!({"name": "ci", "roles": ["read"]}),
        )
        .await;
    let extra_id = extra.body["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{extra_id}"), &a.token)
            .await
            .status,
        204
    );
    for i in 0..12 {
        let key = if i % 4 == 0 { &b } else { &a };
        let user = format!("u{}", i % 3);
        let d = format!("/v1/devices/d{i}");
        assert!(
            app.put(&d, &key.token, device(&format!("t{i}"), Some(&user)))
                .await
                .status
                < 300
        );
        let props = json!({"properties": {"n": i, "plan": if i % 2 == 0 { "pro" } else { "free" }, "tags": ["x", format!("t{i}")]}});
        assert_eq!(
            app.patch(&format!("{d}/properties"), &key.token, props)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.put(
            "/v1/users/u1",
            &a.token,
            json!({"name": "Ann", "email": "ann@example.com"})
        )
        .await
        .status,
        201
    );
    let status = json!({"status": "suspended", "reason": "x"});
    assert_eq!(
        app.put("/v1/users/u1/status", &a.token, status)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put("/v1/users/u2", &a.token, json!({})).await.status,
        201
    );
    assert_eq!(app.delete("/v1/users/u2", &a.token).await.status, 204);
    assert_eq!(app.delete("/v1/devices/d3", &a.token).await.status, 204);
    a.token
}

async fn caught_up(app: &TestApp) {
    let head = app
        .herald
        .store()
        .head()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        app.herald
            .projections()
            .wait_for_all(head, Duration::from_secs(20))
            .await,
        "projections did not catch up"
    );
}

/// Every rebuildable read model rebuilt and switched in, quietly.
pub(crate) async fn rebuild_all(app: &TestApp) -> Result<Rebuilt, RuntimeError> {
    rebuild(
        app.herald.db(),
        app.herald.store().as_ref(),
        &rebuildable_projections(),
        |_| {},
    )
    .await
}

on_both!(
    a_rebuild_equals_the_incremental_model_and_loses_nothing,
    equals_incremental
);
async fn equals_incremental(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = history(&app).await;
    caught_up(&app).await;
    let incremental = dump(app.herald.db()).await;
    assert!(incremental.len() > 40, "{incremental:?}");

    // Writes keep coming while the rebuild runs.
    let writer = async {
        for i in 0..20 {
            let body = device(&format!("w{i}"), None);
            assert!(
                app.put(&format!("/v1/devices/w{i}"), &token, body)
                    .await
                    .status
                    < 300
            );
        }
    };
    let all = rebuildable_projections();
    let rebuilding = rebuild_in_batches(
        app.herald.db(),
        app.herald.store().as_ref(),
        &all,
        7,
        |_| {},
    );
    let (rebuilt, ()) = tokio::join!(rebuilding, writer);
    let rebuilt = rebuilt.unwrap_or_else(|e| panic!("rebuild failed: {e}"));
    assert_eq!(
        rebuilt.projections,
        [
            "apps",
            "devices",
            "users",
            "notifications",
            "device_notifications",
            "feature_flags"
        ]
    );
    caught_up(&app).await;
    for i in 0..20 {
        let resp = app.get(&format!("/v1/devices/w{i}"), &token).await;
        assert_eq!(resp.status, 200, "w{i} lost at the switch");
    }
    for i in 0..20 {
        assert_eq!(
            app.delete(&format!("/v1/devices/w{i}"), &token)
                .await
                .status,
            204
        );
    }
    caught_up(&app).await;
    // Deleting the extra devices leaves exactly the incremental rows.
    assert_eq!(dump(app.herald.db()).await, incremental);

    // And a quiet rebuild reproduces it row for row.
    let again = rebuild_all(&app).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.events > 0);
    assert_eq!(dump(app.herald.db()).await, incremental);
    let search = app
        .post(
            "/v1/devices/search",
            &token,
            json!({"conditions": {"key": "plan", "operator": "str_eq", "value": "pro"}}),
        )
        .await;
    assert_eq!(search.status, 200);
    assert!(!search.body["devices"].as_array().is_none_or(Vec::is_empty));
}

on_both!(an_interrupted_rebuild_resumes, resumes);
async fn resumes(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::spawn_on(db, |_| {}).await;
    history(&app).await;
    caught_up(&app).await;
    let incremental = dump(app.herald.db()).await;
    let head = app.herald.store().head().await.unwrap_or_default();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let herald = app.herald.clone();
    let task = tokio::spawn(async move {
        let projections: Vec<Arc<dyn projections::ReadModel>> = rebuildable_projections();
        rebuild_in_batches(herald.db(), herald.store().as_ref(), &projections, 5, |p| {
            let _ = tx.send(p.position);
        })
        .await
    });
    // Stopped once a checkpoint has moved (progress is told before that
    // too, as events are read).
    let mut first = 0;
    while first == 0 {
        first = rx.recv().await.unwrap_or_else(|| panic!("no progress"));
    }
    task.abort();
    let _ = task.await;
    assert!(first < head);
    assert_eq!(
        dump(app.herald.db()).await,
        incremental,
        "live models untouched"
    );

    let done = rebuild_all(&app).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (done.events as i64) < head,
        "resumed from the shadow's checkpoint: read {} of {head}",
        done.events
    );
    assert_eq!(done.position, head);
    assert_eq!(dump(app.herald.db()).await, incremental);
}

on_both!(
    operators_see_projection_status_and_rebuild_from_the_cli,
    cli
);
async fn cli(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = history(&app).await;
    caught_up(&app).await;
    let incremental = dump(app.herald.db()).await;
    let args = app.db.cli_args();

    let status = app
        .get("/v1/admin/projections", herald_tests::app::ROOT_TOKEN)
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let list = status.body["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "apps",
            "devices",
            "users",
            "notifications",
            "device_notifications",
            "feature_flags",
            "change_queues",
            "webhooks",
            "notification_jobs"
        ]
    );
    let kinds: Vec<&str> = list.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert_eq!(kinds[..6], ["read_model"; 6]);
    assert_eq!(kinds[6..], ["reactor_feed"; 3]);
    assert!(
        list.iter()
            .all(|p| p["lag_events"] == json!(0) && p["position"] == p["head"])
    );
    assert_eq!(app.get("/v1/admin/projections", &token).await.status, 403);

    let out = Command::new(BIN)
        .args(["projections", "status"])
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 9);

    let out = Command::new(BIN)
        .args(["projections", "rebuild", "devices"])
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("rebuilt devices"), "{stderr}");
    // Where the time went, step by step (SQLite copies into its live file).
    let order: &[&str] = match backend {
        Backend::Sqlite => &["bulk", "indexes", "copy", "catch-up", "switch"],
        Backend::Postgres => &["bulk", "indexes", "catch-up", "switch"],
    };
    let line = stderr
        .lines()
        .find(|l| l.contains("herald: steps: "))
        .unwrap_or_else(|| panic!("no steps line: {stderr}"));
    let named: Vec<&str> = line
        .split("steps: ")
        .nth(1)
        .unwrap_or_default()
        .split(", ")
        .filter_map(|s| s.split(' ').next())
        .collect();
    assert_eq!(named, order, "{line}");
    assert_eq!(dump(app.herald.db()).await, incremental);
    // The server carries on from the switched-in model.
    assert_eq!(
        app.put("/v1/devices/after", &token, device("z", None))
            .await
            .status,
        201
    );
    assert_eq!(app.get("/v1/devices/after", &token).await.status, 200);

    // One model's progress is counted in that model's events: it ends at
    // all of them, and its total was right from the start.
    let user_events: i64 = projections::on_db!(app.herald.db(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE stream LIKE 'user:%'")
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert!(user_events > 0);
    let before = dump(app.herald.db()).await;
    // A rebuild that fails (here: it cannot open the users' sealed values
    // with another secret key) says why in its row, which no longer runs;
    // the next run resumes and finishes.
    let out = Command::new(BIN)
        .args(["projections", "rebuild", "users"])
        .args(&args)
        .args(["--secret-key", "another-secret-key-another-secret-key-0"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let failed = app
        .get("/v1/admin/projections", herald_tests::app::ROOT_TOKEN)
        .await;
    let r = &failed.body["rebuild"];
    assert_eq!(r["projections"], json!(["users"]), "{}", failed.body);
    assert_eq!(r["running"], false, "{}", failed.body);
    assert_eq!(r["eta_seconds"], json!(null), "{}", failed.body);
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("key")),
        "{}",
        failed.body
    );
    assert!(!r["error"].to_string().contains("another-secret"));
    assert_eq!(dump(app.herald.db()).await, before);
    let out = Command::new(BIN)
        .args(["projections", "rebuild", "users"])
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(" events (")).collect();
    let whole = format!("{user_events}/{user_events} events (100.0 %)");
    assert!(
        lines.last().is_some_and(|l| l.starts_with(&whole)),
        "{whole} expected last: {stderr}"
    );
    let total = format!("/{user_events} events");
    assert!(lines.iter().all(|l| l.contains(&total)), "{stderr}");
    assert_eq!(dump(app.herald.db()).await, before);
    let done = app
        .get("/v1/admin/projections", herald_tests::app::ROOT_TOKEN)
        .await;
    assert_eq!(done.body["rebuild"], json!(null), "{}", done.body);

    let out = Command::new(BIN)
        .args(["projections", "rebuild", "nope"])
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no read model named"));
}

on_both!(
    a_second_rebuild_is_refused_while_one_runs_and_the_running_one_is_reported,
    one_at_a_time
);
async fn one_at_a_time(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    history(&app).await;
    caught_up(&app).await;
    let incremental = dump(app.herald.db()).await;
    let root = herald_tests::app::ROOT_TOKEN;
    let none = app.get("/v1/admin/projections", root).await;
    assert_eq!(none.body["rebuild"], json!(null), "{}", none.body);

    // A rebuild of `devices` is running (it holds the lock and reports).
    let mut running = rebuild_guard::take(app.herald.db(), &["devices"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let at = Progress {
        position: 3,
        head: 10,
        applied: 3,
        total: 10,
        events_per_second: 2.0,
        step: "bulk load",
    };
    running.report(at).await;
    let shown = app.get("/v1/admin/projections", root).await;
    let r = &shown.body["rebuild"];
    assert_eq!(r["projections"], json!(["devices"]), "{}", shown.body);
    assert_eq!(
        (r["position"].clone(), r["head"].clone()),
        (json!(3), json!(10))
    );
    assert_eq!(r["running"], true);
    assert_eq!(
        (r["events_read"].clone(), r["events_total"].clone()),
        (json!(3), json!(10))
    );
    assert_eq!(r["percent"], 30.0);
    assert_eq!(r["step"], "bulk load");
    assert_eq!(r["eta_seconds"], 3.5);

    let refused = rebuild_all(&app).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("another rebuild is running"), "{message}");
    assert!(
        message.contains("devices") && message.contains("3 of 10 events read"),
        "{message}"
    );
    let args = app.db.cli_args();
    let out = Command::new(BIN)
        .args(["projections", "rebuild"])
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("another rebuild is running"), "{stderr}");
    assert_eq!(dump(app.herald.db()).await, incremental, "nothing changed");

    // Once it is done, the next one runs.
    running.finish().await.unwrap_or_else(|e| panic!("{e}"));
    let gone = app.get("/v1/admin/projections", root).await;
    assert_eq!(gone.body["rebuild"], json!(null));
    let done = rebuild_all(&app).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dump(app.herald.db()).await, incremental);
    assert!(done.events > 0);
    let after = app.get("/v1/admin/projections", root).await;
    assert_eq!(
        after.body["rebuild"],
        json!(null),
        "a finished rebuild leaves no row"
    );
}

on_both!(
    a_rebuild_from_the_cli_runs_beside_a_server_that_keeps_writing,
    beside_writes
);
async fn beside_writes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = history(&app).await;
    caught_up(&app).await;
    let args = app.db.cli_args();
    // Another process than the server's: on SQLite only the file's locks
    // keep the two apart, and the server writes all along.
    let mut rebuilding = Command::new(BIN)
        .args(["projections", "rebuild"])
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut written = 0;
    let status = loop {
        let put = app
            .put(
                &format!("/v1/devices/beside-{written}"),
                &token,
                device("t", Some("u1")),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.body);
        written += 1;
        if let Some(status) = rebuilding.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
    };
    let mut stderr = String::new();
    if let Some(mut err) = rebuilding.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    assert!(status.success(), "after {written} writes: {stderr}");
    assert!(stderr.contains("rebuilt "), "{stderr}");
    for i in 0..written {
        let read = app.get(&format!("/v1/devices/beside-{i}"), &token).await;
        assert_eq!(read.status, 200, "beside-{i} of {written}: {}", read.body);
    }
}
