//! Nodes on one database: listed with what each holds; a node that stops
//! cleanly hands its leased work over at once (a draining one first records
//! the deliveries it has in flight, so none is sent twice), and a silent one is dead
//! after 6 s (on the clock) and its work taken over without waiting for
//! the lease to lapse. Each projection has one owner among the live nodes
//! (PostgreSQL); events it leaves waiting are applied by another node
//! well before the owner is declared dead.

use std::time::Duration as StdDuration;

use chrono::Duration;
use herald_tests::app::{ROOT_TOKEN, device_body};
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::runtime::ownership;
use serde_json::{Value, json};

use crate::webhooks::{Hooked, WITHIN, on_clock};

async fn nodes(app: &TestApp) -> Value {
    let r = app.get("/v1/admin/nodes", ROOT_TOKEN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn node<'a>(body: &'a Value, id: &str) -> Option<&'a Value> {
    body["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node_id"] == id)
}

/// A node delivering a message to a receiver that never answers, and a
/// second node on the same database and clock.
async fn two_nodes_one_stuck(backend: Backend) -> Option<(Hooked, TestApp, Receiver, String)> {
    two_nodes_delivering(backend, Reply::Hang).await
}

/// A node delivering a message to a receiver that answers it with
/// `reply`, and a second node on the same database and clock.
async fn two_nodes_delivering(
    backend: Backend,
    reply: Reply,
) -> Option<(Hooked, TestApp, Receiver, String)> {
    let h = Hooked::spawn(backend).await?;
    let clock = h.clock.clone();
    let second = h.app.another_node(|c| on_clock(c, &clock)).await;
    let receiver = Receiver::start().await;
    receiver.script([reply]);
    h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("u1", json!({})).await;
    let first = receiver.wait_for(1, WITHIN).await;
    Some((h, second, receiver, first[0].webhook_id()))
}

on_both!(
    a_node_that_stops_cleanly_hands_its_work_over_at_once,
    clean_stop
);
async fn clean_stop(backend: Backend) {
    let Some((h, second, receiver, message)) = two_nodes_one_stuck(backend).await else {
        return;
    };
    let listed = nodes(&second).await;
    assert_eq!(listed["this_node"], second.herald.node_id().to_string());
    for id in [h.app.herald.node_id(), second.herald.node_id()] {
        let n = node(&listed, &id.to_string()).unwrap_or_else(|| panic!("{id} missing: {listed}"));
        assert_eq!(n["alive"], true, "{n}");
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
    }
    // The holder stops cleanly; the other one takes the message over with
    // no time passing on the clock (the lease has a minute to run).
    let (stopping, survivor) = holder_and_other(&h.app, &second).await;
    stopping.herald.stop();
    stopping.herald.leave().await;
    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].webhook_id(), message, "the same message, again");
    let after = nodes(survivor).await;
    assert!(
        node(&after, &stopping.herald.node_id().to_string()).is_none(),
        "a node that left is not listed: {after}"
    );
}

/// The node holding the one leased message, and the other one. Whichever
/// node claimed it holds it; the other holds nothing.
async fn holder_and_other<'a>(a: &'a TestApp, b: &'a TestApp) -> (&'a TestApp, &'a TestApp) {
    let listed = nodes(b).await;
    let held: Vec<(String, i64)> = listed["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|n| {
                    let id = n["node_id"].as_str().unwrap_or_default().to_owned();
                    (id, n["owns"]["webhook_messages"].as_i64().unwrap_or(-1))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(held.iter().map(|(_, n)| n).sum::<i64>(), 1, "{listed}");
    let holder = held
        .iter()
        .find(|(_, n)| *n == 1)
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    if holder == a.herald.node_id().to_string() {
        (a, b)
    } else {
        (b, a)
    }
}

on_both!(
    a_draining_node_records_its_deliveries_in_flight_and_none_is_sent_twice,
    drain
);
async fn drain(backend: Backend) {
    let Some((h, second, receiver, message)) = two_nodes_delivering(backend, Reply::Gate).await
    else {
        return;
    };
    let (stopping, survivor) = holder_and_other(&h.app, &second).await;
    // The holder drains (as `herald serve` on SIGTERM) while its delivery
    // is held at the receiver; the receiver then answers it.
    let drained = async {
        stopping.herald.drain(StdDuration::from_secs(30)).await;
        stopping.herald.leave().await;
    };
    tokio::join!(drained, async { receiver.open_gate() });
    survivor.idle().await;
    let got = receiver.received();
    assert_eq!(
        got.len(),
        1,
        "sent once: the outcome was recorded before leaving"
    );
    assert_eq!(got[0].webhook_id(), message);
    let after = nodes(survivor).await;
    assert!(
        node(&after, &stopping.herald.node_id().to_string()).is_none(),
        "{after}"
    );
}

