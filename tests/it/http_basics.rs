//! HTTP conventions: problem documents everywhere, limits, health, OpenAPI.

use std::time::{Duration, Instant};

use herald_tests::backend::{pg_addr, pg_url_via};
use herald_tests::proxy::Proxy;
use herald_tests::{Backend, TestApp, TestDb, on_both};
use reqwest::Method;
use serde_json::json;

on_both!(every_error_is_a_problem_document, problems_everywhere);
async fn problems_everywhere(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let unknown = app.get("/v1/nothing-here", &key.token).await;
    unknown.problem(404);
    let wrong_method = app
        .send(
            Method::PATCH,
            "/v1/devices/x",
            Some(&key.token),
            Some(&json!({})),
        )
        .await;
    wrong_method.problem(405);
    assert!(
        wrong_method
            .header("allow")
            .is_some_and(|a| a.contains("PUT"))
    );
    let bad_path = app.get("/v1/devices/%FF%FE", &key.token).await;
    bad_path.problem(400);
    // A parameter given twice is named, as every invalid field is.
    let twice = app.get("/v1/events?stream=a&stream=b", &key.token).await;
    assert_eq!(twice.invalid_fields(), ["stream"], "{}", twice.body);
    // Valid JSON a field cannot take (two kinds of authentication at once)
    // names that field; it is not "invalid JSON".
    let both = app
        .post(
            "/v1/webhooks",
            &key.token,
            json!({"url": "https://example.com/hook",
                   "auth": {"bearer": "x", "basic": {"username": "a", "password": "b"}}}),
        )
        .await;
    assert_eq!(both.invalid_fields(), ["auth"], "{}", both.body);
}

on_both!(bodies_over_one_mebibyte_are_refused, body_limit);
async fn body_limit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let before = app.events(&key.token).await.len();
    let huge = json!({"push_token": "x".repeat(1 << 20), "send_platform": "fcm", "device_platform": "android"});
    app.put("/v1/devices/big", &key.token, huge)
        .await
        .problem(413);
    // Just under the limit parses (and is refused for its content, not its size).
    let padded = json!({"push_token": "x".repeat((1 << 20) - 200), "send_platform": "fcm", "device_platform": "android"});
    assert_eq!(
        app.put("/v1/devices/big", &key.token, padded)
            .await
            .invalid_fields(),
        ["push_token"]
    );
    assert_eq!(app.events(&key.token).await.len(), before);
}

on_both!(health_and_readiness, health);
async fn health(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let healthz = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (healthz.status, healthz.body["status"].as_str()),
        (200, Some("ok"))
    );
    let readyz = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (readyz.status, readyz.body["status"].as_str()),
        (200, Some("ready"))
    );
    assert!(healthz.header("x-request-id").is_some());
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await;
    let given = given.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        given
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
}

/// With the database cut off: not ready, commands 503, nothing panics; and
/// all is well again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_503_then_recovers() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start(pg_addr().await).await;
    let pool = TestDb::connect_pg(&db.schema, &pg_url_via(proxy.addr), 6).await;
    let app = TestApp::spawn_with(db, pool, |_| {}).await;
    let key = app.create_app("a").await;
    let body = json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android"});
    assert_eq!(
        app.put("/v1/devices/d1", &key.token, body.clone())
            .await
            .status,
        201
    );

    // While it is down every answer is a fast 503 with Retry-After, the
    // first one too (no waiting out the pool's 5 s acquire timeout).
    proxy.cut();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let ready = app.send(Method::GET, "/readyz", None, None).await;
        ready.problem(503);
        assert!(ready.header("retry-after").is_some());
        let down = app
            .put(&format!("/v1/devices/d{i}x"), &key.token, body.clone())
            .await;
        down.problem(503);
        assert!(down.header("retry-after").is_some());
        slowest = slowest.max(started.elapsed() / 2);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an outage answer took {slowest:?}"
    );
    assert_eq!(
        app.send(Method::GET, "/healthz", None, None).await.status,
        200
    );

    // Back within a second of the database.
    proxy.restore().await;
    let restored = Instant::now();
    loop {
        if app.send(Method::GET, "/readyz", None, None).await.status == 200 {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(5),
            "not ready again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovery = restored.elapsed();
    assert!(
        recovery < Duration::from_secs(1),
        "recovered after {recovery:?}"
    );
    eprintln!("outage: slowest 503 {slowest:?}, ready again {recovery:?} after the database");
    assert_eq!(
        app.put("/v1/devices/d2", &key.token, body).await.status,
        201
    );
    assert_eq!(app.get("/v1/devices/d1", &key.token).await.status, 200);
}

on_both!(the_openapi_document_covers_every_route, openapi);
async fn openapi(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let doc = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let expected = [
        ("post", "/v1/apps"),
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", "/v1/api-keys/{id}"),
        ("put", "/v1/devices/{external_id}"),
        ("get", "/v1/devices/{external_id}"),
        ("get", "/v1/events"),
        ("delete", "/v1/devices/{external_id}"),
        ("patch", "/v1/devices/{external_id}/properties"),
        ("get", "/v1/devices/{external_id}/events"),
        ("post", "/v1/devices/search"),
        ("put", "/v1/users/{user_id}"),
        ("get", "/v1/users/{user_id}"),
        ("delete", "/v1/users/{user_id}"),
        ("put", "/v1/users/{user_id}/status"),
        ("get", "/v1/users/{user_id}/devices"),
        ("delete", "/v1/users/{user_id}/devices/{external_id}"),
        ("patch", "/v1/apps/{id}"),
        ("post", "/v1/webhooks"),
        ("get", "/v1/webhooks"),
        ("patch", "/v1/webhooks/{id}"),
        ("post", "/v1/webhooks/{id}/rotate-secret"),
        ("get", "/v1/webhooks/{id}/attempts"),
        ("post", "/v1/webhooks/{id}/messages/{message_id}/resend"),
        ("post", "/v1/webhooks/{id}/recover"),
        ("post", "/v1/notifications"),
        ("get", "/v1/notifications"),
        ("patch", "/v1/notifications/{id}"),
        ("post", "/v1/notifications/{id}/launch"),
        ("put", "/v1/notifications/{id}/status"),
        ("get", "/v1/devices/{external_id}/notifications"),
        ("get", "/v1/users/{user_id}/notifications"),
        ("post", "/v1/users/{user_id}/forget"),
        ("post", "/v1/notifications/send"),
        ("post", "/v1/feature-flags"),
        ("get", "/v1/feature-flags"),
        ("patch", "/v1/feature-flags/{name}"),
        ("get", "/v1/feature-flags/evaluate"),
        ("get", "/v1/feature-flags/evaluate/{name}"),
        ("put", "/v1/push-credentials/{provider}"),
        ("get", "/v1/usage"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
    ];
    for (method, path) in expected {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
}
