//! Replaying the log: a rebuild of every projection over N events, beside a
//! sequential scan of the same events (read and decoded, nothing applied)
//! and a hash-chain verification, all in one run on one database; then the
//! auditors' filters, each matching about 0.1 % of the log.

use std::sync::Arc;
use std::time::Instant;

use domain::ids::{AppId, UserId};
use domain::properties::Properties;
use domain::user::{UserEvent, UserStatus};
use domain::{DomainEvent, Metadata};
use infra::audit::verify_app;
use infra::store::scan::Range;
use infra::store::{AppendRequest, EventFilter, ExpectedVersion, NewEvent, TypePattern};
use infra::store::{EventStore, SqlEventStore};
use serde_json::json;

use crate::databases::{Backend, fresh};
use crate::search::load_devices_from;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    /// Events in the log (two per device: registration and properties).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 32)]
    writers: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh(args.backend, &args.pg_url, 40).await?;
    let store = Arc::new(SqlEventStore::open(db.db.clone()).await?);
    let app_id = AppId(uuid::Uuid::now_v7());
    // The devices, with 0.1 % of the events (user creations by one actor,
    // in one correlation) spread through them in ten runs.
    let rare = args.events / 1000;
    let devices = (args.events - rare) / 2;
    let mut load_seconds = 0.0;
    for round in 0..10 {
        let (from, to) = (devices * round / 10, devices * (round + 1) / 10);
        load_seconds += load_devices_from(&store, app_id, from, to - from, args.writers).await?;
        append_rare(&store, app_id, rare * round / 10, rare * (round + 1) / 10).await?;
    }
    let head = store.head().await?;
    let rate = |seconds: f64| (head as f64 / seconds).round();

    // Sequential scan: every event read as stored, in position order (the
    // read rebuilds, verification and export walk).
    let started = Instant::now();
    let mut scan = store.scan(Range::All { after: 0 });
    let mut scanned = 0usize;
    while let Some(page) = scan.next().await {
        scanned += page?.len();
    }
    let scan_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned as i64 == head, "scanned {scanned} of {head}");

    // The followers' read: pages of events with their JSON parsed.
    let started = Instant::now();
    let mut after = 0;
    let mut parsed = 0usize;
    loop {
        let page = store.read_all(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        parsed += page.len();
    }
    let parsed_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(parsed as i64 == head, "read {parsed} of {head}");

    let started = Instant::now();
    let report = verify_app(store.as_ref(), app_id).await?;
    let verify_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.is_ok(), "the chain did not verify: {report:?}");

    let started = Instant::now();
    let rebuilt = infra::runtime::rebuild::rebuild(
        &db.db,
        store.as_ref(),
        &infra::runtime::read_models(),
        |_| {},
    )
    .await?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        rebuilt.position == head,
        "rebuilt to {} of {head}",
        rebuilt.position
    );

    let filters = filters(store.as_ref(), app_id, head, rare).await?;

    println!(
        "{}",
        json!({"bench": "replay", "backend": args.backend.name(), "events": head,
               "load_events_per_sec": rate(load_seconds),
               "scan_events_per_sec": rate(scan_seconds),
               "parsed_read_events_per_sec": rate(parsed_seconds),
               "verify_events_per_sec": rate(verify_seconds),
               "rebuild_events_per_sec": rate(rebuild_seconds),
               "rebuild_longest_lock_ms": (rebuilt.longest_lock.as_secs_f64() * 1e4).round() / 10.0,
               "rebuild_share_of_scan": ((scan_seconds / rebuild_seconds) * 1000.0).round() / 1000.0,
               "rebuild_steps_s": rebuilt.steps.iter()
                   .map(|(step, took)| (step.to_string(), json!((took.as_secs_f64() * 10.0).round() / 10.0)))
                   .collect::<serde_json::Map<_, _>>(),
               "filters": filters})
    );
    drop(store);
    db.cleanup().await?;
    Ok(())
}

/// The actor and correlation of the rare events.
const RARE_ACTOR: &str = "key:00000000-0000-7000-8000-00000000beef";
const RARE_CORRELATION: &str = "bench-rare";

/// Creates users `from..to`, one event each, by [`RARE_ACTOR`].
async fn append_rare(
    store: &SqlEventStore,
    app_id: AppId,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    for i in from..to {
        let (event_type, data) = UserEvent::Created {
            user_id: UserId::parse(format!("rare-{i}"))?,
            name: None,
            email: None,
            status: UserStatus::Active,
            properties: Properties::new(),
        }
        .encode();
        let mut metadata = Metadata::system(app_id, "bench");
        metadata.actor = RARE_ACTOR.to_owned();
        metadata.correlation_id = Some(RARE_CORRELATION.to_owned());
        store
            .append(AppendRequest {
                stream: format!("user:rare-{i}"),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type,
                    schema_version: 1,
                    data,
                }],
                metadata,
                new_key: None,
            })
            .await?;
    }
    Ok(())
}

/// p50 and p95 (ms) of each filter of `GET /v1/events` through the store,
/// one page of up to 1,000 events, 25 times each; each must find what it
/// should.
async fn filters(
    store: &SqlEventStore,
    app_id: AppId,
    head: i64,
    rare: usize,
) -> anyhow::Result<serde_json::Value> {
    let middle = store.read_all(head / 2, 1).await?;
    let after = store.read_all(head / 2 + 1000, 1).await?;
    let (Some(since), Some(until)) = (middle.first(), after.first()) else {
        anyhow::bail!("the log is too short");
    };
    // Events recorded in one batch share an instant: the time range holds
    // about 1,000 events, as many as it holds.
    let in_range = {
        let f = EventFilter {
            since: Some(since.recorded_at),
            until: Some(until.recorded_at),
            ..Default::default()
        };
        store.read_filtered(app_id, &f, 5000).await?.len()
    };
    let cases: Vec<(&str, EventFilter, usize)> = vec![
        (
            "type",
            EventFilter {
                types: vec![TypePattern::parse("user.created")],
                ..Default::default()
            },
            rare,
        ),
        (
            "type_prefix",
            EventFilter {
                types: vec![TypePattern::parse("user.*")],
                ..Default::default()
            },
            rare,
        ),
        (
            "actor",
            EventFilter {
                actor: Some(RARE_ACTOR.to_owned()),
                ..Default::default()
            },
            rare,
        ),
        (
            "correlation_id",
            EventFilter {
                correlation_id: Some(RARE_CORRELATION.to_owned()),
                ..Default::default()
            },
            rare,
        ),
        (
            "stream",
            EventFilter {
                stream: Some("device:dev-4242".to_owned()),
                ..Default::default()
            },
            2,
        ),
        (
            "time_range",
            EventFilter {
                since: Some(since.recorded_at),
                until: Some(until.recorded_at),
                ..Default::default()
            },
            in_range.min(1000),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, filter, expected) in cases {
        let mut times = Vec::new();
        for _ in 0..25 {
            let started = Instant::now();
            let found = store.read_filtered(app_id, &filter, 1000).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                found.len() == expected,
                "{name}: {} events, not {expected}",
                found.len()
            );
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            (times[((times.len() - 1) as f64 * q).round() as usize] * 100.0).round() / 100.0
        };
        out.insert(
            name.to_owned(),
            json!({"matches": expected, "p50_ms": at(0.5), "p95_ms": at(0.95)}),
        );
    }
    Ok(serde_json::Value::Object(out))
}
