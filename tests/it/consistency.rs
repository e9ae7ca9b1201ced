//! The consistency token: a command's `Herald-Position`, sent back on a read
//! as `Herald-Min-Position` (or `?min_position=`), makes the read wait until
//! the read models it uses have applied it, else a 503 with `Retry-After`;
//! `Prefer: return=minimal` lets a command answer without waiting for them.

use std::time::{Duration, Instant};

use herald_tests::app::{Resp, device_body, read};
use herald_tests::{Backend, TestApp, TestDb, on_both};
use serde_json::json;

async fn minimal(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> Resp {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("prefer", "return=minimal")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read(response).await
}

on_both!(a_write_read_back_with_its_token_is_seen, token_round_trip);
async fn token_round_trip(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::spawn_on(db, |c| c.read_your_writes_timeout = Duration::from_secs(1)).await;
    let key = app.create_app("a").await;

    let created = minimal(
        &app,
        reqwest::Method::PUT,
        "/v1/devices/d",
        &key.token,
        device_body("t"),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body,
        serde_json::Value::Null,
        "a minimal answer has no body"
    );
    assert_eq!(created.header("preference-applied"), Some("return=minimal"));
    let position = created
        .header("herald-position")
        .unwrap_or_default()
        .to_owned();
    assert!(position.parse::<i64>().is_ok_and(|p| p > 0), "{position}");

    let seen = app.get_at("/v1/devices/d", &key.token, &position).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.body["push_token"], "t");

    let patched = minimal(
        &app,
        reqwest::Method::PATCH,
        "/v1/devices/d/properties",
        &key.token,
        json!({"properties": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(patched.status, 204);
    let position = patched
        .header("herald-position")
        .unwrap_or_default()
        .to_owned();
    let search = app
        .post(
            &format!("/v1/devices/search?min_position={position}"),
            &key.token,
            json!({"conditions": {"key": "plan", "operator": "str_eq", "value": "pro"}}),
        )
        .await;
    assert_eq!(
        search.body["devices"].as_array().map(Vec::len),
        Some(1),
        "{}",
        search.body
    );
    // The token rides beside a route's own query parameters.
    let list = app
        .get(
            &format!("/v1/notifications?status=draft&min_position={position}"),
            &key.token,
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.body);

    // A position the read models have not reached: a clear 503, in bounded time.
    let started = Instant::now();
    let behind = app.get_at("/v1/devices/d", &key.token, "999999999").await;
    let problem = behind.problem(503);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("read-model-behind")),
        "{problem}"
    );
    assert!(behind.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(5));

    for bad in ["abc", "-1", "1.5"] {
        let resp = app.get_at("/v1/devices/d", &key.token, bad).await;
        assert_eq!(resp.invalid_fields(), ["Herald-Min-Position"], "{bad}");
    }
    let resp = app.get("/v1/devices/d?min_position=x", &key.token).await;
    assert_eq!(resp.invalid_fields(), ["min_position"]);
}
