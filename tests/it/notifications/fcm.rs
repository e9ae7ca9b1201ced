//! FCM HTTP v1 against its local stand-in: OAuth, the message shape, and
//! every error class (dead token, retryable, configuration).

use herald_tests::push::fcm::FakeFcm;
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{Pushy, outcomes};

pub(crate) async fn with_fcm(backend: Backend) -> Option<(Pushy, FakeFcm)> {
    let fake = FakeFcm::start().await;
    let url = fake.base_url();
    let token_url = fake.token_url();
    let p = Pushy::spawn(backend, |c| {
        c.push.fcm_url = url;
        c.push.fcm_token_url = Some(token_url);
        c.push.batch_size = 3;
    })
    .await?;
    let stored = p
        .credentials("fcm", json!({"service_account": fake.service_account()}))
        .await;
    assert_eq!(stored["details"]["project_id"], "herald-test");
    assert!(
        stored["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("hmac-sha256:"))
    );
    assert!(!stored.to_string().contains("PRIVATE KEY"));
    Some((p, fake))
}

pub(crate) const DEVICES: [&str; 7] = [
    "ok-1",
    "ok-2",
    "dead-1",
    "bad-1",
    "busy-1",
    "quota-1",
    "internal-1",
];

on_both!(fcm_error_classes_are_told_apart, fcm_errors);
async fn fcm_errors(backend: Backend) {
    let Some((p, fake)) = with_fcm(backend).await else {
        return;
    };
    for d in DEVICES {
        p.device(d, d, "fcm", "android", None).await;
    }
    let n = p
        .notify(json!({
            "title": "Sale", "body": "Today only", "data": {"sku": "42"},
            "deep_link": "myapp://sale", "ttl_seconds": 60, "priority": "normal", "collapse_key": "sale",
            "external_ids": DEVICES, "launch": true,
        }))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"]["android"], 4);
    assert_eq!(done["failed"]["android"], 3);

    let got = outcomes(&p, &DEVICES, &id).await;
    let expect = [
        ("ok-1", "delivered"),
        ("ok-2", "delivered"),
        ("dead-1", "invalid_token"),
        ("bad-1", "invalid_token"),
        ("busy-1", "delivered"),
        ("quota-1", "delivered"),
        ("internal-1", "failed"),
    ];
    assert_eq!(
        got,
        expect
            .iter()
            .map(|(d, o)| ((*d).to_owned(), (*o).to_owned()))
            .collect::<Vec<_>>()
    );
    // Retried ones were asked again; the always-failing one gave up after the retries.
    let tries = |t: &str| fake.log.requests().iter().filter(|r| r.token == t).count();
    assert_eq!(
        (tries("busy-1"), tries("quota-1"), tries("internal-1")),
        (2, 2, 3)
    );

    // Dead tokens leave future audiences.
    let invalidated = p.events_of("device.push_token_invalidated").await;
    let mut dead: Vec<&str> = invalidated
        .iter()
        .filter_map(|e| e["data"]["external_id"].as_str())
        .collect();
    dead.sort();
    assert_eq!(dead, ["bad-1", "dead-1"]);
    assert!(
        invalidated
            .iter()
            .all(|e| e["metadata"]["actor"] == "system:push")
    );
    let again = p
        .notify(json!({"title": "T", "body": "B", "external_ids": DEVICES, "launch": true}))
        .await;
    let again = p.finished(again["id"].as_str().unwrap_or_default()).await;
    assert_eq!(again["audience"]["total"], 5);

    // One OAuth exchange served every send; its assertion was verified.
    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(
        fake.oauth.requests()[0].payload["iss"],
        "herald@herald-test.iam.gserviceaccount.com"
    );
    let sent = fake
        .log
        .requests()
        .into_iter()
        .find(|r| r.token == "ok-1")
        .unwrap_or_else(|| panic!("ok-1 never sent"));
    let m = &sent.payload;
    assert_eq!(
        m["notification"],
        json!({"title": "Sale", "body": "Today only"})
    );
    assert_eq!(m["data"], json!({"sku": "42", "deep_link": "myapp://sale"}));
    assert_eq!(m["android"]["priority"], "NORMAL");
    assert_eq!(m["android"]["ttl"], "60s");
    assert_eq!(m["android"]["collapse_key"], "sale");

    // The credentials never reached the log.
    let log = serde_json::to_string(&p.app.events(&p.key.token).await).unwrap_or_default();
    assert!(log.contains("app.push_credentials_set"));
    assert!(!log.contains("PRIVATE KEY"));
}

on_both!(
    fcm_a_revoked_access_token_is_renewed_once_for_every_send,
    fcm_revoked
);
async fn fcm_revoked(backend: Backend) {
    let Some((p, fake)) = with_fcm(backend).await else {
        return;
    };
    let devices: Vec<String> = (1..=8).map(|i| format!("ok-r{i}")).collect();
    for d in &devices {
        p.device(d, d, "fcm", "android", None).await;
    }
    let first = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["ok-r1"], "launch": true}))
        .await;
    let first = p.finished(first["id"].as_str().unwrap_or_default()).await;
    assert_eq!(
        (first["status"].as_str(), fake.tokens_issued()),
        (Some("sent"), 1),
        "{first}"
    );

    // The cached token is revoked: the sends in flight are all refused with
    // it, one exchange replaces it, and every send is tried again with the new one.
    fake.revoke_access_tokens();
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": devices, "launch": true}))
        .await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"]["android"], 8, "{done}");
    assert_eq!(
        fake.tokens_issued(),
        2,
        "one renewal served every refused send"
    );
    let refused = fake
        .log
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!((1..=8).contains(&refused), "{refused} sends were refused");
}

