//! Tenancy: apps, API keys, roles.

use herald_tests::app::ROOT_TOKEN;
use herald_tests::{Backend, TestApp, on_both};
use reqwest::Method;
use serde_json::json;

on_both!(
    the_root_token_creates_apps_with_a_full_key,
    root_creates_apps
);
async fn root_creates_apps(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let resp = app
        .post("/v1/apps", ROOT_TOKEN, json!({"name": "  Acme  "}))
        .await;
    assert_eq!(resp.status, 201, "{:?}", resp.body);
    assert_eq!(resp.body["name"], "Acme");
    assert!(
        resp.body["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
    assert!(
        resp.body["created_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
    );
    assert_eq!(
        resp.body["api_key"]["roles"],
        json!(["admin", "write", "read", "audit"])
    );
    let token = resp.body["api_key"]["token"].as_str().unwrap_or_default();
    assert!(token.starts_with("hk_"));
    // The new key works at once (read-your-writes).
    assert_eq!(app.get("/v1/api-keys", token).await.status, 200);
    // The token never reaches the log.
    let events = serde_json::to_string(&app.events(token).await).unwrap_or_default();
    assert!(!events.contains(token));
    assert!(events.contains("api_key.created"));
}

on_both!(apps_need_the_root_token, apps_need_root);
async fn apps_need_root(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let none = app
        .send(Method::POST, "/v1/apps", None, Some(&json!({"name": "x"})))
        .await;
    none.problem(401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    app.post("/v1/apps", "hr_wrong", json!({"name": "x"}))
        .await
        .problem(401);
    let key = app.create_app("a").await;
    app.post("/v1/apps", &key.token, json!({"name": "x"}))
        .await
        .problem(403);
    // The root token is not an app key.
    app.get("/v1/api-keys", ROOT_TOKEN).await.problem(403);
    assert_eq!(
        app.post("/v1/apps", ROOT_TOKEN, json!({"name": ""}))
            .await
            .invalid_fields(),
        ["name"]
    );
    assert_eq!(
        app.post("/v1/apps", ROOT_TOKEN, json!({}))
            .await
            .invalid_fields(),
        ["name"]
    );
    assert_eq!(
        app.post("/v1/apps", ROOT_TOKEN, json!({"name": "x".repeat(201)}))
            .await
            .invalid_fields(),
        ["name"]
    );
}

on_both!(keys_carry_roles_and_are_revoked_at_once, key_lifecycle);
async fn key_lifecycle(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.create_app("a").await;
    let created = app
        .post(
            "/v1/api-keys",
            &admin.token,
            json!({"name": "reader", "roles": ["read"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["roles"], json!(["read"]));
    let reader = created.body["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reader_id = created.body["id"].as_str().unwrap_or_default().to_owned();

    // Listing shows keys without tokens.
    let list = app.get("/v1/api-keys", &admin.token).await;
    assert_eq!(list.status, 200);
    let keys = list.body["api_keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.get("token").is_none() && k["id"].is_string())
    );
    assert!(!list.body.to_string().contains(&reader));

    // Role checks: read yes, write no, admin no.
    assert_eq!(app.get("/v1/devices/nope", &reader).await.status, 404);
    let put = app
        .put(
            "/v1/devices/d",
            &reader,
            json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android"}),
        )
        .await;
    assert!(
        put.problem(403)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("write"))
    );
    app.get("/v1/api-keys", &reader).await.problem(403);
    app.get("/v1/events", &reader).await.problem(403);

    // Revoked: 401 from then on, and gone from the list.
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{reader_id}"), &admin.token)
            .await
            .status,
        204
    );
    app.get("/v1/devices/nope", &reader).await.problem(401);
    assert_eq!(
        app.get("/v1/api-keys", &admin.token).await.body["api_keys"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    app.delete(&format!("/v1/api-keys/{reader_id}"), &admin.token)
        .await
        .problem(404);
}

on_both!(another_apps_key_is_not_found, cross_app_keys);
async fn cross_app_keys(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    let b_key = app
        .post(
            "/v1/api-keys",
            &b.token,
            json!({"name": "x", "roles": ["read"]}),
        )
        .await;
    let b_key_id = b_key.body["id"].as_str().unwrap_or_default();
    app.delete(&format!("/v1/api-keys/{b_key_id}"), &a.token)
        .await
        .problem(404);
    app.delete("/v1/api-keys/not-a-uuid", &a.token)
        .await
        .problem(404);
    // B's key still works.
    let b_token = b_key.body["token"].as_str().unwrap_or_default();
    assert_eq!(app.get("/v1/devices/x", b_token).await.status, 404);
}

on_both!(bad_key_requests_name_their_fields, bad_key_requests);
async fn bad_key_requests(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let resp = app
        .post(
            "/v1/api-keys",
            &a.token,
            json!({"name": "", "roles": ["read", "god"]}),
        )
        .await;
    let mut fields = resp.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["name", "roles[1]"]);
    assert_eq!(
        app.post("/v1/api-keys", &a.token, json!({"name": "x", "roles": []}))
            .await
            .invalid_fields(),
        ["roles"]
    );
    assert_eq!(
        app.post(
            "/v1/api-keys",
            &a.token,
            json!({"name": "x", "roles": "read"})
        )
        .await
        .invalid_fields(),
        ["roles"]
    );
    // Nothing was written by any of them.
    let events = app.events(&a.token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event_type"] == "api_key.created")
            .count(),
        1
    );
}
