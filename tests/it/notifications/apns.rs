//! APNs against its local HTTP/2 stand-in: provider tokens, headers, and
//! every error class.

use herald_tests::push::apns::FakeApns;
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{Pushy, outcomes};

const DEVICES: [&str; 7] = [
    "ok1",
    "dead1",
    "expired1",
    "badtoken1",
    "othertopic1",
    "busy1",
    "stale1",
];

on_both!(apns_error_classes_are_told_apart, apns_errors);
async fn apns_errors(backend: Backend) {
    let fake = FakeApns::start().await;
    let url = fake.base_url();
    let Some(p) = Pushy::spawn(backend, |c| c.push.apns_url = Some(url)).await else {
        return;
    };
    let stored = p.credentials("apns", fake.credentials()).await;
    assert_eq!(stored["details"]["team_id"], "TEAM456789");
    for d in DEVICES {
        p.device(d, d, "apns", "ios", None).await;
    }
    let n = p
        .notify(json!({"title": "Hi", "body": "There", "data": {"k": "v"}, "collapse_key": "c1",
                       "image_url": "https://example.com/i.png", "external_ids": DEVICES, "launch": true}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        (done["sent"]["ios"].as_i64(), done["failed"]["ios"].as_i64()),
        (Some(3), Some(4))
    );
    let got = outcomes(&p, &DEVICES, &id).await;
    let expect = [
        ("ok1", "delivered"),
        ("dead1", "invalid_token"),
        ("expired1", "invalid_token"),
        ("badtoken1", "invalid_token"),
        ("othertopic1", "invalid_token"),
        ("busy1", "delivered"),
        ("stale1", "delivered"),
    ];
    assert_eq!(
        got,
        expect
            .iter()
            .map(|(d, o)| ((*d).to_owned(), (*o).to_owned()))
            .collect::<Vec<_>>()
    );
    assert_eq!(p.events_of("device.push_token_invalidated").await.len(), 4);
    // The expired provider token was renewed: two in all.
    assert_eq!(fake.provider_tokens().len(), 2);
    let ok = fake
        .log
        .requests()
        .into_iter()
        .find(|r| r.token == "ok1")
        .unwrap_or_else(|| panic!("ok1 never sent"));
    assert_eq!(
        ok.headers.get("apns-priority").map(String::as_str),
        Some("10")
    );
    assert_eq!(
        ok.headers.get("apns-collapse-id").map(String::as_str),
        Some("c1")
    );
    assert_eq!(
        ok.headers.get("apns-expiration").map(String::as_str),
        Some("0")
    );
    assert_eq!(
        ok.payload["aps"]["alert"],
        json!({"title": "Hi", "body": "There"})
    );
    assert_eq!(ok.payload["aps"]["mutable-content"], 1);
    assert_eq!(ok.payload["k"], "v");
}

on_both!(
    apns_provider_token_errors_stop_the_notification,
    apns_config
);
async fn apns_config(backend: Backend) {
    let fake = FakeApns::start().await;
    let url = fake.base_url();
    let Some(p) = Pushy::spawn(backend, |c| c.push.apns_url = Some(url)).await else {
        return;
    };
    p.credentials("apns", fake.credentials()).await;
    p.device("refused1", "refused1", "apns", "ios", None).await;
    let n = p.notify(json!({"title": "T", "body": "B", "ttl_seconds": 600, "external_ids": ["refused1"], "launch": true})).await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "error");
    assert!(
        done["error_reason"]
            .as_str()
            .is_some_and(|r| r.contains("InvalidProviderToken")),
        "{done}"
    );
    assert!(
        p.events_of("device.push_token_invalidated")
            .await
            .is_empty()
    );
    let expiration: i64 = fake.log.requests()[0]
        .headers
        .get("apns-expiration")
        .and_then(|e| e.parse().ok())
        .unwrap_or_default();
    let expected = chrono::Utc::now().timestamp() + 600;
    assert!(
        (expected - expiration).abs() < 60,
        "expiration {expiration}"
    );
    let bad = p
        .app
        .put(
            "/v1/push-credentials/apns",
            &p.key.token,
            json!({"key_p8": "x", "key_id": "K", "team_id": "T", "topic": "t"}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["body"]);
}

on_both!(
    apns_sends_spread_over_connections_of_at_most_100_streams,
    apns_connections
);
async fn apns_connections(backend: Backend) {
    let fake = FakeApns::start().await;
    let url = fake.base_url();
    let Some(p) = Pushy::spawn(backend, |c| {
        c.push.apns_url = Some(url);
        c.push.concurrency = 250;
    })
    .await
    else {
        return;
    };
    p.credentials("apns", fake.credentials()).await;
    let devices: Vec<String> = (0..12).map(|i| format!("ok{i}")).collect();
    for d in &devices {
        p.device(d, d, "apns", "ios", None).await;
    }
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": devices, "launch": true}))
        .await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["sent"]["ios"], 12, "{done}");
    // 250 requests in flight at most: three HTTP/2 connections of up to 100
    // streams each, taken in turn, each opened once and reused.
    assert_eq!(fake.connections(), 3);
}
