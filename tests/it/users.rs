//! Users: profiles, status, devices, deletion.

use herald_tests::app::segment;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

fn device_of(user: Option<&str>) -> Value {
    json!({"push_token": "t", "send_platform": "apns", "device_platform": "ios", "user_id": user})
}

on_both!(users_are_created_then_updated, users_upsert);
async fn users_upsert(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let created = app
        .put(
            "/v1/users/u%2F1",
            &key.token,
            json!({"name": "Ada", "email": "ada@example.com", "properties": {"tier": 2}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let u = &created.body;
    assert_eq!(
        (
            u["user_id"].as_str(),
            u["name"].as_str(),
            u["status"].as_str()
        ),
        (Some("u/1"), Some("Ada"), Some("active"))
    );
    assert_eq!(
        (u["properties"].clone(), u["device_count"].as_i64()),
        (json!({"tier": 2}), Some(0))
    );
    assert_eq!(
        app.put("/v1/users/u%2F1", &key.token, json!({"name": "Ada"}))
            .await
            .status,
        200
    );
    let changed = app
        .put(
            "/v1/users/u%2F1",
            &key.token,
            json!({"email": null, "properties": {"tier": null}}),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert!(changed.body["email"].is_null());
    assert_eq!(changed.body["properties"], json!({}));
    assert_eq!(changed.body["name"], "Ada");
    let read = app.get("/v1/users/u%2F1", &key.token).await;
    assert_eq!(read.body, changed.body);
    let user_events: Vec<Value> = app
        .events(&key.token)
        .await
        .into_iter()
        .filter(|e| e["stream"] == "user:u/1")
        .collect();
    assert_eq!(user_events.len(), 2, "the unchanged PUT wrote nothing");

    let bad = app
        .put(
            "/v1/users/u2",
            &key.token,
            json!({"name": "", "email": "nope", "properties": {"x": 1.5}}),
        )
        .await;
    let mut fields = bad.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["email", "name", "properties.x"]);
    app.get("/v1/users/u2", &key.token).await.problem(404);
}

on_both!(status_changes_are_recorded_once, status_changes);
async fn status_changes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    app.put("/v1/users/u", &key.token, json!({})).await;
    let resp = app
        .put(
            "/v1/users/u/status",
            &key.token,
            json!({"status": "suspended", "reason": "chargeback"}),
        )
        .await;
    assert_eq!(
        (resp.status, resp.body["status"].as_str()),
        (200, Some("suspended"))
    );
    assert_eq!(
        app.put(
            "/v1/users/u/status",
            &key.token,
            json!({"status": "suspended"})
        )
        .await
        .status,
        200
    );
    let events: Vec<Value> = app
        .events(&key.token)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "user.status_updated")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["data"],
        json!({"user_id": "u", "from": "active", "to": "suspended", "reason": "chargeback"})
    );
    assert_eq!(
        app.put("/v1/users/u/status", &key.token, json!({"status": "gone"}))
            .await
            .invalid_fields(),
        ["status"]
    );
    app.put(
        "/v1/users/nobody/status",
        &key.token,
        json!({"status": "active"}),
    )
    .await
    .problem(404);
}

on_both!(
    a_users_devices_are_listed_and_unlinked_on_delete,
    users_devices
);
async fn users_devices(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    app.put("/v1/users/u", &key.token, json!({"name": "U"}))
        .await;
    for i in 0..3 {
        assert_eq!(
            app.put(
                &format!("/v1/devices/u-{i}"),
                &key.token,
                device_of(Some("u"))
            )
            .await
            .status,
            201
        );
    }
    app.put(
        "/v1/devices/other",
        &key.token,
        device_of(Some("someone-else")),
    )
    .await;
    assert_eq!(
        app.get("/v1/users/u", &key.token).await.body["device_count"],
        3
    );
    let listed = app.get("/v1/users/u/devices?limit=2", &key.token).await;
    assert_eq!(listed.body["devices"].as_array().map(Vec::len), Some(2));
    let cursor = listed.body["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rest = app
        .get(
            &format!("/v1/users/u/devices?limit=2&cursor={}", segment(&cursor)),
            &key.token,
        )
        .await;
    assert_eq!(rest.body["devices"][0]["external_id"], "u-2");
    assert!(rest.body["next_cursor"].is_null());

    // Deleting through the user: only the user's own devices.
    app.delete("/v1/users/u/devices/other", &key.token)
        .await
        .problem(404);
    assert_eq!(app.get("/v1/devices/other", &key.token).await.status, 200);
    assert_eq!(
        app.delete("/v1/users/u/devices/u-0", &key.token)
            .await
            .status,
        204
    );
    app.get("/v1/devices/u-0", &key.token).await.problem(404);

    // Deleting the user unlinks the rest, each with an event on the device.
    assert_eq!(app.delete("/v1/users/u", &key.token).await.status, 204);
    app.get("/v1/users/u", &key.token).await.problem(404);
    for id in ["u-1", "u-2"] {
        let d = app.get(&format!("/v1/devices/{id}"), &key.token).await;
        assert!(d.body["user_id"].is_null(), "{id} still linked");
    }
    let events = app.events(&key.token).await;
    let deleted = events
        .iter()
        .find(|e| e["event_type"] == "user.deleted")
        .cloned()
        .unwrap_or_default();
    let unlinks: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "device.user_unlinked")
        .collect();
    assert_eq!(unlinks.len(), 2);
    for unlink in unlinks {
        assert_eq!(unlink["data"]["reason"], "user_deleted");
        assert_eq!(unlink["metadata"]["causation_id"], deleted["event_id"]);
    }
    assert_eq!(
        app.get("/v1/devices/other", &key.token).await.body["user_id"],
        "someone-else"
    );
    app.delete("/v1/users/u", &key.token).await.problem(404);
}
