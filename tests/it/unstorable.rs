//! What the log accepts, every backend and every read model can apply: NUL
//! in any string of a body, path or query, a fraction or a number beyond 64
//! bits where the log would keep it, are a 400 naming the field, the same on
//! SQLite and PostgreSQL, and nothing is written.

use herald_tests::app::{AppKey, Resp, device_body, read};
use herald_tests::{Backend, TestApp, on_both};
use serde_json::json;

use crate::webhooks::allow_loopback;

/// Sends a raw JSON text (a number serde_json cannot hold, say).
async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &str,
) -> Resp {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    read(response).await
}

async fn event_count(app: &TestApp, key: &AppKey) -> usize {
    app.events(&key.token).await.len()
}

on_both!(nul_in_bodies_is_a_400_naming_the_field, nul_in_bodies);
async fn nul_in_bodies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    assert_eq!(
        app.put("/v1/devices/d", &key.token, device_body("t"))
            .await
            .status,
        201
    );
    let before = event_count(&app, &key).await;

    let cases = [
        (
            "/v1/devices/d/properties",
            json!({"properties": {"name": "a\u{0}b"}}),
            "properties.name",
        ),
        (
            "/v1/devices/d/properties",
            json!({"properties": {"tags": ["ok", "\u{0}"]}}),
            "properties.tags[1]",
        ),
    ];
    for (path, body, field) in cases {
        let resp = app.patch(path, &key.token, body).await;
        assert_eq!(resp.invalid_fields(), [field], "{path}");
    }
    let mut with_user = device_body("t");
    with_user["user_id"] = json!("u\u{0}");
    let resp = app.put("/v1/devices/d", &key.token, with_user).await;
    assert_eq!(resp.invalid_fields(), ["user_id"]);
    let resp = app
        .put("/v1/users/u", &key.token, json!({"name": "Ada\u{0}"}))
        .await;
    assert_eq!(resp.invalid_fields(), ["name"]);
    let search = json!({"conditions": {"key": "plan", "operator": "str_eq", "value": "\u{0}"}});
    let resp = app.post("/v1/devices/search", &key.token, search).await;
    assert_eq!(resp.invalid_fields(), ["conditions.value"]);

    // Nothing was written, and the read models still move: a later write
    // is read back at once, in this app and in a new one.
    assert_eq!(event_count(&app, &key).await, before);
    let resp = app
        .patch(
            "/v1/devices/d/properties",
            &key.token,
            json!({"properties": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let other = app.create_app("b").await;
    assert_eq!(
        app.put("/v1/devices/x", &other.token, device_body("t"))
            .await
            .status,
        201
    );
    let resp = app.get("/v1/devices/x", &other.token).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let found = app
        .post(
            "/v1/devices/search",
            &key.token,
            json!({"conditions": {"key": "plan", "operator": "str_eq", "value": "pro"}}),
        )
        .await;
    assert_eq!(
        found.body["devices"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.body
    );
}

on_both!(nul_in_paths_and_queries_is_a_400, nul_in_paths);
async fn nul_in_paths(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let t = &key.token;
    let before = event_count(&app, &key).await;
    assert_eq!(
        app.get("/v1/devices/%00", t).await.invalid_fields(),
        ["path"]
    );
    assert_eq!(
        app.put("/v1/devices/a%00", t, device_body("t"))
            .await
            .invalid_fields(),
        ["path"]
    );
    assert_eq!(
        app.put("/v1/users/%00", t, json!({}))
            .await
            .invalid_fields(),
        ["path"]
    );
    assert_eq!(
        app.get("/v1/streams/%00/events", t).await.invalid_fields(),
        ["path"]
    );
    for name in ["actor", "stream", "type", "correlation_id"] {
        let resp = app.get(&format!("/v1/events?{name}=x%00y"), t).await;
        assert_eq!(resp.invalid_fields(), [name]);
    }
    assert_eq!(event_count(&app, &key).await, before);
}

on_both!(templates_hold_only_64_bit_integers, template_numbers);
async fn template_numbers(backend: Backend) {
    let Some(db) = herald_tests::TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::spawn_on(db, allow_loopback).await;
    let key = app.create_app("a").await;
    let url = "http://127.0.0.1:9/hook";
    let refused = [
        (
            format!(r#"{{"url": "{url}", "payload_template": {{"a": 0.0}}}}"#),
            "payload_template.a",
        ),
        (
            format!(
                r#"{{"url": "{url}", "payload_template": {{"n": [1, 123456789012345678901234]}}}}"#
            ),
            "payload_template.n[1]",
        ),
    ];
    for (body, field) in &refused {
        let resp = send_raw(
            &app,
            reqwest::Method::POST,
            "/v1/webhooks",
            &key.token,
            body,
        )
        .await;
        assert_eq!(resp.invalid_fields(), [*field], "{body}");
    }
    let created = app
        .post(
            "/v1/webhooks",
            &key.token,
            json!({"url": url, "payload_template": {"n": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    let before = event_count(&app, &key).await;
    let resp = send_raw(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key.token,
        r#"{"payload_template": {"x": 1.5}}"#,
    )
    .await;
    assert_eq!(resp.invalid_fields(), ["payload_template.x"]);
    assert_eq!(event_count(&app, &key).await, before);
}
