//! Three `herald serve` processes on one PostgreSQL database; the one
//! sending a campaign is killed with SIGKILL in the middle of it and of
//! webhook delivery, while writers go on through the survivors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_tests::push::fcm::FakeFcm;
use herald_tests::receiver::Receiver;
use herald_tests::serve::Served;
use herald_tests::{Backend, TestDb};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use super::durability::{self, Subject};
use super::writers::Attempt;
mod cluster;

use self::cluster::*;
use super::{ONE_LOAD_AT_A_TIME, ROOT_TOKEN, client, create_app, spec, start};

const NODES: usize = 3;
/// The campaign's audience: every one an FCM Android device.
const DEVICES: usize = 2_000;
/// Registrations in flight while the devices are set up.
const REGISTER_IN_FLIGHT: usize = 16;
/// Devices per push batch (`HERALD_PUSH_BATCH_SIZE`): 20 batches.
const BATCH: usize = 100;
/// How long the FCM stand-in takes to answer each send, so that the
/// campaign lasts long enough to be interrupted (about 0.2 s a batch).
const SEND_DELAY: Duration = Duration::from_millis(200);
/// Writers creating users (one webhook message each) through every node.
const USER_WRITERS: usize = 6;
/// The victim is killed once this many sends reached FCM (three of the
/// twenty batches) ...
const KILL_AFTER_SENDS: usize = 3 * BATCH;
/// ... and this many webhook messages reached the receiver, at a moment
/// it holds webhook messages.
const KILL_AFTER_WEBHOOKS: usize = 100;
/// The writers go on this long after the kill: past the moment the
/// victim is dead to the others (6 s after its last heartbeat, which is at
/// most 2 s old at the kill).
const WRITE_AFTER_KILL: Duration = Duration::from_secs(8);
/// What the survivors must achieve, from the kill.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(10);
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);
/// Waits that end the test if nothing moves (a finding is reported with
/// what was measured rather than cut off at the bound).
const SETUP_WITHIN: Duration = Duration::from_secs(30);
const GIVE_UP_AFTER: Duration = Duration::from_secs(45);
/// Requests that were already on the wire when the victim died may still
/// arrive a moment after the kill; the survivors cannot take the victim's
/// messages over before it is 4 s silent.
const ON_THE_WIRE: Duration = Duration::from_millis(250);
/// The most webhook messages one node holds at once: it claims while
/// fewer than twice its concurrent deliveries (the default 64) are in
/// flight (`capacity()` in infra/src/reactors/webhooks/worker.rs). Only
/// the victim's messages may arrive twice, those it had sent when it died
/// without recording the answer, so at most this many.
const WEBHOOK_HELD_AT_MOST: usize = 2 * 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the webhook receiver takes to answer (a real one's round
/// trip): a node then holds a few messages at any moment, so the kill
/// leaves some for the survivors to take over.
const RECEIVER_LATENCY: Duration = Duration::from_millis(200);

/// 3 nodes on one PostgreSQL schema, FCM pointing at the stand-in (each
/// send answered after 0.2 s), batches of 100. Through all three in turn:
/// an app, FCM credentials, 2,000 devices, a webhook endpoint on `user.*`
/// to a local receiver (answering after 0.2 s); then a campaign to every
/// device and 6 writers creating users. Once 3 batches' sends reached FCM,
/// the node holding the campaign is killed with SIGKILL while it holds
/// webhook messages too; the writers go on through the survivors (a
/// command without an answer is not retried, the next goes to the next
/// node) for 8 s more. Then: every acknowledged user is in the log
/// once where acknowledged, the log is dense and verifies, the read models
/// show it (`durability::check`); every user's webhook arrived, correctly
/// signed, and only messages the victim held arrived twice (at most what
/// one node holds); the campaign is `sent` to all 2,000 exactly by its
/// counters, each batch recorded once, every device reached and at most
/// one batch's devices twice; the survivors took the victim's webhook
/// messages and campaign over within 10 s and delivered everything within
/// 20 s of the kill; `GET /v1/admin/nodes` shows the victim dead and the
/// survivors alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_mid_campaign_lose_nothing() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let _turn = ONE_LOAD_AT_A_TIME.lock().await;
    let began = Instant::now();
    let fcm = FakeFcm::start().await;
    fcm.delay_sends(SEND_DELAY);
    let receiver = Receiver::start().await;
    let slow = SlowHop::start(receiver.url("/hook")).await;
    let mut spec = spec(&db.dir, db.url());
    spec.envs = vec![
        ("HERALD_WEBHOOK_ALLOW_NETS".into(), "127.0.0.0/8".into()),
        ("HERALD_FCM_URL".into(), fcm.base_url()),
        ("HERALD_FCM_TOKEN_URL".into(), fcm.token_url()),
        ("HERALD_PUSH_BATCH_SIZE".into(), BATCH.to_string()),
    ];
    let mut nodes: Vec<Served> = futures::future::join_all((0..NODES).map(|_| start(&spec))).await;
    let started_in = began.elapsed();
    let client = client();
    let cluster = Arc::new(Cluster {
        bases: nodes.iter().map(Served::base_url).collect(),
        next: AtomicUsize::new(0),
    });
    let mut ids = Vec::new();
    for base in &cluster.bases {
        let (status, body) = get(&client, &format!("{base}/v1/admin/nodes"), ROOT_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["this_node"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), NODES, "{ids:?}");

    // Set up through the nodes in turn.
    let token = create_app(&client, cluster.next()).await;
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        &format!("{}/v1/push-credentials/fcm", cluster.next()),
        &token,
        json!({"service_account": fcm.service_account()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let setup = Instant::now();
    let registered: Vec<(usize, u16, Value)> = futures::stream::iter(0..DEVICES)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}/v1/devices/n3-d{i:04}", cluster.next());
            let token = token.clone();
            async move {
                let body = json!({"push_token": format!("n3-t{i:04}"), "send_platform": "fcm", "device_platform": "android"});
                let (status, body) = send(&client, reqwest::Method::PUT, &url, &token, body).await;
                (i, status, body)
            }
        })
        .buffer_unordered(REGISTER_IN_FLIGHT)
        .collect()
        .await;
    let refused: Vec<_> = registered.iter().filter(|(_, s, _)| *s != 201).collect();
    assert!(
        refused.is_empty(),
        "{} registrations refused: {:?}",
        refused.len(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
    let registered_in = setup.elapsed();
    let (status, endpoint) = send(
        &client,
        reqwest::Method::POST,
        &format!("{}/v1/webhooks", cluster.next()),
        &token,
        json!({"url": slow.url(), "event_types": ["user.*"]}),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap_or_default().to_owned();

    // The load: users through every node, a campaign to every device.
    let (stop, stopped) = watch::channel(false);
    let writer_client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let load = Instant::now();
    let writers: Vec<_> = (0..USER_WRITERS)
        .map(|w| {
            tokio::spawn(user_writer(
                w,
                writer_client.clone(),
                cluster.clone(),
                token.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let (status, campaign) = send(
        &client,
        reqwest::Method::POST,
        &format!("{}/v1/notifications", cluster.next()),
        &token,
        json!({
            "title": "Three nodes", "body": "One of them dies",
            "conditions": {"key": "device_platform", "operator": "str_eq", "value": "android"},
            "launch": true,
        }),
    )
    .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign_id = campaign["id"].as_str().unwrap_or_default().to_owned();

    // Mid-campaign, mid-delivery: kill the node sending the campaign.
    let deadline = Instant::now() + SETUP_WITHIN;
    while fcm.arrivals().len() < KILL_AFTER_SENDS || receiver.received().len() < KILL_AFTER_WEBHOOKS
    {
        assert!(
            Instant::now() < deadline,
            "no progress within {SETUP_WITHIN:?}: {} sends, {} webhooks",
            fcm.arrivals().len(),
            receiver.received().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, listed) = get(
        &client,
        &format!("{}/v1/admin/nodes", cluster.bases[0]),
        ROOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let owners: Vec<(String, i64, i64)> = listed["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|n| {
                    (
                        n["node_id"].as_str().unwrap_or_default().to_owned(),
                        n["owns"]["notifications"].as_i64().unwrap_or(-1),
                        n["owns"]["webhook_messages"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let holders: Vec<&(String, i64, i64)> = owners.iter().filter(|(_, n, _)| *n > 0).collect();
    assert_eq!(holders.len(), 1, "one node holds the campaign: {listed}");
    let victim = ids
        .iter()
        .position(|id| *id == holders[0].0)
        .unwrap_or_else(|| panic!("the holder is none of ours: {listed}"));
    let victim_id = ids[victim].clone();
    let victim_uuid = Uuid::parse_str(&victim_id).unwrap_or_else(|e| panic!("{victim_id}: {e}"));
    // ... once it also holds webhook messages. The hop in front of the
    // receiver stops answering until the victim is dead and what it held
    // has been read, so none of them can finish in between.
    let victims_messages = "SELECT COUNT(*) FROM webhook_messages \
                            WHERE lease_node = $1 AND status = 'pending'";
    let holding = || async {
        let holding: i64 = sqlx::query_scalar(victims_messages)
            .bind(victim_uuid)
            .fetch_one(pg(&db.db))
            .await
            .unwrap_or_else(|e| panic!("reading the queue: {e}"));
        holding
    };
    let deadline = Instant::now() + SETUP_WITHIN;
    loop {
        if holding().await > 0 {
            slow.hold().await;
            if holding().await > 0 {
                break;
            }
            slow.release();
        }
        assert!(
            Instant::now() < deadline,
            "the campaign's node held no webhook message within {SETUP_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sends_before = fcm.arrivals().len();
    let webhooks_before = receiver.received().len();
    let killed_after = load.elapsed();
    let status = nodes.remove(victim).kill9();
    let killed = Instant::now();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "herald died of SIGKILL: {status}");
    }
    let survivors: Vec<String> = nodes.iter().map(Served::base_url).collect();
    let survivor_ids: Vec<String> = (0..NODES)
        .filter(|n| *n != victim)
        .map(|n| ids[n].clone())
        .collect();
    // What the victim held when it died: its leases stay as they were
    // until a survivor takes them.
    let held: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT message_id FROM webhook_messages WHERE lease_node = $1 AND status = 'pending'",
    )
    .bind(victim_uuid)
    .fetch_all(pg(&db.db))
    .await
    .unwrap_or_else(|e| panic!("reading the queue: {e}"));
    let held: HashSet<String> = held.into_iter().map(|(id,)| id.to_string()).collect();
    slow.release();
    assert!(
        !held.is_empty(),
        "the victim held no webhook message when it died"
    );
    let job_held: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notification_jobs WHERE lease_node = $1")
            .bind(victim_uuid)
            .fetch_one(pg(&db.db))
            .await
            .unwrap_or_else(|e| panic!("reading the jobs: {e}"));
    assert_eq!(job_held, 1, "the victim held the campaign when it died");

    tokio::time::sleep_until((killed + WRITE_AFTER_KILL).into()).await;
    let _ = stop.send(true);
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(
            writer
                .await
                .unwrap_or_else(|e| panic!("a writer failed: {e}")),
        );
    }
    let loaded_for = load.elapsed();
    writes.sort_by_key(|(_, a)| a.sent);
    let acknowledged: Vec<&Attempt> = writes
        .iter()
        .map(|(_, a)| a)
        .filter(|a| a.acknowledged())
        .collect();
    let acked_after_kill = acknowledged.iter().filter(|a| a.sent > killed).count();
    assert!(acked_after_kill > 0, "the survivors acknowledged nothing");

    // Wait (polling: these are other processes) until every user in the
    // log reached the receiver and the campaign is sent.
    let status_url = format!("{}/v1/notifications/{campaign_id}", survivors[0]);
    let (created, done, sent_seen) = loop {
        let created = users_created(&db.db).await;
        let arrived: HashSet<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
        let (status, body) = get(&client, &status_url, &token).await;
        assert_eq!(status, 200, "{body}");
        let undelivered = created.values().filter(|id| !arrived.contains(*id)).count();
        if undelivered == 0 && body["status"] == "sent" {
            break (created, body, killed.elapsed());
        }
        assert!(
            killed.elapsed() < GIVE_UP_AFTER,
            "{GIVE_UP_AFTER:?} after the kill: {undelivered} of {} users' webhooks not \
             delivered; campaign {body}; {} sends",
            created.len(),
            fcm.arrivals().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received = receiver.received();
    let arrivals = fcm.arrivals();

    // Takeover: the first of the victim's webhook messages delivered by a
    // survivor, and the first push send with a survivor's access token
    // (each process obtains its own from the stand-in).
    let webhook_takeover = slow
        .arrivals()
        .iter()
        .filter(|(at, id)| *at > killed + ON_THE_WIRE && held.contains(id))
        .map(|(at, _)| *at - killed)
        .min()
        .unwrap_or_else(|| panic!("no survivor delivered any of the victim's messages"));
    let victims_access: HashSet<&str> = arrivals
        .iter()
        .filter(|a| a.at < killed)
        .map(|a| a.access.as_str())
        .collect();
    let push_takeover = arrivals
        .iter()
        .filter(|a| a.at > killed && !victims_access.contains(a.access.as_str()))
        .map(|a| a.at - killed)
        .min()
        .unwrap_or_else(|| panic!("no survivor sent any push after the kill"));
    // Everything delivered: the last acknowledged user's first webhook, or
    // the campaign seen sent, whichever is later.
    let mut first_arrival: HashMap<String, Instant> = HashMap::new();
    for r in &received {
        first_arrival.entry(r.webhook_id()).or_insert(r.at);
    }
    let mut last_webhook = Duration::ZERO;
    let mut missing = Vec::new();
    for ack in &acknowledged {
        match created
            .get(&ack.target.id)
            .and_then(|id| first_arrival.get(id))
        {
            Some(at) => last_webhook = last_webhook.max(at.saturating_duration_since(killed)),
            None => missing.push(ack.target.id.clone()),
        }
    }
    let all_delivered = last_webhook.max(sent_seen);
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *deliveries.entry(r.webhook_id()).or_default() += 1;
    }
    let twice: Vec<(&String, usize)> = deliveries
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id, *n))
        .collect();
    let mut sends: HashMap<&str, usize> = HashMap::new();
    for a in &arrivals {
        *sends.entry(a.token.as_str()).or_default() += 1;
    }
    let repeated = sends.values().filter(|n| **n > 1).count();
    eprintln!(
        "reliability nodes (Postgres): {NODES} nodes started in {started_in:.1?}, {DEVICES} \
         devices registered in {registered_in:.1?}; {USER_WRITERS} writers for {loaded_for:.1?}; \
         SIGKILL of node {victim} (holding the campaign and {} webhook messages) \
         {killed_after:.1?} into the load, after {sends_before} sends and {webhooks_before} \
         webhooks; takeover: webhooks {webhook_takeover:.1?}, push {push_takeover:.1?}; all \
         delivered {all_delivered:.1?} after the kill (last acknowledged user's webhook \
         {last_webhook:.1?}, campaign seen sent {sent_seen:.1?}); users acknowledged {} \
         ({acked_after_kill} after the kill), {} in the log; webhook messages {} delivered in {} \
         requests, {} twice (bound {WEBHOOK_HELD_AT_MOST}); push: {} sends to {} devices, \
         {repeated} devices twice (bound {BATCH})",
        held.len(),
        acknowledged.len(),
        created.len(),
        deliveries.len(),
        received.len(),
        twice.len(),
        arrivals.len(),
        sends.len(),
    );

    // Nodes: the victim is dead to the survivors (6 s without a
    // heartbeat), the survivors alive.
    tokio::time::sleep_until((killed + Duration::from_secs(7)).into()).await;
    let (status, listed) = get(
        &client,
        &format!("{}/v1/admin/nodes", survivors[1]),
        ROOT_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let alive = |id: &str| {
        listed["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node_id"] == id))
            .map(|n| n["alive"].clone())
    };
    assert_eq!(alive(&victim_id), Some(json!(false)), "{listed}");
    for id in &survivor_ids {
        assert_eq!(alive(id), Some(json!(true)), "{listed}");
    }

    // The log, its chain, the read models: every acknowledged user once,
    // where acknowledged.
    let attempts: Vec<Attempt> = writes.iter().map(|(_, a)| a.clone()).collect();
    let subject = Subject {
        client: &client,
        base: survivors[0].clone(),
        root_token: ROOT_TOKEN,
        token: &token,
        db: &db.db,
        spec: &spec,
    };
    let report = durability::check(&subject, &attempts).await;

    // Webhooks: every acknowledged user's message arrived, signed; a
    // message more than once only if the victim held it when it died.
    assert!(
        missing.is_empty(),
        "{} acknowledged users' webhooks never arrived: {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let unsigned = received.iter().filter(|r| !r.signed_by(&secret)).count();
    assert_eq!(unsigned, 0, "webhooks without a valid signature");
    let known: HashSet<&String> = created.values().collect();
    let strangers: Vec<&String> = deliveries.keys().filter(|id| !known.contains(id)).collect();
    assert!(strangers.is_empty(), "webhooks for no user: {strangers:?}");
    let not_held: Vec<&(&String, usize)> =
        twice.iter().filter(|(id, _)| !held.contains(*id)).collect();
    assert!(
        not_held.is_empty(),
        "messages delivered twice that the victim did not hold: {not_held:?}"
    );
    assert!(
        twice.len() <= WEBHOOK_HELD_AT_MOST && twice.iter().all(|(_, n)| *n == 2),
        "{} messages delivered more than once: {:?}",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );

    // The campaign: exact counters, each batch recorded once, every device
    // reached, at most the batch in flight twice.
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["audience"]["total"], DEVICES, "{done}");
    assert_eq!(
        (&done["sent"]["android"], &done["failed"]["android"]),
        (&json!(DEVICES), &json!(0)),
        "{done}"
    );
    let batches: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE event_type = 'notification.batch_sent'",
    )
    .fetch_one(pg(&db.db))
    .await
    .unwrap_or_else(|e| panic!("reading the log: {e}"));
    assert_eq!(
        batches,
        (DEVICES / BATCH) as i64,
        "each batch recorded once"
    );
    let delivered: HashSet<String> = fcm.log.delivered().into_iter().collect();
    let unreached: Vec<usize> = (0..DEVICES)
        .filter(|i| !delivered.contains(&format!("n3-t{i:04}")))
        .collect();
    assert!(
        unreached.is_empty() && sends.len() == DEVICES,
        "{} devices never reached ({:?}…), {} tokens sent to",
        unreached.len(),
        unreached.iter().take(5).collect::<Vec<_>>(),
        sends.len()
    );
    assert!(
        repeated <= BATCH && sends.values().all(|n| *n <= 2),
        "{repeated} devices sent to more than once (one batch is {BATCH})"
    );

    // The survivors' timings.
    assert!(
        webhook_takeover <= TAKEOVER_WITHIN && push_takeover <= TAKEOVER_WITHIN,
        "takeover took longer than {TAKEOVER_WITHIN:?}: webhooks {webhook_takeover:?}, push \
         {push_takeover:?}"
    );
    assert!(
        all_delivered <= DELIVERED_WITHIN,
        "everything delivered {all_delivered:?} after the kill, more than {DELIVERED_WITHIN:?}"
    );
    eprintln!(
        "reliability nodes (Postgres): {report}; test took {:.1?}",
        began.elapsed()
    );
    drop(nodes);
}
