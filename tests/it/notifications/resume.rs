//! Across restarts and crashes: scheduled launches survive a restart, and
//! a fan-out cut off mid-batch resumes without resending what the log
//! records as delivered (at most the batch in flight repeats).

use std::collections::HashMap;

use chrono::Duration;
use herald_tests::push::fcm::FakeFcm;
use herald_tests::{Backend, on_both};
use infra::clock::Clock;
use serde_json::json;

use super::{Pushy, outcomes, quick};
use crate::webhooks::{WITHIN, on_clock};

on_both!(
    a_scheduled_launch_happens_after_a_restart,
    scheduled_restart
);
async fn scheduled_restart(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    p.device("d1", "t1", "fcm", "android", None).await;
    let at = p.clock.now() + Duration::hours(1);
    let kept = p
        .notify(json!({"title": "Later", "body": "b", "external_ids": ["d1"], "scheduled_at": at.to_rfc3339(), "launch": true}))
        .await;
    assert_eq!(kept["status"], "queued");
    let dropped = p
        .notify(json!({"title": "Never", "body": "b", "external_ids": ["d1"], "scheduled_at": at.to_rfc3339(), "launch": true}))
        .await;
    let dropped_id = dropped["id"].as_str().unwrap_or_default().to_owned();
    let canceled = p
        .app
        .post(
            &format!("/v1/notifications/{dropped_id}/cancel"),
            &p.key.token,
            json!({}),
        )
        .await;
    assert_eq!(canceled.body["status"], "canceled");

    // Restart: a new node on the same database; the old one is gone.
    let clock = p.clock.clone();
    let Pushy { app, key, clock: _ } = p;
    let node = app
        .another_node(|c| {
            on_clock(c, &clock);
            quick(c);
        })
        .await;
    drop(app);
    let p = Pushy {
        app: node,
        key,
        clock,
    };
    p.advance_to(at + Duration::minutes(1));
    let done = p.finished(kept["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "sent");
    let launched = p.events_of("notification.launched").await;
    assert_eq!(launched.len(), 1, "only the one still queued");
    assert_eq!(launched[0]["metadata"]["actor"], "system:scheduler");
    assert_eq!(p.get(&dropped_id).await["status"], "canceled");
}

impl Pushy {
    pub fn advance_to(&self, at: chrono::DateTime<chrono::Utc>) {
        let by = at - self.clock.now();
        self.clock.advance(by);
    }
}

on_both!(
    a_crash_mid_fan_out_repeats_at_most_the_batch_in_flight,
    crash_resume
);
async fn crash_resume(backend: Backend) {
    const BATCH: usize = 5;
    let fake = FakeFcm::start().await;
    let url = fake.base_url();
    let token_url = fake.token_url();
    let Some(p) = Pushy::spawn(backend, |c| {
        c.push.fcm_url = url.clone();
        c.push.fcm_token_url = Some(token_url.clone());
        c.push.batch_size = BATCH;
    })
    .await
    else {
        return;
    };
    p.credentials("fcm", json!({"service_account": fake.service_account()}))
        .await;
    // Twenty devices in four batches; one in the third makes its request hang.
    let devices: Vec<String> = (1..=20).map(|i| format!("d{i:02}")).collect();
    for (i, d) in devices.iter().enumerate() {
        let token = if i + 1 == 13 {
            "hang-once-13".to_owned()
        } else {
            format!("t-{d}")
        };
        p.device(d, &token, "fcm", "android", None).await;
    }
    let n = p
        .notify(json!({"title": "T", "body": "B", "conditions": {"key": "device_platform", "operator": "str_eq", "value": "android"}, "launch": true}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    // Batches 1 and 2 are sent and recorded; all of batch 3 is in flight.
    fake.log.wait_for(15, WITHIN).await;
    crate::webhooks::eventually("batches 1 and 2 recorded", || async {
        (p.events_of("notification.batch_sent").await.len() == 2).then_some(())
    })
    .await;
    // The node dies; another takes over once the job's lease has lapsed.
    let clock = p.clock.clone();
    let Pushy { app, key, clock: _ } = p;
    let node = app
        .another_node(|c| {
            on_clock(c, &clock);
            quick(c);
            c.push.fcm_url = url.clone();
            c.push.fcm_token_url = Some(token_url.clone());
            c.push.batch_size = BATCH;
        })
        .await;
    drop(app);
    let p = Pushy {
        app: node,
        key,
        clock,
    };
    let lease = p.app.herald.config().push.lease();
    p.clock
        .advance(Duration::from_std(lease).unwrap_or_default() + Duration::seconds(1));
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["sent"]["android"], 20);

    let mut per_token: HashMap<String, usize> = HashMap::new();
    for token in fake.log.delivered() {
        *per_token.entry(token).or_default() += 1;
    }
    let repeated: Vec<(&String, &usize)> = per_token.iter().filter(|(_, n)| **n > 1).collect();
    for (i, d) in devices.iter().enumerate() {
        let token = if i + 1 == 13 {
            "hang-once-13".to_owned()
        } else {
            format!("t-{d}")
        };
        let n = per_token.get(&token).copied().unwrap_or(0);
        let in_flight = (11..=15).contains(&(i + 1));
        if in_flight {
            assert!((1..=2).contains(&n), "{token} delivered {n} times");
        } else {
            assert_eq!(n, 1, "{token} is in a recorded batch: exactly once");
        }
    }
    assert!(repeated.len() <= BATCH, "{repeated:?}");
    // The log and the counters say each device got it once.
    let refs: Vec<&str> = devices.iter().map(String::as_str).collect();
    let got = outcomes(&p, &refs, &id).await;
    assert!(got.iter().all(|(_, o)| o == "delivered"), "{got:?}");
    let batches = p.events_of("notification.batch_sent").await;
    assert_eq!(batches.len(), 4);
    let mut numbers: Vec<i64> = batches
        .iter()
        .filter_map(|b| b["data"]["batch"].as_i64())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3, 4]);
}
