//! Web Push against its local stand-in: VAPID, encryption a browser can
//! open, TTL / Urgency / Topic, and the error classes.

use herald_tests::app::webpush_token;
use herald_tests::push::webpush::FakeWebPush;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::json;

use super::{Pushy, outcomes};

on_both!(web_push_messages_are_encrypted_and_signed, webpush);
async fn webpush(backend: Backend) {
    let fake = FakeWebPush::start().await;
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    let creds = p
        .credentials("webpush", json!({"subject": "mailto:ops@example.com"}))
        .await;
    let public_key = creds["details"]["public_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(public_key.len(), 87, "a P-256 point, base64url");
    let ids = ["ok-1", "gone-1", "notfound-1", "busy-1"];
    for id in ids {
        p.device(id, &fake.subscribe(id), "webpush", "web", None)
            .await;
    }
    let n = p
        .notify(json!({"title": "Hello", "body": "Web", "deep_link": "https://example.com/x", "data": {"a": "b"},
                       "collapse_key": "news", "ttl_seconds": 120, "external_ids": ids, "launch": true}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        (done["sent"]["web"].as_i64(), done["failed"]["web"].as_i64()),
        (Some(2), Some(2))
    );
    let got = outcomes(&p, &ids, &id).await;
    assert_eq!(
        got.iter().map(|(_, o)| o.as_str()).collect::<Vec<_>>(),
        ["delivered", "invalid_token", "invalid_token", "delivered"]
    );
    let ok = fake
        .log
        .requests()
        .into_iter()
        .find(|r| r.token == "ok-1")
        .unwrap_or_else(|| panic!("never sent"));
    // The browser opens it to exactly the notification's payload.
    assert_eq!(
        ok.payload,
        json!({"title": "Hello", "body": "Web", "deep_link": "https://example.com/x",
               "image_url": null, "icon_url": null, "data": {"a": "b"}})
    );
    assert_eq!(ok.headers.get("ttl").map(String::as_str), Some("120"));
    assert_eq!(ok.headers.get("urgency").map(String::as_str), Some("high"));
    assert_eq!(ok.headers.get("topic").map(String::as_str), Some("news"));
    let auth = ok.headers.get("authorization").cloned().unwrap_or_default();
    assert!(auth.ends_with(&format!("k={public_key}")), "{auth}");
    assert_eq!(p.events_of("device.push_token_invalidated").await.len(), 2);

    p.device(
        "forbidden-1",
        &fake.subscribe("forbidden-1"),
        "webpush",
        "web",
        None,
    )
    .await;
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["forbidden-1"], "launch": true}))
        .await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "error");
    assert!(
        done["error_reason"]
            .as_str()
            .is_some_and(|r| r.contains("VAPID")),
        "{done}"
    );
}

on_both!(
    an_app_without_credentials_for_a_platform_fails_those_devices,
    missing_credentials
);
async fn missing_credentials(backend: Backend) {
    let fake = FakeWebPush::start().await;
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    // Web Push credentials only: FCM devices cannot be reached.
    p.credentials("webpush", json!({"subject": "mailto:ops@example.com"}))
        .await;
    p.device("w", &fake.subscribe("w"), "webpush", "web", None)
        .await;
    p.device("a", "fcm-token", "fcm", "android", None).await;
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["w", "a"], "launch": true}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_eq!(
        (
            done["sent"]["web"].as_i64(),
            done["failed"]["android"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let history = p.history("a").await;
    assert!(
        history[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no fcm credentials")),
        "{history:?}"
    );
    assert_eq!(outcomes(&p, &["w", "a"], &id).await[1].1, "failed");
}

on_both!(
    subscriptions_to_internal_addresses_are_refused_at_registration,
    internal_endpoints
);
async fn internal_endpoints(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("web").await;
    let keys = json!({"p256dh": "BAAA", "auth": "AAAA"});
    let endpoints = [
        "http://127.0.0.1/push/x",
        "https://127.1/push/x",
        "https://0x7f000001/push/x",
        "https://2130706433/push/x",
        "https://localhost/push/x",
        "https://[::1]/push/x",
        "https://[::ffff:127.0.0.1]/push/x",
        "https://10.1.2.3/push/x",
        "https://192.168.0.10/push/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/push/x",
        "https://0.0.0.0/push/x",
    ];
    let register = |token: String| {
        let body =
            json!({"push_token": token, "send_platform": "webpush", "device_platform": "web"});
        let app = &app;
        let token = key.token.clone();
        async move { app.put("/v1/devices/w", &token, body).await }
    };
    for endpoint in endpoints {
        let token = json!({"endpoint": endpoint, "keys": keys}).to_string();
        let resp = register(token).await;
        assert_eq!(
            resp.invalid_fields(),
            ["push_token"],
            "{endpoint}: {}",
            resp.body
        );
    }
    for malformed in [
        "not json".to_owned(),
        json!({"endpoint": "ftp://8.8.8.8/x", "keys": keys}).to_string(),
        json!({"endpoint": "https://8.8.8.8/x"}).to_string(),
        json!({"endpoint": "https://8.8.8.8/x", "keys": {"p256dh": "!!", "auth": "AAAA"}})
            .to_string(),
    ] {
        let resp = register(malformed.clone()).await;
        assert_eq!(resp.invalid_fields(), ["push_token"], "{malformed}");
    }
    assert!(
        app.events(&key.token)
            .await
            .iter()
            .all(|e| e["event_type"] != "device.registered")
    );
    let resp = register(webpush_token("w")).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
}
