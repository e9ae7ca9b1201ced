//! Receivers that misbehave: 410 Gone, redirects, hanging, failing for days;
//! and getting failed messages delivered after all (resend, recover).

use chrono::Duration;
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{Hooked, WITHIN};

on_both!(gone_disables_the_endpoint_at_once, gone);
async fn gone(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(410)]);
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    let attempts = h.wait_attempts(&id, 1).await;
    assert_eq!(attempts[0]["status_code"], 410);
    assert!(
        attempts[0]["next_attempt_at"].is_null(),
        "no retry after 410"
    );
    h.app.idle().await;
    let disabled = h
        .app
        .get(&format!("/v1/webhooks/{id}"), &h.key.token)
        .await
        .body;
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    let events = h.events_of("webhook.endpoint_disabled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["actor"], "system:webhooks");

    // Disabled: new events are not queued for it. Enabled again: they are.
    h.user("u2", json!({})).await;
    let enabled = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/enable"),
            &h.key.token,
            json!({}),
        )
        .await;
    assert_eq!(
        (enabled.status, &enabled.body["enabled"]),
        (200, &json!(true))
    );
    h.user("u3", json!({})).await;
    let got = receiver.wait_for(2, WITHIN).await;
    let u3 = &h.events_of("user.created").await[2];
    assert_eq!(json!(got[1].webhook_id()), u3["event_id"]);
    assert_eq!(h.wait_attempts(&id, 2).await.len(), 2);
}

on_both!(redirects_are_failures_and_are_not_followed, redirects);
async fn redirects(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Redirect(receiver.url("/elsewhere"))]);
    let (id, _) = h.endpoint(json!({"url": receiver.url("/here")})).await;
    h.user("u1", json!({})).await;
    let attempts = h.wait_attempts(&id, 1).await;
    assert_eq!(
        (
            attempts[0]["status"].as_str(),
            attempts[0]["status_code"].as_i64()
        ),
        (Some("failed"), Some(302))
    );
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirect"))
    );
    assert!(!attempts[0]["next_attempt_at"].is_null(), "retried later");
    let paths: Vec<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/here"]);
}

on_both!(a_hanging_receiver_times_out, hanging);
async fn hanging(backend: Backend) {
    let Some(h) = Hooked::spawn_with(backend, |c| {
        c.webhooks.timeout = std::time::Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Hang]);
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    let attempts = h.wait_attempts(&id, 1).await;
    assert_eq!(attempts[0]["status"], "failed");
    assert!(attempts[0]["status_code"].is_null());
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{}",
        attempts[0]
    );
    h.advance(Duration::seconds(6));
    assert_eq!(h.wait_attempts(&id, 2).await[1]["status"], "succeeded");
}

on_both!(
    an_endpoint_failing_for_too_long_is_disabled,
    failing_too_long
);
async fn failing_too_long(backend: Backend) {
    let Some(h) = Hooked::spawn_with(backend, |c| {
        c.webhooks.disable_after = std::time::Duration::from_secs(3600);
        c.webhooks.retry.delays = vec![std::time::Duration::from_secs(1800); 5];
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.by_default(Reply::Status(500));
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    h.wait_attempts(&id, 1).await;
    h.advance(Duration::minutes(40));
    h.wait_attempts(&id, 2).await;
    let still = h.app.get(&format!("/v1/webhooks/{id}"), &h.key.token).await;
    assert_eq!(
        still.body["enabled"], true,
        "40 minutes of failure is not enough"
    );
    h.advance(Duration::minutes(40));
    h.wait_attempts(&id, 3).await;
    h.app.idle().await;
    let disabled = h
        .app
        .get(&format!("/v1/webhooks/{id}"), &h.key.token)
        .await
        .body;
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no successful delivery since")),
        "{disabled}"
    );
}

on_both!(
    failed_messages_can_be_resent_and_recovered,
    resend_and_recover
);
async fn resend_and_recover(backend: Backend) {
    let Some(h) = Hooked::spawn_with(backend, |c| {
        c.webhooks.retry.delays = vec![];
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.by_default(Reply::Status(500));
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/")})).await;
    let start = chrono::Utc::now() - Duration::seconds(1);
    for user in ["u1", "u2", "u3"] {
        h.user(user, json!({})).await;
    }
    let failed = h.wait_attempts(&id, 3).await;
    assert!(
        failed
            .iter()
            .all(|a| a["status"] == "failed" && a["next_attempt_at"].is_null())
    );
    receiver.by_default(Reply::Status(204));

    let one = failed[0]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let resend = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/messages/{one}/resend"),
            &h.key.token,
            json!({}),
        )
        .await;
    assert_eq!(resend.status, 202, "{}", resend.body);
    let got = receiver.wait_for(4, WITHIN).await;
    assert_eq!(got[3].webhook_id(), one);
    assert!(got[3].signed_by(&secret));
    h.app
        .post(
            &format!("/v1/webhooks/{id}/messages/{}/resend", uuid::Uuid::now_v7()),
            &h.key.token,
            json!({}),
        )
        .await
        .problem(404);

    let recovered = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            &h.key.token,
            json!({"since": start.to_rfc3339()}),
        )
        .await;
    assert_eq!(recovered.status, 202, "{}", recovered.body);
    assert_eq!(recovered.body["recovered"], 2, "the two still failed");
    let got = receiver.wait_for(6, WITHIN).await;
    let mut again: Vec<String> = got[4..].iter().map(|r| r.webhook_id()).collect();
    again.sort();
    let mut expected: Vec<String> = failed[1..]
        .iter()
        .map(|a| a["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    expected.sort();
    assert_eq!(again, expected);
    let bad = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            &h.key.token,
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["since"]);
    // A `since` in the future, without `until`: it is `since` that is wrong.
    let ahead = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            &h.key.token,
            json!({"since": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(ahead.invalid_fields(), ["since"], "{}", ahead.body);
    let reversed = h
        .app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            &h.key.token,
            json!({"since": "2999-01-01T00:00:00Z", "until": "2998-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(reversed.invalid_fields(), ["until"], "{}", reversed.body);
}
