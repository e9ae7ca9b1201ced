//! Webhook delivery: messages per second and latency (event recorded ->
//! request received) to a local receiver, with 1 or many endpoints, beside
//! the same receiver taking plain POSTs from a client with the same
//! concurrency in the same run (the limit of the receiver and the HTTP
//! stack on this machine).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use domain::webhook::settings::{EndpointUrl, Headers, HttpMethod, Settings};
use infra::config::Config;
use infra::herald::Herald;
use infra::reactors::webhooks::address::{AddressPolicy, Net};
use infra::secrets::Secret;
use infra::services::RequestContext;
use infra::store::SqlEventStore;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::databases::{Backend, fresh};
use crate::search::{create_app, load_devices};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    /// Events appended for the throughput run (each becomes one message per endpoint).
    #[arg(long, default_value_t = 4000)]
    events: usize,
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Delivering nodes (Herald instances in this process sharing the
    /// database and its delivery queue; PostgreSQL for more than one).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Events appended one at a time for the latency run, at `--rate` per second.
    #[arg(long, default_value_t = 300)]
    latency_events: usize,
    #[arg(long, default_value_t = 50)]
    rate: u64,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
}

/// Counts the messages that arrived (each once: a repeat, which
/// at-least-once delivery allows after a handover, is counted apart) and
/// how long after their event the steady ones arrived.
#[derive(Clone)]
struct Sink {
    count: Arc<watch::Sender<usize>>,
    latencies_ms: Arc<Mutex<Vec<f64>>>,
    /// (endpoint path, `webhook-id`) of every message that arrived.
    seen: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
    repeats: Arc<std::sync::atomic::AtomicUsize>,
    /// Devices numbered below this are not counted (after [`Sink::steady_from`]).
    from: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink {
    fn new() -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
            latencies_ms: Arc::new(Mutex::new(Vec::new())),
            seen: Arc::default(),
            repeats: Arc::default(),
            from: Arc::default(),
        }
    }

    fn record(&self, path: &str, id: &str, body: &[u8]) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = Utc::now();
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let device = parsed
            .as_ref()
            .and_then(|v| v["data"]["external_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let first = self
            .seen
            .lock()
            .is_ok_and(|mut s| s.insert((path.to_owned(), id.to_owned())));
        if !first {
            self.repeats.fetch_add(1, SeqCst);
            return;
        }
        let number = device
            .strip_prefix("dev-")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if number < self.from.load(SeqCst) {
            return;
        }
        let at = parsed
            .as_ref()
            .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
        if let (Some(at), Ok(mut l)) = (at, self.latencies_ms.lock()) {
            l.push((now - at.with_timezone(&Utc)).as_seconds_f64() * 1000.0);
        }
        self.count.send_modify(|c| *c += 1);
    }

    /// From now on only devices numbered `from` and above count.
    fn steady_from(&self, from: usize) {
        self.from.store(from, std::sync::atomic::Ordering::SeqCst);
        self.count.send_replace(0);
        if let Ok(mut l) = self.latencies_ms.lock() {
            l.clear();
        }
    }

    async fn wait_for(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .map_err(|_| {
                anyhow::anyhow!("only {} of {n} messages arrived", *self.count.borrow())
            })??;
        Ok(())
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut l = self
            .latencies_ms
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        if l.is_empty() {
            return f64::NAN;
        }
        l.sort_by(f64::total_cmp);
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        (l[i] * 10.0).round() / 10.0
    }
}

