//! Replaying the log: a rebuild of every projection over N events, beside a
//! sequential scan of the same events (read and decoded, nothing applied)
//! and a hash-chain verification, all in one run on one database.

use std::sync::Arc;
use std::time::Instant;

use domain::ids::AppId;
use infra::audit::verify_app;
use infra::store::{EventStore, SqlEventStore};
use serde_json::json;

use crate::databases::{Backend, fresh};
use crate::search::load_devices;

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
    let load_seconds = load_devices(&store, app_id, args.events / 2, args.writers).await?;
    let head = store.head().await?;
    let rate = |seconds: f64| (head as f64 / seconds).round();

    // Sequential scan: every event read and decoded, in position order.
    let started = Instant::now();
    let mut after = 0;
    let mut scanned = 0usize;
    loop {
        let page = store.read_all(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        scanned += page.len();
    }
    let scan_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(scanned as i64 == head, "scanned {scanned} of {head}");

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

    println!(
        "{}",
        json!({"bench": "replay", "backend": args.backend.name(), "events": head,
               "load_events_per_sec": rate(load_seconds),
               "scan_events_per_sec": rate(scan_seconds),
               "verify_events_per_sec": rate(verify_seconds),
               "rebuild_events_per_sec": rate(rebuild_seconds),
               "rebuild_share_of_scan": ((scan_seconds / rebuild_seconds) * 1000.0).round() / 1000.0})
    );
    drop(store);
    db.cleanup().await?;
    Ok(())
}
