//! A campaign on the embedded default (no credentials: the log provider),
//! end to end: targets, audience, batches, counters, history, usage.

use herald_tests::app::webpush_token;
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{Pushy, outcomes};

on_both!(
    a_campaign_on_the_log_provider_completes_with_exact_counters,
    log_campaign
);
async fn log_campaign(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |c| c.push.batch_size = 2).await else {
        return;
    };
    p.device("a1", "t-a1", "fcm", "android", Some("u1")).await;
    p.device("a2", "t-a2", "fcm", "android", None).await;
    p.device("i1", "t-i1", "apns", "ios", Some("u1")).await;
    p.device("w1", &webpush_token("w1"), "webpush", "web", None)
        .await;
    p.device("x1", "t-x1", "fcm", "android", None).await;
    for (d, plan) in [("a1", "pro"), ("w1", "pro"), ("x1", "pro"), ("a2", "free")] {
        let r = p
            .app
            .patch(
                &format!("/v1/devices/{d}/properties"),
                &p.key.token,
                json!({"properties": {"plan": plan}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // x1 has not allowed notifications: it is never in an audience.
    let r = p
        .app
        .put("/v1/devices/x1", &p.key.token, json!({"push_token": "t-x1", "send_platform": "fcm", "device_platform": "android", "has_permission": false}))
        .await;
    assert_eq!(r.status, 200);

    let created = p
        .notify(json!({
            "title": "Hello", "body": "World",
            "conditions": {"key": "plan", "operator": "str_eq", "value": "pro"},
            "user_ids": ["u1"], "external_ids": ["a2"],
            "launch": true,
        }))
        .await;
    assert!(
        matches!(
            created["status"].as_str(),
            Some("launched" | "sending" | "sent")
        ),
        "{created}"
    );
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        done["audience"],
        json!({"total": 4, "android": 2, "ios": 1, "web": 1})
    );
    assert_eq!(done["sent"], json!({"android": 2, "ios": 1, "web": 1}));
    assert_eq!(done["failed"], json!({"android": 0, "ios": 0, "web": 0}));

    // Counters are the per-device outcomes, batch by batch.
    let got = outcomes(&p, &["a1", "a2", "i1", "w1", "x1"], &id).await;
    let delivered: Vec<&str> = got
        .iter()
        .filter(|(_, o)| o == "delivered")
        .map(|(d, _)| d.as_str())
        .collect();
    assert_eq!(delivered, ["a1", "a2", "i1", "w1"]);
    assert_eq!(got[4].1, "none");
    let batches = p.events_of("notification.batch_sent").await;
    assert_eq!(batches.len(), 2, "four devices in batches of two");
    let summed: u64 = batches
        .iter()
        .map(|b| b["data"]["delivered"].as_array().map_or(0, Vec::len) as u64)
        .sum();
    assert_eq!(summed, 4);
    let resolved = p.events_of("notification.audience_resolved").await;
    assert_eq!(resolved[0]["data"]["total"], 4);
    assert_eq!(resolved[0]["metadata"]["actor"], "system:push");

    let usage = p.app.get("/v1/usage", &p.key.token).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert_eq!(usage.body["total"], 4);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let days = usage.body["days"].as_array().cloned().unwrap_or_default();
    let last: &Value = days.last().unwrap_or(&Value::Null);
    assert_eq!(
        (last["date"].as_str(), last["push_messages"].as_i64()),
        (Some(today.as_str()), Some(4))
    );
}

on_both!(
    an_empty_audience_ends_in_error_with_a_reason,
    empty_audience
);
async fn empty_audience(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["nobody"], "launch": true}))
        .await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "error");
    assert_eq!(done["error_reason"], "no device matched the targets");
}