async fn receiver(sink: Sink) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                sink.record(uri.path(), id, &body);
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn config(dir: &std::path::Path, deliver: bool) -> anyhow::Result<Config> {
    let mut config = Config::with_data_dir(dir);
    config.root_token = Some(Secret::new("hr_bench".to_owned()));
    config.webhooks.addresses =
        AddressPolicy::allowing(vec![Net::parse("127.0.0.0/8").map_err(anyhow::Error::msg)?]);
    config.webhooks.deliver = deliver;
    Ok(config)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh(args.backend, &args.pg_url, 16).await?;
    // A node that only queues: the throughput run times delivery alone.
    let queuer = Herald::start_on(config(&db.dir, false)?, db.db.clone())
        .await?
        .herald;
    let store = Arc::new(SqlEventStore::open(db.db.clone()).await?);
    let (app_id, _) = create_app(&store).await?;
    let sink = Sink::new();
    let addr = receiver(sink.clone()).await?;
    let ctx = RequestContext {
        actor: "system:bench".into(),
        ..Default::default()
    };
    for i in 0..args.endpoints {
        let settings = Settings {
            url: EndpointUrl::parse(&format!("http://{addr}/hook/{i}"))?,
            description: None,
            event_types: Default::default(),
            method: HttpMethod::Post,
            headers: Headers::default(),
            payload_template: None,
            rate_limit_per_second: None,
            ordered: false,
            set_user_status_on_failure: false,
            encryption_public_key: None,
        };
        queuer
            .services()
            .webhooks
            .create(&ctx, app_id, settings, None)
            .await?;
    }
    let messages = args.events * args.endpoints;
    load_devices(&store, app_id, args.events / 2, 16).await?;
    let head = infra::store::EventStore::head(store.as_ref()).await?;
    anyhow::ensure!(
        queuer
            .projections()
            .wait_for_all(head, Duration::from_secs(3600))
            .await,
        "the projections did not catch up"
    );
    // It leaves as `herald serve` does on SIGTERM, handing its work over.
    queuer.drain(Duration::from_secs(10)).await;
    queuer.leave().await;
    drop(queuer);

    // Throughput: a delivering node finds every message due at once.
    let config = config(&db.dir, true)?;
    let concurrency = config.webhooks.concurrency;
    let started = Instant::now();
    let herald = Herald::start_on(config.clone(), db.db.clone())
        .await?
        .herald;
    let mut others = Vec::new();
    for _ in 1..args.nodes.max(1) {
        others.push(
            Herald::start_on(config.clone(), db.db.clone())
                .await?
                .herald,
        );
    }
    sink.wait_for(messages, Duration::from_secs(3600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    for other in &others {
        other.drain(Duration::from_secs(10)).await;
        other.leave().await;
    }
    drop(others);

    // Latency: one event at a time at a steady rate, append to receipt,
    // appended through the delivering node's own log (another process's
    // appends reach it by notification or, on SQLite, a 500 ms poll).
    let first = args.events / 2 + 1_000_000;
    sink.steady_from(first);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    for i in 0..args.latency_events {
        tick.tick().await;
        let store = herald.store().clone();
        tokio::spawn(async move { load_one(store.as_ref(), app_id, first + i).await });
    }
    sink.wait_for(
        args.latency_events * args.endpoints,
        Duration::from_secs(3600),
    )
    .await?;
    let (p50, p99) = (sink.percentile(0.5), sink.percentile(0.99));
    let repeated = sink.repeats.load(std::sync::atomic::Ordering::SeqCst);

    // The limit: the same receiver, plain POSTs of a message-sized body
    // with the reactor's concurrency.
    let limit_per_sec = plain_posts(addr, messages, concurrency).await?;

    let delivered_per_sec = (messages as f64 / seconds).round();
    println!(
        "{}",
        json!({"bench": "webhooks", "backend": args.backend.name(), "endpoints": args.endpoints,
               "nodes": args.nodes.max(1),
               "messages": messages, "delivered_per_sec": delivered_per_sec,
               "plain_posts_per_sec": limit_per_sec.round(),
               "ratio_to_plain": ((delivered_per_sec / limit_per_sec) * 1000.0).round() / 1000.0,
               "steady_rate_per_sec": args.rate,
               "steady_latency_ms_p50": p50, "steady_latency_ms_p99": p99,
               "repeated_messages": repeated})
    );
    drop(herald);
    db.cleanup().await?;
    Ok(())
}

/// One device registration (one event).
async fn load_one(
    store: &dyn infra::store::EventStore,
    app_id: domain::ids::AppId,
    i: usize,
) -> anyhow::Result<()> {
    crate::search::append_registration(store, app_id, i).await
}

async fn plain_posts(
    addr: std::net::SocketAddr,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let body = json!({"type": "device.registered", "timestamp": Utc::now().to_rfc3339(),
                      "data": {"external_id": "dev-1", "push_token": "token-1"}})
    .to_string();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, body, next) = (client.clone(), body.clone(), next.clone());
        let url = format!("http://{addr}/plain");
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
