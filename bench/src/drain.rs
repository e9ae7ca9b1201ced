//! Change queues: drains per second with limit=500 over HTTP, and what
//! feeding the queues costs per appended event (the change-queue projection
//! replayed alone, beside the devices projection over the same events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::config::Config;
use infra::herald::Herald;
use infra::runtime::rebuild::dry_run;
use infra::secrets::Secret;
use infra::store::{EventStore, SqlEventStore};
use projections::Projection;
use projections::devices::DevicesProjection;
use serde_json::{Value, json};

use crate::databases::{Backend, fresh};
use crate::search::{create_app, load_devices};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    /// Changes to queue (two events per device).
    #[arg(long, default_value_t = 200_000)]
    changes: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh(args.backend, &args.pg_url, 16).await?;
    let mut config = Config::with_data_dir(&db.dir);
    config.root_token = Some(Secret::new("hr_bench".to_owned()));
    let herald = Herald::start_on(config, db.db.clone()).await?.herald;
    let store: Arc<SqlEventStore> = Arc::new(SqlEventStore::open(db.db.clone()).await?);
    let (app_id, token) = create_app(&store).await?;
    load_devices(&store, app_id, args.changes / 2, 32).await?;
    let head = store.head().await?;
    anyhow::ensure!(
        herald
            .projections()
            .wait_for_all(head, Duration::from_secs(3600))
            .await,
        "projections did not catch up"
    );

    // Feeding cost: each projection replayed alone over the same log.
    let replay = |p: Arc<dyn Projection>| {
        let db = db.db.clone();
        let store = store.clone();
        async move {
            let started = Instant::now();
            dry_run(&db, store.as_ref(), &[p]).await?;
            anyhow::Ok(started.elapsed().as_secs_f64())
        }
    };
    let queues = infra::runtime::registered()
        .into_iter()
        .find(|r| r.projection.name() == "change_queues")
        .map(|r| r.projection)
        .ok_or_else(|| anyhow::anyhow!("no change_queues projection"))?;
    let queue_seconds = replay(queues).await?;
    let device_seconds = replay(Arc::new(DevicesProjection)).await?;

    // Drain over HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/v1/change-queues/default/changes?limit=500",
        listener.local_addr()?
    );
    let server = tokio::spawn(api::serve(listener, herald.clone(), std::future::pending()));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut drained = 0usize;
    loop {
        let page: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let n = page["changes"].as_array().map_or(0, Vec::len);
        if n == 0 {
            break;
        }
        drained += n;
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        drained == args.changes,
        "drained {drained} of {}",
        args.changes
    );
    server.abort();

    let per_event_us = |s: f64| (s / head as f64 * 1e6 * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"bench": "change-queues", "backend": args.backend.name(), "changes": drained,
               "drained_per_sec": (drained as f64 / drain_seconds).round(),
               "feed_us_per_event": per_event_us(queue_seconds),
               "devices_projection_us_per_event": per_event_us(device_seconds)})
    );
    drop(store);
    db.cleanup().await?;
    Ok(())
}
