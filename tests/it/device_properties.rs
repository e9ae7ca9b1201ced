//! Device properties, links, deletion and the device's own stream.

use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

fn android(token: &str) -> Value {
    json!({"push_token": token, "send_platform": "fcm", "device_platform": "android"})
}

async fn device_events(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let resp = app.get(&format!("/v1/devices/{id}/events"), token).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    resp.body["events"].as_array().cloned().unwrap_or_default()
}

on_both!(properties_are_typed_and_change_once, typed_properties);
async fn typed_properties(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    assert_eq!(
        app.put("/v1/devices/d", &key.token, android("t"))
            .await
            .status,
        201
    );
    let set = json!({"properties": {"plan": "pro", "age": 31, "beta": true, "tags": ["a", "b"], "old_key": null}});
    let resp = app
        .patch("/v1/devices/d/properties", &key.token, set.clone())
        .await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(
        resp.body["properties"],
        json!({"plan": "pro", "age": 31, "beta": true, "tags": ["a", "b"]})
    );
    let events = device_events(&app, &key.token, "d").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["event_type"], "device.properties_changed");
    assert_eq!(events[1]["data"]["removed"], json!([]));

    // The same again: no event.
    assert_eq!(
        app.patch("/v1/devices/d/properties", &key.token, set)
            .await
            .status,
        200
    );
    assert_eq!(device_events(&app, &key.token, "d").await.len(), 2);

    // A type change and a removal in one event.
    let resp = app
        .patch(
            "/v1/devices/d/properties",
            &key.token,
            json!({"properties": {"age": "thirty-one", "beta": null}}),
        )
        .await;
    assert_eq!(
        resp.body["properties"],
        json!({"plan": "pro", "age": "thirty-one", "tags": ["a", "b"]})
    );
    let events = device_events(&app, &key.token, "d").await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["data"]["set"], json!({"age": "thirty-one"}));
    assert_eq!(events[2]["data"]["removed"], json!(["beta"]));
    assert_eq!(
        app.get("/v1/devices/d", &key.token).await.body["properties"],
        resp.body["properties"]
    );
}

on_both!(property_limits_are_refused_by_name, property_limits);
async fn property_limits(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    assert_eq!(
        app.put("/v1/devices/d", &key.token, android("t"))
            .await
            .status,
        201
    );
    let cases = vec![
        (json!({"bad key!": 1}), "properties.bad key!"),
        (
            json!({"k".repeat(65): 1}),
            &*Box::leak(format!("properties.{}", "k".repeat(65)).into_boxed_str()),
        ),
        (json!({"f": 1.5}), "properties.f"),
        (json!({"o": {"x": 1}}), "properties.o"),
        (json!({"s": "x".repeat(1025)}), "properties.s"),
        (json!({"l": vec!["x"; 101]}), "properties.l"),
        (json!({"l": [1, "a"]}), "properties.l"),
        (json!({"l": [1, 2.5]}), "properties.l"),
        (json!({"user_id": "x"}), "properties.user_id"),
    ];
    for (properties, field) in cases {
        let resp = app
            .patch(
                "/v1/devices/d/properties",
                &key.token,
                json!({"properties": properties}),
            )
            .await;
        assert_eq!(resp.invalid_fields(), [field]);
    }
    let hundred: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(
        app.patch(
            "/v1/devices/d/properties",
            &key.token,
            json!({"properties": hundred})
        )
        .await
        .status,
        200
    );
    let one_more = app
        .patch(
            "/v1/devices/d/properties",
            &key.token,
            json!({"properties": {"k100": 1}}),
        )
        .await;
    assert_eq!(one_more.invalid_fields(), ["properties"]);
    assert_eq!(
        device_events(&app, &key.token, "d").await.len(),
        2,
        "refusals wrote nothing"
    );
    app.patch(
        "/v1/devices/ghost/properties",
        &key.token,
        json!({"properties": {"a": 1}}),
    )
    .await
    .problem(404);
}

on_both!(devices_link_to_users_and_leave_on_delete, links_and_delete);
async fn links_and_delete(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let mut body = android("t");
    body["user_id"] = json!("u1");
    body["has_permission"] = json!(false);
    let created = app.put("/v1/devices/d", &key.token, body).await;
    assert_eq!(
        (
            created.body["user_id"].as_str(),
            created.body["has_permission"].as_bool()
        ),
        (Some("u1"), Some(false))
    );
    // Absent user_id keeps the link; null removes it.
    assert_eq!(
        app.put("/v1/devices/d", &key.token, android("t"))
            .await
            .body["user_id"],
        "u1"
    );
    let mut unlink = android("t");
    unlink["user_id"] = Value::Null;
    assert!(app.put("/v1/devices/d", &key.token, unlink).await.body["user_id"].is_null());
    let types: Vec<Value> = device_events(&app, &key.token, "d")
        .await
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        types,
        [json!("device.registered"), json!("device.user_unlinked")]
    );

    let bucket = created.body["random_bucket"].clone();
    app.patch(
        "/v1/devices/d/properties",
        &key.token,
        json!({"properties": {"a": 1}}),
    )
    .await;
    assert_eq!(app.delete("/v1/devices/d", &key.token).await.status, 204);
    app.get("/v1/devices/d", &key.token).await.problem(404);
    app.delete("/v1/devices/d", &key.token).await.problem(404);
    // A later PUT registers it afresh.
    let again = app.put("/v1/devices/d", &key.token, android("t")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["properties"], json!({}));
    assert!(again.body["user_id"].is_null());
    let _ = bucket;
    // The stream keeps the whole history, for auditors only.
    let types: Vec<Value> = device_events(&app, &key.token, "d")
        .await
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(types.last(), Some(&json!("device.registered")));
    assert!(types.contains(&json!("device.deleted")));
    let reader = app
        .post(
            "/v1/api-keys",
            &key.token,
            json!({"name": "r", "roles": ["read"]}),
        )
        .await;
    app.get(
        "/v1/devices/d/events",
        reader.body["token"].as_str().unwrap_or_default(),
    )
    .await
    .problem(403);
}
