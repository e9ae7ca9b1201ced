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

on_both!(
    every_command_answers_its_position_and_minimal_creates_their_address,
    command_answers
);
async fn command_answers(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::spawn_on(db, crate::webhooks::allow_loopback).await;
    let key = app.create_app("a").await;
    let position_of = |resp: &Resp| {
        resp.header("herald-position")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no Herald-Position: {} {}", resp.status, resp.body))
    };
    let put = app.put("/v1/devices/d", &key.token, device_body("t")).await;
    assert_eq!(put.status, 201, "{}", put.body);

    // Creations with `return=minimal`: no body, the new resource's address
    // and position; read back with that position, it is there.
    let creations = [
        (
            "/v1/notifications",
            json!({"title": "t", "body": "b", "external_ids": ["d"]}),
            201,
            "/v1/notifications/",
        ),
        (
            "/v1/feature-flags",
            json!({"name": "beta"}),
            201,
            "/v1/feature-flags/beta",
        ),
        (
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook"}),
            201,
            "/v1/webhooks/",
        ),
        (
            "/v1/notifications/send",
            json!({"title": "now", "body": "b", "external_ids": ["d"]}),
            202,
            "/v1/notifications/",
        ),
    ];
    let mut before = position_of(&put);
    for (path, body, status, address) in creations {
        let created = minimal(&app, reqwest::Method::POST, path, &key.token, body).await;
        assert_eq!(created.status, status, "{path}: {}", created.body);
        assert_eq!(created.body, serde_json::Value::Null, "{path}");
        let location = created.header("location").unwrap_or_default().to_owned();
        assert!(location.starts_with(address), "{path}: {location:?}");
        let position = position_of(&created);
        assert!(position > before, "{path}: {position} after {before}");
        before = position;
        let seen = app
            .get_at(&location, &key.token, &position.to_string())
            .await;
        assert_eq!(seen.status, 200, "{location}: {}", seen.body);
    }

    // Without the preference, the same answer carries the resource and its
    // address too.
    let flag = app
        .post("/v1/feature-flags", &key.token, json!({"name": "gamma"}))
        .await;
    assert_eq!(flag.status, 201, "{}", flag.body);
    assert_eq!(flag.body["name"], "gamma");
    assert_eq!(flag.header("location"), Some("/v1/feature-flags/gamma"));

    // Every kind of command answers its position, a no-op its stream's.
    let patched = app
        .patch(
            "/v1/feature-flags/gamma",
            &key.token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let changed = position_of(&patched);
    assert!(changed > position_of(&flag));
    let again = app
        .patch(
            "/v1/feature-flags/gamma",
            &key.token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(
        position_of(&again),
        changed,
        "a no-op answers its stream's last event"
    );
    let queue = app
        .post("/v1/change-queues", &key.token, json!({"name": "audit"}))
        .await;
    assert_eq!(queue.status, 201, "{}", queue.body);
    assert!(position_of(&queue) > changed);
    let deleted = app.delete("/v1/feature-flags/gamma", &key.token).await;
    assert_eq!(deleted.status, 204);
    assert!(position_of(&deleted) > position_of(&queue));
    // A refused command answers no position.
    let refused = app.delete("/v1/feature-flags/nope", &key.token).await;
    assert_eq!(refused.status, 404);
    assert_eq!(refused.header("herald-position"), None);
    // Reads answer none.
    let read = app.get("/v1/devices/d", &key.token).await;
    assert_eq!(read.header("herald-position"), None);
}

on_both!(
    a_consistency_token_given_twice_is_refused,
    token_given_twice
);
async fn token_given_twice(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    app.put("/v1/devices/d", &key.token, device_body("t")).await;
    // Header and query disagreeing, or the query repeated: whichever won,
    // a wait the client asked for could be dropped silently.
    let both = app
        .get_at("/v1/devices/d?min_position=1", &key.token, "999999999")
        .await;
    assert_eq!(both.invalid_fields(), ["min_position"], "{}", both.body);
    let twice = app
        .get(
            "/v1/devices/d?min_position=1&min_position=999999999",
            &key.token,
        )
        .await;
    assert_eq!(twice.invalid_fields(), ["min_position"], "{}", twice.body);
    let twice_in_headers = app
        .client
        .get(app.url("/v1/devices/d"))
        .bearer_auth(&key.token)
        .header("herald-min-position", "1")
        .header("herald-min-position", "999999999")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let twice_in_headers = read(twice_in_headers).await;
    assert_eq!(
        twice_in_headers.invalid_fields(),
        ["Herald-Min-Position"],
        "{}",
        twice_in_headers.body
    );
}

on_both!(
    commands_and_operators_reports_take_no_consistency_token,
    token_where_it_applies
);
async fn token_where_it_applies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let sent = |method: reqwest::Method, path: &str, token: &str, position: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(token)
            .header("Herald-Min-Position", position)
    };
    // A command writes to the log, which is always current: a token, even
    // a malformed one or one far ahead, means nothing there.
    for position in ["abc", "999999999"] {
        let put = sent(reqwest::Method::PUT, "/v1/devices/d", &key.token, position)
            .json(&device_body("t"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let put = read(put).await;
        assert!(put.status < 300, "{position}: {}", put.body);
    }
    // Nor does it on the operators' reports, which wait for no read model.
    let root = herald_tests::app::ROOT_TOKEN;
    for path in ["/v1/admin/projections", "/v1/admin/nodes"] {
        let got = sent(reqwest::Method::GET, path, root, "abc")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(got).await.status, 200, "{path}");
    }
    // A read by POST takes it like any read.
    let search = sent(
        reqwest::Method::POST,
        "/v1/devices/search",
        &key.token,
        "abc",
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(search).await.invalid_fields(), ["Herald-Min-Position"]);
}
