//! A push campaign to N devices through a real `herald serve`, against a
//! local FCM stand-in (OAuth token endpoint and `messages:send`, answering
//! at once): audience resolution time, sends per second, the server's
//! memory; beside plain POSTs to the same stand-in from one client with the
//! sender's concurrency, in the same run (the HTTP limit here).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::Metadata;
use domain::device::{DeviceEvent, PushToken};
use domain::event::DomainEvent;
use domain::ids::{AppId, ExternalId};
use domain::platform::{DevicePlatform, SendPlatform};
use infra::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, SqlEventStore};
use serde_json::{Value, json};

use crate::databases::{Backend, fresh};
use crate::search::{Server, create_app, peak_rss, wait_for_projections};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    #[arg(long, default_value_t = 100_000)]
    devices: usize,
    #[arg(long, default_value_t = 32)]
    writers: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    #[arg(long, default_value = "target/release/herald")]
    herald_bin: std::path::PathBuf,
}

/// An RSA key for the stand-in's service account (test-only).
const KEY_PEM: &str = include_str!("../../tests/support/fixtures/fcm-test-key.pem");

/// The FCM stand-in: hands out a token, accepts every message.
async fn fake_fcm(sent: Arc<AtomicUsize>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let sent = sent.clone();
        async move {
            if uri.path() == "/token" {
                return axum::Json(json!({"access_token": "bench", "expires_in": 3600, "token_type": "Bearer"}));
            }
            let n = sent.fetch_add(1, Ordering::Relaxed);
            axum::Json(json!({"name": format!("projects/bench/messages/{n}")}))
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// `devices` FCM devices, one registration event each.
async fn load(store: &Arc<SqlEventStore>, app_id: AppId, devices: usize, writers: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per = devices.div_ceil(writers);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in w * per..((w + 1) * per).min(devices) {
                let event = DeviceEvent::Registered {
                    external_id: ExternalId::parse(format!("dev-{i}"))?,
                    push_token: PushToken::parse(format!("fcm-token-{i:08}-{}", "x".repeat(140)))?,
                    send_platform: SendPlatform::Fcm,
                    device_platform: DevicePlatform::Android,
                    random_bucket: 1 + (i % 10_000) as u16,
                    user_id: None,
                    has_permission: true,
                };
                let (event_type, data) = event.encode();
                store
                    .append(AppendRequest {
                        stream: format!("device:dev-{i}"),
                        expected: ExpectedVersion::NoStream,
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::now_v7(),
                            event_type,
                            schema_version: 1,
                            data,
                        }],
                        metadata: Metadata::system(app_id, "bench"),
                    })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn at(event: &Value) -> DateTime<Utc> {
    event["recorded_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

async fn plain_posts(addr: std::net::SocketAddr, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let body = json!({"message": {"token": format!("fcm-token-{}", "x".repeat(148)),
        "notification": {"title": "Bench", "body": "A campaign"}, "data": {}, "android": {"priority": "HIGH"}}})
    .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, body, next) = (client.clone(), body.clone(), next.clone());
        let url = format!("http://{addr}/v1/projects/bench/messages:send");
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                client.post(&url).bearer_auth("bench").header("content-type", "application/json")
                    .body(body.clone()).send().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh(args.backend, &args.pg_url, u32::try_from(args.writers + 4).unwrap_or(64)).await?;
    let store = Arc::new(SqlEventStore::open(db.db.clone()).await?);
    let (app_id, token) = create_app(&store).await?;
    let load_seconds = load(&store, app_id, args.devices, args.writers).await?;
    let head = store.head().await?;
    drop(store);

    let sent = Arc::new(AtomicUsize::new(0));
    let fcm = fake_fcm(sent.clone()).await?;
    let port = 18098;
    let mut command = Command::new(&args.herald_bin);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&db.dir)
        .env("HERALD_ROOT_TOKEN", "hr_campaign_bench")
        .env("HERALD_FCM_URL", format!("http://{fcm}"))
        .env("HERALD_FCM_TOKEN_URL", format!("http://{fcm}/token"))
        .env("RUST_LOG", std::env::var("HERALD_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(schema) = &db.schema {
        command.env("HERALD_DATABASE_URL", format!("{}?options=-csearch_path%3D{schema}", args.pg_url));
    }
    let server = Server(command.spawn()?);
    wait_for_projections(&db.db, head).await?;
    let rss_before = peak_rss(server.0.id());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let account = json!({"type": "service_account", "project_id": "bench", "private_key_id": "k",
        "private_key": KEY_PEM, "client_email": "bench@bench.iam.gserviceaccount.com",
        "token_uri": format!("http://{fcm}/token")});
    let put = client
        .put(format!("{base}/v1/push-credentials/fcm"))
        .bearer_auth(&token)
        .json(&json!({"service_account": account}))
        .send()
        .await?;
    anyhow::ensure!(put.status().is_success(), "credentials: {}", put.text().await?);

    let created: Value = client
        .post(format!("{base}/v1/notifications"))
        .bearer_auth(&token)
        .json(&json!({"title": "Bench", "body": "A campaign",
            "conditions": {"key": "send_platform", "operator": "str_eq", "value": "fcm"}, "launch": true}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(!id.is_empty(), "no notification: {created}");
    let deadline = Instant::now() + Duration::from_secs(7200);
    let done = loop {
        let n: Value = client
            .get(format!("{base}/v1/notifications/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if matches!(n["status"].as_str(), Some("sent" | "error" | "canceled")) {
            break n;
        }
        anyhow::ensure!(Instant::now() < deadline, "the campaign did not finish");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    anyhow::ensure!(done["status"] == "sent", "the campaign ended {done}");
    let rss_after = peak_rss(server.0.id());
    let mut found = Vec::new();
    for event_type in ["notification.launched", "notification.audience_resolved", "notification.sent"] {
        let page: Value = client
            .get(format!("{base}/v1/events?type={event_type}&limit=10"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let event = page["events"].get(0).cloned();
        found.push(event.ok_or_else(|| anyhow::anyhow!("no {event_type} event"))?);
    }
    let (launched, resolved, finished) = (found[0].clone(), found[1].clone(), found[2].clone());
    let resolution = (at(&resolved) - at(&launched)).as_seconds_f64();
    let sending = (at(&finished) - at(&resolved)).as_seconds_f64();
    let delivered = done["sent"]["android"].as_u64().unwrap_or(0);
    anyhow::ensure!(delivered as usize == args.devices, "delivered {delivered} of {}", args.devices);
    drop(server);
    let provider_requests = sent.load(Ordering::Relaxed);

    let plain = plain_posts(fcm, args.devices.min(200_000), 256).await?;
    let sends_per_sec = (delivered as f64 / sending).round();
    println!(
        "{}",
        json!({"bench": "campaign", "backend": args.backend.name(), "devices": args.devices,
               "load_seconds": (load_seconds * 10.0).round() / 10.0,
               "audience_resolution_seconds": (resolution * 100.0).round() / 100.0,
               "sending_seconds": (sending * 100.0).round() / 100.0,
               "sends_per_sec": sends_per_sec,
               "provider_requests": provider_requests,
               "plain_posts_per_sec": plain.round(),
               "ratio_to_plain": ((sends_per_sec / plain) * 1000.0).round() / 1000.0,
               "server_peak_rss_mib_before": rss_before, "server_peak_rss_mib_after": rss_after})
    );
    db.cleanup().await?;
    Ok(())
}
