//! The first slice of devices: register, update, read.

use herald_tests::app::segment;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

fn android(token: &str) -> Value {
    json!({"push_token": token, "send_platform": "fcm", "device_platform": "android"})
}

on_both!(put_registers_then_updates, put_registers_then_updates_impl);
async fn put_registers_then_updates_impl(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let created = app
        .put("/v1/devices/phone-1", &key.token, android("t1"))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let d = &created.body;
    assert_eq!(
        (d["external_id"].as_str(), d["push_token"].as_str()),
        (Some("phone-1"), Some("t1"))
    );
    assert_eq!(
        (d["send_platform"].as_str(), d["device_platform"].as_str()),
        (Some("fcm"), Some("android"))
    );
    assert_eq!(d["properties"], json!({}));
    assert_eq!(d["version"], 1);
    let bucket = d["random_bucket"].as_i64().unwrap_or_default();
    assert!((1..=10_000).contains(&bucket));
    let position: i64 = created
        .header("herald-position")
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let events = app.events(&key.token).await;
    assert_eq!(
        events.last().map(|e| e["position"].as_i64()),
        Some(Some(position))
    );
    assert_eq!(
        events.last().map(|e| e["event_type"].clone()),
        Some(json!("device.registered"))
    );

    // The same again: 200, no new event.
    let same = app
        .put("/v1/devices/phone-1", &key.token, android("t1"))
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(same.body["version"], 1);
    assert_eq!(app.events(&key.token).await.len(), events.len());

    // A new token: 200, one event, bucket kept.
    let changed = app
        .put("/v1/devices/phone-1", &key.token, android("t2"))
        .await;
    assert_eq!(changed.status, 200);
    assert_eq!(
        (
            changed.body["push_token"].as_str(),
            changed.body["version"].as_i64()
        ),
        (Some("t2"), Some(2))
    );
    assert_eq!(changed.body["random_bucket"].as_i64(), Some(bucket));
    assert_eq!(changed.body["created_at"], d["created_at"]);
    let after: Vec<Value> = app.events(&key.token).await;
    assert_eq!(after.len(), events.len() + 1);
    assert_eq!(
        after.last().map(|e| e["data"].clone()),
        Some(json!({"external_id": "phone-1", "push_token": "t2"}))
    );

    // Read-your-writes: the GET sees it at once.
    let read = app.get("/v1/devices/phone-1", &key.token).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, changed.body);
}

on_both!(external_ids_round_trip_exactly, external_ids_round_trip);
async fn external_ids_round_trip(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let ids = [
        "with/slash".to_owned(),
        "spaces and ?query#hash".to_owned(),
        "%41 percent".to_owned(),
        "ünïcødé-😀".to_owned(),
        "  leading".to_owned(),
        "x".repeat(255),
        "é".repeat(127),
    ];
    for id in &ids {
        let put = app
            .put(
                &format!("/v1/devices/{}", segment(id)),
                &key.token,
                android("t"),
            )
            .await;
        assert_eq!(put.status, 201, "{id}: {:?}", put.body);
        assert_eq!(put.body["external_id"].as_str(), Some(id.as_str()));
        let get = app
            .get(&format!("/v1/devices/{}", segment(id)), &key.token)
            .await;
        assert_eq!(get.body["external_id"].as_str(), Some(id.as_str()));
    }
    // Lookalikes are different devices.
    app.get(
        &format!("/v1/devices/{}", segment("%2541 percent")),
        &key.token,
    )
    .await
    .problem(404);
    app.get(&format!("/v1/devices/{}", segment("leading")), &key.token)
        .await
        .problem(404);
    let long = app
        .put(
            &format!("/v1/devices/{}", "x".repeat(256)),
            &key.token,
            android("t"),
        )
        .await;
    assert_eq!(long.invalid_fields(), ["external_id"]);
    let long = app
        .put(
            &format!("/v1/devices/{}", segment(&"é".repeat(128))),
            &key.token,
            android("t"),
        )
        .await;
    assert_eq!(long.invalid_fields(), ["external_id"]);
}

