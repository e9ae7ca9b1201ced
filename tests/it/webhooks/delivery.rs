//! What a receiver gets: signed messages whose id is the event id, in the
//! Standard Webhooks shape or a template's, with the endpoint's headers and
//! credentials, for the event types it asked for.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{Hooked, WITHIN};

on_both!(signed_messages_carry_the_event_id, signed_messages);
async fn signed_messages(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, secret) = h
        .endpoint(json!({
            "url": receiver.url("/hooks?team=blue"),
            "event_types": ["user.*"],
            "headers": {"X-Team": "blue"},
            "auth": {"bearer": "receiver-token-123"},
        }))
        .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    h.register("d1").await;
    h.user("u1", json!({"name": "Ada"})).await;
    h.set_status("u1", "suspended").await;
    let got = receiver.wait_for(2, WITHIN).await;
    let user_events: Vec<Value> = h
        .app
        .events(&h.key.token)
        .await
        .into_iter()
        .filter(|e| e["stream"] == "user:u1")
        .collect();
    assert_eq!(user_events.len(), 2);
    let mut ids: Vec<String> = got.iter().map(|r| r.webhook_id()).collect();
    ids.sort();
    let mut expected: Vec<String> = user_events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "one message per wanted event, id = event id");
    for request in &got {
        assert!(request.signed_by(&secret), "bad signature: {request:?}");
        assert!(!request.signed_by("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-team"), Some("blue"));
        assert_eq!(
            request.header("authorization"),
            Some("Bearer receiver-token-123")
        );
        assert_eq!(
            request.header("webhook-timestamp"),
            Some(h.clock_now_secs().as_str())
        );
        let event = user_events
            .iter()
            .find(|e| e["event_id"] == json!(request.webhook_id()))
            .unwrap_or_else(|| panic!("no event for {request:?}"));
        let body = request.json();
        assert_eq!(body["type"], event["event_type"]);
        assert_eq!(body["data"], event["data"]);
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    // The device event was never queued: the attempts are the two above.
    let attempts = h.wait_attempts(&id, 2).await;
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a["status"] == "succeeded"));

    // Neither the signing secret nor the receiver's token is in the log.
    let log = serde_json::to_string(&h.app.events(&h.key.token).await).unwrap_or_default();
    assert!(log.contains("webhook.endpoint_created"));
    assert!(!log.contains(&secret) && !log.contains("receiver-token-123"));
}

on_both!(templates_render_the_subject_as_it_was, templates);
async fn templates(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, _) = h
        .endpoint(json!({
            "url": receiver.url("/t"),
            "method": "PUT",
            "event_types": ["update_user_status"],
            "payload_template": {
                "user": "{{user.id}}",
                "who": "{{user.name}} <{{user.email}}>",
                "status": "{{ user.status }}",
                "position": "{{event.position}}",
                "quoted": "'{{event.position}}'",
                "missing": "{{device.external_id}}",
                "hook": "{{webhook.id}}",
                "fixed": [1, true, "text"],
            },
        }))
        .await;
    h.user("u1", json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    h.set_status("u1", "suspended").await;
    // Renamed after the event: the message still says what was true then.
    h.user("u1", json!({"name": "Grace"})).await;
    let got = receiver.wait_for(1, WITHIN).await;
    let status_event = &h.events_of("user.status_updated").await[0];
    let body = got[0].json();
    assert_eq!(got[0].method, "PUT");
    assert_eq!(
        body,
        json!({
            "user": "u1",
            "who": "Ada <ada@example.com>",
            "status": "suspended",
            "position": status_event["position"],
            "quoted": status_event["position"].to_string(),
            "missing": null,
            "hook": id,
            "fixed": [1, true, "text"],
        })
    );
    let read = h.app.get(&format!("/v1/webhooks/{id}"), &h.key.token).await;
    assert_eq!(read.body["event_types"], json!(["user.status_updated"]));
}

on_both!(a_test_message_reaches_the_endpoint, test_message);
async fn test_message(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/")})).await;
    let queued = h
        .app
        .post(&format!("/v1/webhooks/{id}/test"), &h.key.token, json!({}))
        .await;
    assert_eq!(queued.status, 202, "{}", queued.body);
    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(got[0].json()["data"]["webhook_id"], json!(id));
    assert_eq!(json!(got[0].webhook_id()), queued.body["message_id"]);
    assert!(got[0].signed_by(&secret));
}

impl Hooked {
    /// The manual clock in whole seconds, as `webhook-timestamp` carries it.
    pub fn clock_now_secs(&self) -> String {
        use infra::clock::Clock;
        self.clock.now().timestamp().to_string()
    }
}
