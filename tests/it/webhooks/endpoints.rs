//! Endpoints: validation (one 400 naming every bad field, nothing written),
//! the SSRF guard at creation, roles and tenancy, changes, secrets kept out
//! of the log and reads, rotation, deletion.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::json;

use super::{Hooked, WITHIN};

on_both!(bad_endpoints_are_refused_naming_each_field, bad_endpoints);
async fn bad_endpoints(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let before = h.app.events(&h.key.token).await.len();
    let resp = h
        .app
        .post(
            "/v1/webhooks",
            &h.key.token,
            json!({
                "url": "ftp://example.com/x",
                "event_types": ["app.created"],
                "method": "TRACE",
                "headers": {"Webhook-Id": "x"},
                "payload_template": {"a": "{{user.password}}"},
                "rate_limit_per_second": 0,
                "auth": {"header": {"name": "webhook-signature", "value": "x"}},
            }),
        )
        .await;
    let mut fields = resp.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "auth.header.name",
            "event_types[0]",
            "headers.Webhook-Id",
            "method",
            "payload_template.a",
            "rate_limit_per_second",
            "url",
        ]
    );
    let unknown = h
        .app
        .post(
            "/v1/webhooks",
            &h.key.token,
            json!({"url": "http://127.0.0.1:1/", "colour": "red"}),
        )
        .await;
    assert_eq!(unknown.invalid_fields(), ["colour"]);
    assert_eq!(
        h.app.events(&h.key.token).await.len(),
        before,
        "nothing written"
    );
    let list = h.app.get("/v1/webhooks", &h.key.token).await;
    assert_eq!(list.body["webhooks"], json!([]));
}

on_both!(
    non_public_addresses_are_refused_at_creation,
    ssrf_at_creation
);
async fn ssrf_at_creation(backend: Backend) {
    // The default policy: public addresses only.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
    ] {
        let resp = app
            .post("/v1/webhooks", &key.token, json!({"url": url}))
            .await;
        assert_eq!(resp.invalid_fields(), ["url"], "{url}: {}", resp.body);
    }
}

on_both!(
    only_admins_of_the_app_manage_its_endpoints,
    roles_and_tenancy
);
async fn roles_and_tenancy(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let (id, _) = h.endpoint(json!({"url": "http://127.0.0.1:9/x"})).await;
    let writer = h.app.key_with_roles(&h.key.token, &["write", "read"]).await;
    h.app
        .post(
            "/v1/webhooks",
            &writer,
            json!({"url": "http://127.0.0.1:9/x"}),
        )
        .await
        .problem(403);
    h.app.get("/v1/webhooks", &writer).await.problem(403);
    let other = h.app.create_app("other").await;
    for path in [
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/attempts"),
        format!("/v1/webhooks/{id}/secret"),
        "/v1/webhooks/not-a-uuid".to_owned(),
    ] {
        h.app.get(&path, &other.token).await.problem(404);
    }
    h.app
        .delete(&format!("/v1/webhooks/{id}"), &other.token)
        .await
        .problem(404);
    let own = h.app.get(&format!("/v1/webhooks/{id}"), &h.key.token).await;
    assert_eq!(
        (own.status, own.body["id"].as_str()),
        (200, Some(id.as_str()))
    );
}

on_both!(
    endpoints_change_and_keep_credentials_out_of_sight,
    changes_and_credentials
);
async fn changes_and_credentials(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, secret) = h
        .endpoint(json!({
            "url": receiver.url("/a"),
            "description": "first",
            "payload_template": {"x": "{{event.type}}"},
        }))
        .await;
    let path = format!("/v1/webhooks/{id}");
    let changed = h
        .app
        .patch(
            &path,
            &h.key.token,
            json!({
                "description": null,
                "payload_template": null,
                "ordered": true,
                "auth": {"basic": {"username": "herald", "password": "s3cret-pw"}},
            }),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(changed.body["description"].is_null());
    assert!(changed.body["payload_template"].is_null());
    assert_eq!(changed.body["ordered"], true);
    assert_eq!(changed.body["auth"]["kind"], "basic");
    let fingerprint = changed.body["auth"]["fingerprint"]
        .as_str()
        .unwrap_or_default();
    assert!(fingerprint.starts_with("hmac-sha256:"), "{fingerprint}");
    assert!(!changed.body.to_string().contains("s3cret-pw"));

    let refused = h
        .app
        .patch(
            &path,
            &h.key.token,
            json!({"payload_template": {"a": "{{nope}}"}}),
        )
        .await;
    assert_eq!(refused.invalid_fields(), ["payload_template.a"]);
    assert_eq!(h.app.get(&path, &h.key.token).await.body, changed.body);

    // The credential is used, and never appears in the log.
    h.user("u1", json!({})).await;
    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(
        got[0].header("authorization"),
        Some("Basic aGVyYWxkOnMzY3JldC1wdw==")
    );
    let log = serde_json::to_string(&h.app.events(&h.key.token).await).unwrap_or_default();
    assert!(log.contains("webhook.endpoint_updated") && log.contains(fingerprint));
    assert!(!log.contains("s3cret-pw") && !log.contains(&secret));

    let shown = h.app.get(&format!("{path}/secret"), &h.key.token).await;
    assert_eq!(shown.body["secret"], json!(secret));
    // The secret is read like the endpoint: after the consistency token.
    let ahead = h
        .app
        .get_at(&format!("{path}/secret"), &h.key.token, "999999999")
        .await;
    ahead.problem(503);

    assert_eq!(h.app.delete(&path, &h.key.token).await.status, 204);
    h.app.get(&path, &h.key.token).await.problem(404);
    assert_eq!(h.events_of("webhook.endpoint_deleted").await.len(), 1);
}

on_both!(
    a_rotated_secret_signs_beside_the_new_one_for_a_day,
    rotation
);
async fn rotation(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, old) = h.endpoint(json!({"url": receiver.url("/r")})).await;
    let rotated = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &h.key.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(new, old);
    h.user("u1", json!({})).await;
    let got = receiver.wait_for(1, WITHIN).await;
    let header = got[0].header("webhook-signature").unwrap_or_default();
    assert_eq!(header.split(' ').count(), 2, "{header}");
    assert!(got[0].signed_by(&old) && got[0].signed_by(&new));

    // A day later the old secret no longer signs.
    h.advance(chrono::Duration::hours(25));
    h.user("u2", json!({})).await;
    let got = receiver.wait_for(2, WITHIN).await;
    let last = &got[1];
    assert!(last.signed_by(&new) && !last.signed_by(&old));
    assert_eq!(
        last.header("webhook-signature")
            .map(|s| s.split(' ').count()),
        Some(1)
    );
}
