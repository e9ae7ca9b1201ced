//! Reads "as of" an instant, rebuilt from the log: a user with the devices
//! linked to them then, a notification, a webhook endpoint. Each equals what
//! the live read model answered at that instant.

use chrono::Duration;
use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

use crate::audit_integrity::stamp;
use crate::webhooks::Hooked;

on_both!(
    a_user_read_as_of_an_instant_counts_the_devices_linked_then,
    device_count_then
);
async fn device_count_then(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let other = app.create_app("b").await;
    let put = |id: &'static str, token: String, user: Value| {
        let app = &app;
        async move {
            let mut body = device_body(&format!("tok-{id}"));
            body["user_id"] = user;
            let r = app.put(&format!("/v1/devices/{id}"), &token, body).await;
            assert!(r.status == 200 || r.status == 201, "{id}: {}", r.body);
        }
    };
    let user = json!({"name": "Ann"});
    assert_eq!(
        app.put("/v1/users/u1", &a.token, user.clone()).await.status,
        201
    );
    assert_eq!(
        app.put("/v1/users/u1", &other.token, user).await.status,
        201
    );
    put("d1", a.token.clone(), json!("u1")).await; // registered linked
    put("d2", a.token.clone(), Value::Null).await;
    put("d2", a.token.clone(), json!("u1")).await; // linked later
    put("d3", a.token.clone(), json!("u2")).await; // someone else's
    put("x1", other.token.clone(), json!("u1")).await; // another app's u1
    let t1 = stamp(&app, &a.token).await;
    assert_eq!(app.delete("/v1/devices/d1", &a.token).await.status, 204);
    put("d2", a.token.clone(), Value::Null).await; // unlinked
    put("d3", a.token.clone(), json!("u1")).await; // moved over
    put("d4", a.token.clone(), json!("u1")).await;
    let t2 = stamp(&app, &a.token).await;
    put("d4", a.token.clone(), json!("u2")).await;

    let count = |at: String| {
        let app = &app;
        let token = a.token.clone();
        async move {
            let r = app.get(&format!("/v1/users/u1?as_of={at}"), &token).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["device_count"].clone()
        }
    };
    assert_eq!(count(t1).await, 2, "d1 and d2");
    assert_eq!(count(t2).await, 2, "d3 and d4");
    let now = app.get("/v1/users/u1", &a.token).await;
    assert_eq!(now.body["device_count"], 1, "d3 now: {}", now.body);
}

on_both!(
    a_notification_read_as_of_an_instant_is_what_it_was_then,
    notification_then
);
async fn notification_then(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let before = stamp(&app, &a.token).await;
    let created = app
        .post(
            "/v1/notifications",
            &a.token,
            json!({"title": "first", "body": "b", "external_ids": ["d1"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/notifications/{id}");
    let t1 = stamp(&app, &a.token).await;
    let live1 = app.get(&path, &a.token).await.body;
    let patched = app.patch(&path, &a.token, json!({"title": "second"})).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let t2 = stamp(&app, &a.token).await;
    let live2 = app.get(&path, &a.token).await.body;
    assert_eq!(app.delete(&path, &a.token).await.status, 204);

    let then = |at: String| {
        let app = &app;
        let path = path.clone();
        let token = a.token.clone();
        async move { app.get(&format!("{path}?as_of={at}"), &token).await }
    };
    let at1 = then(t1).await;
    assert_eq!(at1.status, 200, "{}", at1.body);
    assert_eq!(at1.body, live1, "as the read model answered then");
    assert_eq!(at1.body["title"], "first", "{}", at1.body);
    assert_eq!(then(t2).await.body, live2);
    assert_eq!(then(before).await.status, 404, "not created yet");
    assert_eq!(app.get(&path, &a.token).await.status, 404, "deleted now");
    let now = stamp(&app, &a.token).await;
    assert_eq!(then(now).await.status, 404, "deleted as of now too");
    assert_eq!(
        app.get(&format!("{path}?as_of=yesterday"), &a.token)
            .await
            .invalid_fields(),
        ["as_of"]
    );
}

on_both!(
    a_webhook_endpoint_read_as_of_an_instant_is_what_it_was_then,
    endpoint_then
);
async fn endpoint_then(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let (app, token) = (&h.app, &h.key.token);
    let (id, _) = h
        .endpoint(json!({"url": "http://127.0.0.1:9/a", "event_types": ["user.*"]}))
        .await;
    let path = format!("/v1/webhooks/{id}");
    h.advance(Duration::seconds(1));
    let t1 = stamp(app, token).await;
    let live1 = app.get(&path, token).await.body;
    h.advance(Duration::seconds(1));
    let patched = app
        .patch(
            &path,
            token,
            json!({"url": "http://127.0.0.1:9/b", "event_types": ["device.*"]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    h.advance(Duration::seconds(1));
    let t2 = stamp(app, token).await;
    let live2 = app.get(&path, token).await.body;
    h.advance(Duration::seconds(1));
    assert_eq!(app.delete(&path, token).await.status, 204);

    let at1 = app.get(&format!("{path}?as_of={t1}"), token).await;
    assert_eq!(at1.status, 200, "{}", at1.body);
    assert_eq!(at1.body, live1, "as the read model answered then");
    assert_eq!(at1.body["url"], "http://127.0.0.1:9/a");
    let at2 = app.get(&format!("{path}?as_of={t2}"), token).await;
    assert_eq!(at2.body, live2);
    assert_ne!(live1, live2);
    assert_eq!(app.get(&path, token).await.status, 404, "deleted now");
}
