//! What operators see of rebuilds: the projections' status and a rebuild
//! from the CLI (its progress, its steps, a failure), and a second rebuild
//! refused while one runs, with where the first one is.

use std::process::Command;

use herald_tests::{Backend, TestApp, on_both};
use infra::runtime::rebuild::Progress;
use infra::runtime::rebuild_guard;
use serde_json::json;

use super::{BIN, caught_up, device, dump, history, rebuild_all};

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