on_both!(
    fcm_configuration_errors_stop_the_notification_and_keep_tokens,
    fcm_config
);
async fn fcm_config(backend: Backend) {
    let Some((p, fake)) = with_fcm(backend).await else {
        return;
    };
    for d in ["auth-1", "mismatch-1"] {
        p.device(d, d, "fcm", "android", None).await;
    }
    for device in ["auth-1", "mismatch-1"] {
        let n = p
            .notify(json!({"title": "T", "body": "B", "external_ids": [device], "launch": true}))
            .await;
        let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
        assert_eq!(done["status"], "error", "{done}");
        let code = if device == "auth-1" {
            "THIRD_PARTY_AUTH_ERROR"
        } else {
            "SENDER_ID_MISMATCH"
        };
        assert!(
            done["error_reason"]
                .as_str()
                .is_some_and(|r| r.contains(code)),
            "{done}"
        );
    }
    assert!(
        p.events_of("device.push_token_invalidated")
            .await
            .is_empty(),
        "tokens are kept"
    );

    // A service account the token endpoint refuses: a clear reason.
    let other = p.app.create_app("other").await;
    let put = p
        .app
        .put(
            "/v1/push-credentials/fcm",
            &other.token,
            json!({"service_account": fake.service_account()}),
        )
        .await;
    assert_eq!(put.status, 200);
    fake.reject_oauth();
    let d = p
        .app
        .put(
            "/v1/devices/x",
            &other.token,
            json!({"push_token": "ok-9", "send_platform": "fcm", "device_platform": "android"}),
        )
        .await;
    assert_eq!(d.status, 201);
    let n = p
        .app
        .post(
            "/v1/notifications",
            &other.token,
            json!({"title": "T", "body": "B", "external_ids": ["x"], "launch": true}),
        )
        .await;
    let id = n.body["id"].as_str().unwrap_or_default().to_owned();
    p.app.idle().await;
    let done = p
        .app
        .get(&format!("/v1/notifications/{id}"), &other.token)
        .await
        .body;
    assert_eq!(done["status"], "error", "{done}");
    assert!(
        done["error_reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused")),
        "{done}"
    );

    // Bad credentials are refused when set.
    let bad = p
        .app
        .put("/v1/push-credentials/fcm", &p.key.token, json!({"service_account": {"project_id": "p", "client_email": "e", "private_key": "nope"}}))
        .await;
    assert_eq!(bad.invalid_fields(), ["service_account"]);
}

on_both!(
    the_key_files_token_uri_is_never_called,
    token_uri_is_ignored
);
async fn token_uri_is_ignored(backend: Backend) {
    // Anything that connects here is Herald following the tenant's token_uri.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trap_url = format!(
        "http://{}/token",
        trap.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let fake = FakeFcm::start().await;
    let url = fake.base_url();
    // No token endpoint configured: Google's is the only one Herald may call
    // (unreachable here, so the send fails; what matters is where it went).
    let Some(p) = Pushy::spawn(backend, |c| {
        c.push.fcm_url = url;
        c.push.max_retries = 0;
    })
    .await
    else {
        return;
    };
    let mut account = fake.service_account();
    account["token_uri"] = json!(trap_url);
    p.credentials("fcm", json!({"service_account": account}))
        .await;
    p.device("ok-1", "ok-1", "fcm", "android", None).await;
    let n = p
        .notify(json!({"title": "Hi", "body": "x", "external_ids": ["ok-1"], "launch": true}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_ne!(done["sent"]["android"], 1, "{done}");
    assert_eq!(fake.tokens_issued(), 0);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}