on_both!(
    a_silent_node_is_dead_after_six_seconds_and_its_work_taken_over,
    silent
);
async fn silent(backend: Backend) {
    let Some((h, second, receiver, message)) = two_nodes_one_stuck(backend).await else {
        return;
    };
    // Both nodes stop renewing as if killed; one comes back as a fresh node.
    h.app.herald.stop();
    second.herald.stop();
    let clock = h.clock.clone();
    let survivor = h.app.another_node(|c| on_clock(c, &clock)).await;
    // Not dead yet at 5 s: nothing is taken over.
    h.advance(Duration::seconds(5));
    survivor.idle().await;
    assert_eq!(receiver.received().len(), 1, "taken over too early");
    // Dead at 6 s and more: the new node takes the message over, 55 s
    // before its lease would lapse.
    h.advance(Duration::seconds(2));
    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].webhook_id(), message);
    let listed = nodes(&survivor).await;
    for dead in [h.app.herald.node_id(), second.herald.node_id()] {
        let n = node(&listed, &dead.to_string()).unwrap_or_else(|| panic!("{dead}: {listed}"));
        assert_eq!(n["alive"], false, "{n}");
    }
    let first = listed["nodes"][0].clone();
    assert_eq!(
        first["node_id"],
        survivor.herald.node_id().to_string(),
        "live ones first"
    );
}

/// The projections each node lists as its own.
fn projections_of(body: &Value, id: &str) -> Vec<String> {
    node(body, id).map_or_else(Vec::new, |n| {
        n["owns"]["projections"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    })
}

on_both!(
    each_projection_has_one_owner_and_one_left_waiting_is_taken_over_before_its_owner_is_dead,
    owners
);
async fn owners(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // Reads wait 3 s at most: less than the 6 s a silent node takes to be
    // declared dead, so only stepping in for the owner can serve them.
    let bounded =
        |c: &mut infra::config::Config| c.read_your_writes_timeout = StdDuration::from_secs(3);
    let first = TestApp::spawn_on(db, bounded).await;
    let key = first.create_app("a").await;
    let mut all = vec![first];
    let names: Vec<&str> = infra::runtime::registered()
        .iter()
        .map(|r| r.projection.name())
        .collect();
    // Nodes join until the owner of `devices` is not the newest one (which
    // read the live nodes as it joined, so it knows the owner is alive).
    let owner = loop {
        let next = all[0].another_node(bounded).await;
        all.push(next);
        let live: Vec<uuid::Uuid> = all.iter().map(|a| a.herald.node_id()).collect();
        let owner = ownership::owner_of("devices", &live);
        if owner != live.last().copied() || all.len() == 8 {
            break owner;
        }
    };
    let newest = all.len() - 1;
    let listed = nodes(&all[newest]).await;
    let mut owned: Vec<String> = Vec::new();
    for app in &all {
        let id = app.herald.node_id().to_string();
        let mine = projections_of(&listed, &id);
        match backend {
            // Every node applies every projection on SQLite.
            Backend::Sqlite => assert_eq!(mine.len(), names.len(), "{listed}"),
            Backend::Postgres => owned.extend(mine),
        }
    }
    if backend == Backend::Sqlite {
        return;
    }
    owned.sort();
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(
        owned, expected,
        "each projection once, among all nodes: {listed}"
    );
    let owner = owner.map(|o| o.to_string()).unwrap_or_default();
    assert!(
        projections_of(&listed, &owner).contains(&"devices".to_owned()),
        "{listed}"
    );

    // Every node but the newest goes silent (as if frozen): still alive
    // for 6 s, so the owner of `devices` is not replaced; the newest steps
    // in for it.
    for app in &all[..newest] {
        app.herald.stop();
    }
    let survivor = &all[newest];
    for i in 0..3 {
        let path = format!("/v1/devices/d{i}");
        let written = survivor
            .client
            .put(survivor.url(&path))
            .bearer_auth(&key.token)
            .header("prefer", "return=minimal")
            .json(&device_body(&format!("t{i}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let written = herald_tests::app::read(written).await;
        assert_eq!(written.status, 201, "{}", written.body);
        let position = written
            .header("herald-position")
            .unwrap_or_default()
            .to_owned();
        let seen = survivor.get_at(&path, &key.token, &position).await;
        assert_eq!(
            seen.status, 200,
            "write {i} not applied while its owner is silent: {}",
            seen.body
        );
        assert_eq!(seen.body["push_token"], format!("t{i}"));
    }
}
