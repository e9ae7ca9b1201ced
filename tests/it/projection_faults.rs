//! A projection that cannot apply an event stops alone: for that event's app
//! only. Other apps, other projections and every write go on; reads of the
//! stuck app from that projection answer 503 naming it; `/readyz` and
//! `GET /v1/admin/projections` name the projection, the position and the
//! error; an operator retries or skips it (API or CLI), which loses nothing:
//! the skipped event is recorded and the app's later events are applied.

use std::process::Command;
use std::time::{Duration, Instant};

use domain::Metadata;
use domain::ids::AppId;
use herald_tests::app::{AppKey, ROOT_TOKEN, device_body};
use herald_tests::{Backend, TestApp, on_both};
use infra::store::{AppendRequest, ExpectedVersion, NewEvent};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// Appends, past the edge, a device event the devices read model cannot
/// decode (as an event written by a buggy or older build would be).
async fn poison(app: &TestApp, key: &AppKey, device: &str) -> i64 {
    let app_id = AppId(key.app_id.parse().unwrap_or_else(|e| panic!("{e}")));
    let request = AppendRequest {
        stream: format!("device:{device}"),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "device.registered".into(),
            schema_version: 1,
            data: json!({"not": "a registration"}),
        }],
        metadata: Metadata::system(app_id, "test"),
        new_key: None,
    };
    app.herald
        .store()
        .append(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .last_position
}

async fn admin(app: &TestApp) -> Value {
    let resp = app.get("/v1/admin/projections", ROOT_TOKEN).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.body
}

fn faults_of(status: &Value, name: &str) -> Vec<Value> {
    status["projections"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .and_then(|p| p["faults"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits (bounded) until the devices model's faults satisfy `done`.
async fn until(app: &TestApp, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let faults = faults_of(&admin(app).await, "devices");
        if done(&faults) {
            return faults;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {faults:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both!(
    a_projection_that_cannot_apply_an_event_stops_for_that_app_alone,
    stops_alone
);
async fn stops_alone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    assert_eq!(
        app.put("/v1/devices/before", &a.token, device_body("t"))
            .await
            .status,
        201
    );
    let bad = poison(&app, &a, "broken").await;
    let faults = until(&app, "the fault never showed", |f| !f.is_empty()).await;
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["app_id"], json!(a.app_id));
    assert_eq!(faults[0]["position"], json!(bad));
    assert_eq!(faults[0]["event_type"], "device.registered");
    assert!(faults[0]["error"].as_str().is_some_and(|e| !e.is_empty()));

    // Writes go on, for every app; app A's later devices wait in the log.
    assert_eq!(
        app.put("/v1/devices/after", &a.token, device_body("t"))
            .await
            .status,
        201
    );
    let stopped = app.get("/v1/devices/before", &a.token).await;
    let problem = stopped.problem(503);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("devices") && d.contains(&bad.to_string())),
        "{problem}"
    );
    // Other apps read and write as usual.
    assert_eq!(
        app.put("/v1/devices/x", &b.token, device_body("t"))
            .await
            .status,
        201
    );
    assert_eq!(app.get("/v1/devices/x", &b.token).await.status, 200);
    // Other read models serve app A (a user's read counts their devices:
    // it needs the devices model too).
    assert_eq!(
        app.put("/v1/users/u", &a.token, json!({"name": "Ann"}))
            .await
            .status,
        201
    );
    app.get("/v1/users/u", &a.token).await.problem(503);
    assert_eq!(app.get("/v1/notifications", &a.token).await.status, 200);
    assert_eq!(app.get("/v1/api-keys", &a.token).await.status, 200);
    assert!(!app.create_app("c").await.token.is_empty());

    // Readiness names it, without taking the node out.
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["status"], "degraded");
    let named = ready.body["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        named
            .iter()
            .any(|p| p["name"] == "devices" && p["faults"][0]["position"] == json!(bad)),
        "{}",
        ready.body
    );

    // A retry without a fix fails again: the fault stays, the event is kept.
    let path = format!("/v1/admin/projections/devices/faults/{}", a.app_id);
    let retry = app
        .post(&format!("{path}/retry"), ROOT_TOKEN, json!({}))
        .await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    let faults = until(&app, "the retry was never done", |f| {
        f.first().is_some_and(|f| f["action"].is_null())
    })
    .await;
    assert_eq!(faults[0]["position"], json!(bad));
    // Another position than the one stopped at is refused.
    let wrong = app
        .post(
            &format!("{path}/skip?position={}", bad + 1),
            ROOT_TOKEN,
            json!({}),
        )
        .await;
    wrong.problem(404);
    assert_eq!(
        app.post(&format!("{path}/skip"), &a.token, json!({}))
            .await
            .status,
        403
    );

    // Skipping records the event and applies the app's later ones.
    let skip = app
        .post(
            &format!("{path}/skip?position={bad}"),
            ROOT_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(skip.status, 202, "{}", skip.body);
    until(&app, "the skip was never done", <[Value]>::is_empty).await;
    for device in ["before", "after"] {
        let resp = app.get(&format!("/v1/devices/{device}"), &a.token).await;
        assert_eq!(resp.status, 200, "{device}: {}", resp.body);
    }
    let status = admin(&app).await;
    let skipped = status["skipped"].as_array().cloned().unwrap_or_default();
    assert!(
        skipped.iter().any(|s| s["name"] == "devices"
            && s["position"] == json!(bad)
            && s["app_id"] == json!(a.app_id)),
        "{status}"
    );
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
}

on_both!(an_operator_skips_from_the_command_line, skip_from_the_cli);
async fn skip_from_the_cli(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let bad = poison(&app, &a, "broken").await;
    until(&app, "the fault never showed", |f| !f.is_empty()).await;
    assert_eq!(
        app.put("/v1/devices/later", &a.token, device_body("t"))
            .await
            .status,
        201
    );
    let args = app.db.cli_args();
    let run = |extra: &[String]| {
        Command::new(BIN)
            .args(["projections", "skip", "devices", "--app", &a.app_id])
            .args(extra)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let refused = run(&["--position".into(), (bad + 5).to_string()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not stopped"));
    let out = run(&["--position".into(), bad.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until(&app, "the skip was never done", <[Value]>::is_empty).await;
    assert_eq!(app.get("/v1/devices/later", &a.token).await.status, 200);
}