on_both!(
    platforms_may_be_given_by_their_integer_codes,
    platform_codes
);
async fn platform_codes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    for (id, send, device, names) in [
        ("c1", 1, 1, ("fcm", "android")),
        ("c2", 2, 2, ("apns", "ios")),
        ("c3", 3, 3, ("webpush", "web")),
    ] {
        let token = if send == 3 {
            herald_tests::app::webpush_token(id)
        } else {
            format!("tok-{id}")
        };
        let body = json!({"push_token": token, "send_platform": send, "device_platform": device});
        let resp = app
            .put(&format!("/v1/devices/{id}"), &key.token, body)
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        assert_eq!(
            (
                resp.body["send_platform"].as_str(),
                resp.body["device_platform"].as_str()
            ),
            (Some(names.0), Some(names.1))
        );
    }
    // A code and its name are the same platform: nothing changes.
    let again = app
        .put(
            "/v1/devices/c1",
            &key.token,
            json!({"push_token": "tok-c1", "send_platform": "fcm", "device_platform": 1}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let events = app.events(&key.token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event_type"] == "device.updated")
            .count(),
        0
    );
}

on_both!(bad_devices_are_refused_field_by_field, bad_devices);
async fn bad_devices(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let before = app.events(&key.token).await.len();
    let cases = [
        (
            json!({"push_token": "", "send_platform": "fcm", "device_platform": "android"}),
            vec!["push_token"],
        ),
        (
            json!({"push_token": "t", "send_platform": "gcm", "device_platform": "pc"}),
            vec!["device_platform", "send_platform"],
        ),
        (
            json!({"send_platform": "fcm", "device_platform": "android"}),
            vec!["push_token"],
        ),
        (
            json!({"push_token": "t", "send_platform": 0, "device_platform": 4}),
            vec!["device_platform", "send_platform"],
        ),
        (
            json!({"push_token": "t", "send_platform": true, "device_platform": 1.5}),
            vec!["device_platform", "send_platform"],
        ),
        (
            json!({"push_token": 5, "send_platform": "fcm", "device_platform": "android"}),
            vec!["push_token"],
        ),
        (
            json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android", "colour": "red"}),
            vec!["colour"],
        ),
        (
            json!({"push_token": "x".repeat(4097), "send_platform": "fcm", "device_platform": "android"}),
            vec!["push_token"],
        ),
        (
            json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android", "user_id": ""}),
            vec!["user_id"],
        ),
    ];
    for (body, expected) in cases {
        let mut fields = app
            .put("/v1/devices/d", &key.token, body.clone())
            .await
            .invalid_fields();
        fields.sort();
        assert_eq!(fields, expected, "{body}");
    }
    // Not JSON, or not declared as JSON.
    let raw = app
        .client
        .put(app.url("/v1/devices/d"))
        .bearer_auth(&key.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await;
    herald_tests::app::read(raw.unwrap_or_else(|e| panic!("{e}")))
        .await
        .problem(400);
    let text = app
        .client
        .put(app.url("/v1/devices/d"))
        .bearer_auth(&key.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await;
    herald_tests::app::read(text.unwrap_or_else(|e| panic!("{e}")))
        .await
        .problem(415);
    assert_eq!(
        app.events(&key.token).await.len(),
        before,
        "bad input must change nothing"
    );
    app.get("/v1/devices/d", &key.token).await.problem(404);
}

on_both!(another_apps_device_is_not_found, cross_app_devices);
async fn cross_app_devices(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    assert_eq!(
        app.put("/v1/devices/shared-name", &a.token, android("ta"))
            .await
            .status,
        201
    );
    app.get("/v1/devices/shared-name", &b.token)
        .await
        .problem(404);
    // The same external id in another app is another device.
    let other = app
        .put("/v1/devices/shared-name", &b.token, android("tb"))
        .await;
    assert_eq!(other.status, 201);
    assert_eq!(
        app.get("/v1/devices/shared-name", &a.token).await.body["push_token"],
        "ta"
    );
}

on_both!(concurrent_puts_to_one_device_all_land, concurrent_puts);
async fn concurrent_puts(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        let token = key.token.clone();
        tasks.push(tokio::spawn(async move {
            app.put("/v1/devices/hot", &token, android(&format!("t{i}")))
                .await
                .status
        }));
    }
    let mut created = 0;
    for t in tasks {
        let status = t.await.unwrap_or_default();
        assert!(status == 200 || status == 201, "{status}");
        created += usize::from(status == 201);
    }
    assert_eq!(created, 1, "exactly one PUT registers the device");
    let device = app.get("/v1/devices/hot", &key.token).await;
    let events = app.events(&key.token).await;
    let device_events = events
        .iter()
        .filter(|e| e["stream"] == "device:hot")
        .count() as i64;
    assert_eq!(device.body["version"].as_i64(), Some(device_events));
}
