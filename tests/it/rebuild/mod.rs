//! Rebuilding read models beside the live ones: the result equals the
//! incrementally built model, nothing written during the rebuild is lost,
//! and an interrupted rebuild resumes. What operators see of it (the CLI,
//! the admin report, a second rebuild refused) is in `operators`.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::runtime::RuntimeError;
use infra::runtime::read_models as rebuildable_projections;
use infra::runtime::rebuild::{Rebuilt, rebuild, rebuild_in_batches};
use projections::db::Db;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

mod operators;

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

pub(super) fn device(token: &str, user: Option<&str>) -> serde_json::Value {
    json!({"push_token": token, "send_platform": "fcm", "device_platform": "android", "user_id": user})
}

/// A bit of everything every projection handles.
pub(super) async fn history(app: &TestApp) -> String {
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

pub(super) async fn caught_up(app: &TestApp) {
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

/// Rebuilds every read model and checks it yields the rows the
/// incremental models hold.
pub(crate) async fn rebuild_keeps_the_models(app: &TestApp) {
    let incremental = dump(app.herald.db()).await;
    rebuild_all(app).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dump(app.herald.db()).await,
        incremental,
        "rebuilt models differ"
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
