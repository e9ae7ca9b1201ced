//! A webhook receiver that fails, then is down, then recovers: every
//! message arrives afterwards, signed, verified with the published
//! `standardwebhooks` crate.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use herald_tests::app::{AppKey, device_body};
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::clock::ManualClock;
use serde_json::{Value, json};

use crate::webhooks::{WITHIN, on_clock};

/// The retry schedule: each wait 10 s +/- 20 %, so one step of the manual
/// clock past 12 s makes every failed message due; the few steps keep the
/// signed timestamps well inside the verifier's 5-minute tolerance.
const RETRY_WAIT: Duration = Duration::from_secs(10);
const STEP: chrono::Duration = chrono::Duration::seconds(13);
/// Messages while the receiver answers 503, and while it is down.
const WHILE_FAILING: usize = 40;
const WHILE_DOWN: usize = 20;

/// The endpoint's attempts, all pages: `(message id, status)` per attempt.
async fn attempts(app: &TestApp, key: &AppKey, endpoint: &str) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let resp = app
            .get(
                &format!("/v1/webhooks/{endpoint}/attempts?limit=250{cursor}"),
                &key.token,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        for a in resp.body["attempts"].as_array().into_iter().flatten() {
            all.push((
                a["message_id"].as_str().unwrap_or_default().to_owned(),
                a["status"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        match resp.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

async fn wait_attempts(app: &TestApp, key: &AppKey, endpoint: &str, n: usize, succeeded: usize) {
    app.idle().await;
    let all = attempts(app, key, endpoint).await;
    let ok = all.iter().filter(|(_, s)| s == "succeeded").count();
    assert!(
        all.len() >= n && ok >= succeeded,
        "{} attempts ({ok} succeeded), not {n} ({succeeded})",
        all.len()
    );
}

/// Issues the commands concurrently; each must succeed.
async fn commands(app: &TestApp, key: &AppKey, batch: Vec<(String, Value)>) {
    let answers = join_all(
        batch
            .iter()
            .map(|(path, body)| app.put(path, &key.token, body.clone())),
    )
    .await;
    for (resp, (path, _)) in answers.iter().zip(&batch) {
        assert!(
            resp.status == 200 || resp.status == 201,
            "PUT {path}: {}",
            resp.body
        );
    }
}

on_both!(
    a_receiver_outage_delays_every_message_and_loses_none,
    receiver_outage
);

/// An endpoint subscribed to `device.*` and `user.*` points at a local
/// receiver. 40 events happen while the receiver answers 503; then it goes
/// down (connections refused) and 20 more happen; one retry round fails
/// for all 60 against the closed port; the receiver comes back answering
/// 200 and the next round delivers. Retries are driven by a manual clock
/// (a 10 s schedule, two 13 s steps), so the test waits only for Herald.
/// Asserts: every device and user event's message arrived (by
/// `webhook-id`, the event id) with its event's type; each message has a
/// succeeded attempt; every request, failed or not, carries a signature
/// the published `standardwebhooks` crate verifies with the endpoint's
/// secret. Prints the counts, duplicates by `webhook-id`, and timings.
async fn receiver_outage(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let began = Instant::now();
    let clock = ManualClock::starting_at(Utc::now());
    let app = TestApp::spawn_on(db, |c| {
        on_clock(c, &clock);
        c.webhooks.retry.delays = vec![RETRY_WAIT; 6];
    })
    .await;
    let key = app.create_app("webhook outage").await;
    let receiver = Receiver::start().await;
    receiver.by_default(Reply::Status(503));
    let created = app
        .post(
            "/v1/webhooks",
            &key.token,
            json!({"url": receiver.url("/hooks"), "event_types": ["device.*", "user.*"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let endpoint = created.body["id"].as_str().unwrap_or_default().to_owned();
    let secret = created.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Failing: every first attempt is answered 503.
    let failing: Vec<(String, Value)> = (0..WHILE_FAILING)
        .map(|i| {
            if i % 4 == 3 {
                (
                    format!("/v1/users/hook-u{i}"),
                    json!({"name": format!("u{i}")}),
                )
            } else {
                (
                    format!("/v1/devices/hook-d{i}"),
                    device_body(&format!("t{i}")),
                )
            }
        })
        .collect();
    commands(&app, &key, failing).await;
    let answered_503 = receiver.wait_for(WHILE_FAILING, WITHIN).await.len();

    // Down: first attempts of new messages, and a retry round, are refused.
    receiver.stop().await;
    let down = Instant::now();
    let while_down: Vec<(String, Value)> = (0..WHILE_DOWN)
        .map(|i| {
            if i % 2 == 0 {
                (
                    format!("/v1/devices/hook-d{i}"),
                    device_body(&format!("again{i}")),
                )
            } else {
                (format!("/v1/users/hook-late-u{i}"), json!({"name": "late"}))
            }
        })
        .collect();
    commands(&app, &key, while_down).await;
    let total = WHILE_FAILING + WHILE_DOWN;
    wait_attempts(&app, &key, &endpoint, total, 0).await;
    clock.advance(STEP);
    wait_attempts(&app, &key, &endpoint, 2 * total, 0).await;
    let down_for = down.elapsed();

    // Back: the next round delivers everything.
    let before_recovery = receiver.received().len();
    receiver.by_default(Reply::Status(200));
    receiver.restart().await;
    let recovered = Instant::now();
    clock.advance(STEP);
    wait_attempts(&app, &key, &endpoint, 3 * total, total).await;
    let delivered_in = recovered.elapsed();

    let events: Vec<Value> = app
        .events(&key.token)
        .await
        .into_iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("device.") || t.starts_with("user."))
        })
        .collect();
    assert_eq!(events.len(), total, "one event per command");
    let types: HashMap<String, String> = events
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap_or_default().to_owned(),
                e["event_type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();

    let received = receiver.received();
    let verifier = standardwebhooks::Webhook::new(&secret)
        .unwrap_or_else(|e| panic!("the endpoint's secret is not a Standard Webhooks key: {e}"));
    for request in &received {
        if let Err(e) = verifier.verify(&request.body, &request.headers) {
            panic!(
                "request for {} does not verify: {e}; headers {:?}",
                request.webhook_id(),
                request.headers
            );
        }
    }
    let delivered = &received[before_recovery..];
    let ids: HashSet<String> = delivered.iter().map(|r| r.webhook_id()).collect();
    let expected: HashSet<String> = types.keys().cloned().collect();
    let missing: Vec<&String> = expected.difference(&ids).collect();
    let unexpected: Vec<&String> = ids.difference(&expected).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert!(
        unexpected.is_empty(),
        "delivered, but no such event: {unexpected:?}"
    );
    for request in delivered {
        assert_eq!(
            request.json()["type"].as_str(),
            types.get(&request.webhook_id()).map(String::as_str),
            "the body names its event's type"
        );
    }
    let duplicates = delivered.len() - ids.len();
    let succeeded: HashSet<String> = attempts(&app, &key, &endpoint)
        .await
        .into_iter()
        .filter(|(_, status)| status == "succeeded")
        .map(|(message, _)| message)
        .collect();
    assert_eq!(succeeded, expected, "each message has a succeeded attempt");

    eprintln!(
        "reliability webhook outage ({backend:?}): {total} messages; {answered_503} attempts \
         answered 503, {} refused while down ({down_for:.1?}); after recovery {} deliveries in \
         {delivered_in:.1?}: delivered {}, duplicates {duplicates}; {} signatures verified with \
         standardwebhooks; manual clock moved {} s; test took {:.1?}",
        2 * total - answered_503,
        delivered.len(),
        ids.len(),
        received.len(),
        2 * STEP.num_seconds(),
        began.elapsed()
    );
}
