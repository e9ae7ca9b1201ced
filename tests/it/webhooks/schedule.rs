//! The retry schedule, driven by a manual clock: waits with jitter,
//! Retry-After, a receiver that is down for a while, and what happens when
//! a message fails for good.

use chrono::{DateTime, Duration, Utc};
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{Hooked, WITHIN};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// `attempt`'s wait before the next one, in seconds.
fn wait_after(attempt: &Value) -> f64 {
    (time(&attempt["next_attempt_at"]) - time(&attempt["started_at"])).as_seconds_f64()
}

on_both!(failed_messages_are_retried_on_the_schedule, schedule);
async fn schedule(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(503)]);
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/s")})).await;
    h.user("u1", json!({})).await;

    let first = h.wait_attempts(&id, 1).await;
    assert_eq!(
        (
            first[0]["status"].as_str(),
            first[0]["status_code"].as_i64()
        ),
        (Some("failed"), Some(500))
    );
    let wait = wait_after(&first[0]);
    assert!((4.0..=6.0).contains(&wait), "5 s +/- 20 %, got {wait}");

    h.advance(Duration::seconds(6));
    let second = h.wait_attempts(&id, 2).await;
    assert_eq!(second[1]["status_code"], 503);
    let wait = wait_after(&second[1]);
    assert!(
        (240.0..=360.0).contains(&wait),
        "5 min +/- 20 %, got {wait}"
    );

    h.advance(Duration::minutes(6));
    let all = h.wait_attempts(&id, 3).await;
    assert_eq!(all[2]["status"], "succeeded");
    assert!(all[2]["next_attempt_at"].is_null());
    let numbers: Vec<i64> = all.iter().filter_map(|a| a["attempt"].as_i64()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(all.iter().all(|a| a["message_id"] == all[0]["message_id"]));

    // Every attempt: same id, fresh timestamp, valid signature.
    let got = receiver.wait_for(3, WITHIN).await;
    assert!(got.iter().all(|r| r.webhook_id() == got[0].webhook_id()));
    assert!(got.iter().all(|r| r.signed_by(&secret)));
    let stamps: Vec<&str> = got
        .iter()
        .filter_map(|r| r.header("webhook-timestamp"))
        .collect();
    assert!(stamps[0] < stamps[1] && stamps[1] < stamps[2], "{stamps:?}");

    let failed = h
        .app
        .get(
            &format!("/v1/webhooks/{id}/attempts?status=failed"),
            &h.key.token,
        )
        .await;
    assert_eq!(failed.body["attempts"].as_array().map(Vec::len), Some(2));
}

on_both!(retry_after_on_429_is_honoured, retry_after);
async fn retry_after(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::WithHeaders(
        429,
        vec![("retry-after", "3600".into())],
    )]);
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    let first = h.wait_attempts(&id, 1).await;
    let wait = wait_after(&first[0]);
    assert!(
        (3600.0..3601.0).contains(&wait),
        "the receiver asked for an hour: {wait}"
    );
    h.advance(Duration::minutes(61));
    let all = h.wait_attempts(&id, 2).await;
    assert_eq!(all[1]["status"], "succeeded");
}

on_both!(
    a_receiver_down_for_a_while_gets_every_message_after,
    receiver_down
);
async fn receiver_down(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/down")})).await;
    receiver.stop().await;
    for user in ["u1", "u2", "u3"] {
        h.user(user, json!({})).await;
    }
    let failed = h.wait_attempts(&id, 3).await;
    assert!(
        failed
            .iter()
            .all(|a| a["status"] == "failed" && a["status_code"].is_null())
    );
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{}",
        failed[0]
    );
    // Down for two more rounds.
    h.advance(Duration::seconds(6));
    h.wait_attempts(&id, 6).await;
    receiver.restart().await;
    h.advance(Duration::minutes(6));
    let got = receiver.wait_for(3, WITHIN).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.webhook_id()).collect();
    ids.sort();
    let mut expected: Vec<String> = h
        .events_of("user.created")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(got.iter().all(|r| r.signed_by(&secret)));
}

on_both!(
    a_message_about_a_user_that_fails_for_good_marks_the_user_once,
    status_on_failure
);
async fn status_on_failure(backend: Backend) {
    let Some(h) = Hooked::spawn_with(backend, |c| {
        c.webhooks.retry.delays = vec![std::time::Duration::from_secs(1); 2];
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.by_default(Reply::Status(500));
    let (id, _) = h
        .endpoint(json!({
            "url": receiver.url("/"),
            "event_types": ["create_user", "update_user_status"],
            "set_user_status_on_failure": true,
        }))
        .await;
    h.user("u1", json!({})).await;
    h.wait_attempts(&id, 1).await;
    h.advance(Duration::seconds(2));
    h.wait_attempts(&id, 2).await;
    h.advance(Duration::seconds(2));
    // The third and last attempt fails: the user is marked, by the reactor.
    h.app.idle().await;
    let user = h.app.get("/v1/users/u1", &h.key.token).await;
    assert_eq!(user.body["status"], "webhook_error", "{}", user.body);
    let created = &h.events_of("user.created").await[0];
    let by_reactor = &h.events_of("user.status_updated").await[0];
    assert_eq!(by_reactor["metadata"]["actor"], "system:webhooks");
    assert_eq!(by_reactor["metadata"]["causation_id"], created["event_id"]);
    assert_eq!(by_reactor["data"]["to"], "webhook_error");

    // That status change is delivered (and fails) like any other event.
    // Meanwhile an admin reactivates the user.
    let attempts = h.wait_attempts(&id, 4).await;
    assert_eq!(attempts[3]["message_id"], by_reactor["event_id"]);
    h.set_status("u1", "active").await;
    let by_admin = h.events_of("user.status_updated").await[1].clone();
    h.wait_attempts(&id, 5).await;
    h.advance(Duration::seconds(2));
    h.wait_attempts(&id, 7).await;
    h.advance(Duration::seconds(2));
    // The reactor's own event failed for good without touching the user;
    // the admin's did, and marked the user again (caused by the admin's).
    h.app.idle().await;
    let again = h.events_of("user.status_updated").await;
    assert!(again.len() >= 3, "{again:?}");
    let causes: Vec<&Value> = again
        .iter()
        .map(|e| &e["metadata"]["causation_id"])
        .collect();
    assert_eq!(causes[2], &by_admin["event_id"]);
    assert!(
        !causes.contains(&&by_reactor["event_id"]),
        "a failure of the reactor's own status change changed the status: {causes:?}"
    );
}
