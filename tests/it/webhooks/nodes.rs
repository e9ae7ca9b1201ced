//! The delivery queue across processes and crashes, and the per-endpoint
//! rules that need it to be careful: strict order, rate limits, and the SSRF
//! guard again at connect time.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::Duration;
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{Hooked, WITHIN, on_clock};

on_both!(
    two_nodes_share_the_queue_and_send_each_message_once,
    two_nodes
);
async fn two_nodes(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let clock = h.clock.clone();
    let second = h.app.another_node(|c| on_clock(c, &clock)).await;
    let receiver = Receiver::start().await;
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/")})).await;
    const N: usize = 30;
    for i in 0..N {
        h.user(&format!("u{i}"), json!({})).await;
    }
    let got = receiver.wait_for(N, WITHIN).await;
    let ids: BTreeSet<String> = got.iter().map(|r| r.webhook_id()).collect();
    assert_eq!(ids.len(), N, "every message once");
    assert!(got.iter().all(|r| r.signed_by(&secret)));
    // The attempts say the same: one each. Each node records its own
    // attempts after the receiver has answered, so both must have finished
    // (the second one first: the first then applies what it recorded).
    second.idle().await;
    let attempts = h.wait_attempts(&id, N).await;
    assert_eq!(attempts.len(), N);
    drop(second);
}

on_both!(
    a_delivery_cut_off_by_a_crash_is_retried_with_the_same_id,
    crash
);
async fn crash(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Hang]);
    let (id, secret) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    let first = receiver.wait_for(1, WITHIN).await;
    // The node dies with the request in flight; another one carries on.
    let clock = h.clock.clone();
    let Hooked { app, key, clock: _ } = h;
    let survivor = app.another_node(|c| on_clock(c, &clock)).await;
    drop(app);
    let h = Hooked {
        app: survivor,
        key,
        clock,
    };
    // The lease (twice the timeout plus 30 s) has to lapse first.
    h.advance(Duration::seconds(61));
    // Driven, not waited for: the survivor claims again now and finishes
    // what it claimed (a wake lost between the move of the clock and the
    // loop's sleep cannot leave the retry waiting for the next poll).
    h.app.idle().await;
    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].webhook_id(), first[0].webhook_id());
    assert!(got[1].signed_by(&secret));
    let attempts = h.wait_attempts(&id, 1).await;
    assert_eq!(attempts.len(), 1, "the cut-off attempt recorded nothing");
    assert_eq!(
        (
            attempts[0]["attempt"].as_i64(),
            attempts[0]["status"].as_str()
        ),
        (Some(2), Some("succeeded"))
    );
}

on_both!(
    ordered_endpoints_get_messages_strictly_in_log_order,
    ordered
);
async fn ordered(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(500)]);
    let (id, _) = h
        .endpoint(json!({"url": receiver.url("/"), "ordered": true}))
        .await;
    for user in ["u1", "u2", "u3"] {
        h.user(user, json!({})).await;
    }
    h.wait_attempts(&id, 1).await;
    h.advance(Duration::seconds(6));
    h.wait_attempts(&id, 2).await;
    h.advance(Duration::minutes(6));
    let got = receiver.wait_for(5, WITHIN).await;
    let order: Vec<String> = got.iter().map(|r| r.webhook_id()).collect();
    let events: Vec<String> = h
        .events_of("user.created")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected = [&events[0], &events[0], &events[0], &events[1], &events[2]];
    assert_eq!(order.iter().collect::<Vec<_>>(), expected);
}

on_both!(the_rate_limit_spaces_deliveries, rate_limit);
async fn rate_limit(backend: Backend) {
    // Everything is queued by a node that does not deliver; then a node
    // that does (on the system clock: the limit is about real time) finds
    // ten messages due at once.
    let Some(h) = Hooked::spawn_with(backend, |c| c.webhooks.deliver = false).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, _) = h
        .endpoint(json!({"url": receiver.url("/"), "rate_limit_per_second": 5}))
        .await;
    for i in 0..10 {
        h.user(&format!("u{i}"), json!({})).await;
    }
    let deliverer = h
        .app
        .another_node(|c| {
            super::allow_loopback(c);
        })
        .await;
    let got = receiver.wait_for(10, WITHIN).await;
    let span = got[9].at - got[0].at;
    // Ten messages at 5/s: slots 200 ms apart, 1.8 s from first to last
    // (less the first request's own latency; without the limit, ~0.1 s).
    assert!(span >= StdDuration::from_millis(1500), "took {span:?}");
    // The deliverer records the tenth attempt after its answer arrived.
    deliverer.idle().await;
    assert_eq!(h.wait_attempts(&id, 10).await.len(), 10);
}

on_both!(the_guard_applies_again_at_connect_time, ssrf_at_connect);
async fn ssrf_at_connect(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    // Restarted without the allowance: the URL now points at a forbidden
    // address, and the request is never made.
    let clock = h.clock.clone();
    let Hooked { app, key, clock: _ } = h;
    let strict = app
        .another_node(|c| {
            c.clock = std::sync::Arc::new(clock.clone());
        })
        .await;
    drop(app);
    let h = Hooked {
        app: strict,
        key,
        clock,
    };
    h.user("u1", json!({})).await;
    let attempts = h.wait_attempts(&id, 1).await;
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("blocked")),
        "{}",
        attempts[0]
    );
    assert!(receiver.received().is_empty());
}
