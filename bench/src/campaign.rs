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
use crate::search::{Server, cpu_seconds, create_app, peak_rss, wait_for_projections};

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
    /// Only the plain POSTs (Herald's push client; reqwest over HTTP/1.1
    /// and HTTP/2), `--devices` of them with `--writers` in flight.
    #[arg(long)]
    plain_only: bool,
    /// External ids in no relation to the order devices registered in (as
    /// in real apps), instead of `dev-<n>` in registration order.
    #[arg(long)]
    scattered_ids: bool,
}

/// Device `i`'s external id: `dev-<i>`, or a bijective scramble of `i`
/// (splitmix64's finalizer), so ids sort in no relation to `i`.
fn external_id(i: usize, scattered: bool) -> String {
    if !scattered {
        return format!("dev-{i}");
    }
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("dev-{:016x}", z ^ (z >> 31))
}

/// An RSA key for the stand-in's service account (test-only).
const KEY_PEM: &str = include_str!("../../tests/support/fixtures/fcm-test-key.pem");

/// Starts the FCM stand-in (`herald-bench fake-fcm`) in its own process;
/// returns it and its address.
fn fake_fcm() -> anyhow::Result<(Server, std::net::SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("fake-fcm")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
    }
    let server = Server(child);
    Ok((server, line.trim().parse()?))
}

/// How many messages the stand-in has accepted.
async fn accepted(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    let count: Value = reqwest::get(format!("http://{addr}/count"))
        .await?
        .json()
        .await?;
    count["count"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the stand-in answered {count}"))
}

/// `devices` FCM devices, one registration event each.
async fn load(
    store: &Arc<SqlEventStore>,
    app_id: AppId,
    devices: usize,
    writers: usize,
    scattered: bool,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per = devices.div_ceil(writers);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in w * per..((w + 1) * per).min(devices) {
                let id = external_id(i, scattered);
                let event = DeviceEvent::Registered {
                    external_id: ExternalId::parse(id.clone())?,
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
                        stream: format!("device:{id}"),
                        expected: ExpectedVersion::NoStream,
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::now_v7(),
                            event_type,
                            schema_version: 1,
                            data,
                        }],
                        metadata: Metadata::system(app_id, "bench"),
                        new_key: None,
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

/// What plain POSTs to the stand-in came to.
struct Plain {
    per_sec: f64,
    /// CPU per post: the client's (this process) and the stand-in's.
    client_us: f64,
    stand_in_us: f64,
}

/// The client plain POSTs go through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Herald's push client (`infra::reactors::push::http::PushHttp`), over HTTP/1.1.
    PushHttp,
    /// reqwest, over HTTP/1.1 or, with `http2`, cleartext HTTP/2.
    Reqwest { http2: bool },
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::PushHttp => "push_http",
            Peer::Reqwest { http2: false } => "reqwest",
            Peer::Reqwest { http2: true } => "reqwest_h2",
        }
    }
}

/// POSTs of a campaign-sized body from one client with `concurrency` in
/// flight: what sending alone costs and achieves here.
async fn plain_posts(
    fcm: &(Server, std::net::SocketAddr),
    n: usize,
    concurrency: usize,
    peer: Peer,
) -> anyhow::Result<Plain> {
    let url = format!("http://{}/v1/projects/bench/messages:send", fcm.1);
    let body = json!({"message": {"token": format!("fcm-token-{}", "x".repeat(148)),
        "notification": {"title": "Bench", "body": "A campaign"}, "data": {}, "android": {"priority": "HIGH"}}})
    .to_string();
    let push = infra::reactors::push::http::PushHttp::new(
        infra::reactors::push::http::Versions::Negotiated,
        concurrency,
        Duration::from_secs(10),
    )
    .map_err(anyhow::Error::msg)?;
    let reqwest = match peer {
        Peer::Reqwest { http2: true } => {
            reqwest::Client::builder().http2_prior_knowledge().build()?
        }
        _ => reqwest::Client::new(),
    };
    let auth = http::HeaderValue::from_static("Bearer bench");
    let next = Arc::new(AtomicUsize::new(0));
    let stand_in = fcm.0.0.id().to_string();
    let (own_cpu, stand_in_cpu) = (cpu_seconds("self"), cpu_seconds(&stand_in));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (push, reqwest, next, url, body, auth) = (
            push.clone(),
            reqwest.clone(),
            next.clone(),
            url.clone(),
            body.clone(),
            auth.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let target: http::Uri = url.parse()?;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if peer == Peer::PushHttp {
                    let mut headers = http::HeaderMap::new();
                    headers.insert(http::header::AUTHORIZATION, auth.clone());
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    let answer = push
                        .post(target.clone(), headers, body.clone().into())
                        .await;
                    anyhow::ensure!(answer.is_ok_and(|a| a.status == 200), "a plain POST failed");
                } else {
                    let response = reqwest
                        .post(&url)
                        .header(http::header::AUTHORIZATION, auth.clone())
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    response.bytes().await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let per_sec = n as f64 / started.elapsed().as_secs_f64();
    let us = |seconds: f64| (seconds * 1e7 / n as f64).round() / 10.0;
    Ok(Plain {
        per_sec,
        client_us: us(cpu_seconds("self") - own_cpu),
        stand_in_us: us(cpu_seconds(&stand_in) - stand_in_cpu),
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fcm = fake_fcm()?;
    if args.plain_only {
        for peer in [
            Peer::PushHttp,
            Peer::Reqwest { http2: false },
            Peer::Reqwest { http2: true },
        ] {
            let plain = plain_posts(&fcm, args.devices, args.writers, peer).await?;
            println!(
                "{}",
                json!({"bench": "campaign_plain", "client": peer.name(), "posts_per_sec": plain.per_sec.round(),
                "client_cpu_us_per_post": plain.client_us, "stand_in_cpu_us_per_post": plain.stand_in_us})
            );
        }
        return Ok(());
    }
    let db = fresh(
        args.backend,
        &args.pg_url,
        u32::try_from(args.writers + 4).unwrap_or(64),
    )
    .await?;
    let store = Arc::new(SqlEventStore::open(db.db.clone()).await?);
    let (app_id, token) = create_app(&store).await?;
    let load_seconds = load(
        &store,
        app_id,
        args.devices,
        args.writers,
        args.scattered_ids,
    )
    .await?;
    let head = store.head().await?;
    drop(store);

    let fcm_addr = fcm.1;
    let port = 18098;
    let mut command = Command::new(&args.herald_bin);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&db.dir)
        .env("HERALD_ROOT_TOKEN", "hr_campaign_bench")
        .env("HERALD_FCM_URL", format!("http://{fcm_addr}"))
        .env("HERALD_FCM_TOKEN_URL", format!("http://{fcm_addr}/token"))
        .env(
            "RUST_LOG",
            std::env::var("HERALD_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(schema) = &db.schema {
        command.env(
            "HERALD_DATABASE_URL",
            format!("{}?options=-csearch_path%3D{schema}", args.pg_url),
        );
    }
    let server = Server(command.spawn()?);
    wait_for_projections(&db.db, head).await?;
    let rss_before = peak_rss(server.0.id());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let account = json!({"type": "service_account", "project_id": "bench", "private_key_id": "k",
        "private_key": KEY_PEM, "client_email": "bench@bench.iam.gserviceaccount.com",
        "token_uri": format!("http://{fcm_addr}/token")});
    let put = client
        .put(format!("{base}/v1/push-credentials/fcm"))
        .bearer_auth(&token)
        .json(&json!({"service_account": account}))
        .send()
        .await?;
    anyhow::ensure!(
        put.status().is_success(),
        "credentials: {}",
        put.text().await?
    );

    let stand_in = fcm.0.0.id().to_string();
    let (herald_cpu, stand_in_cpu) = (
        cpu_seconds(&server.0.id().to_string()),
        cpu_seconds(&stand_in),
    );
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
    let herald_cpu = cpu_seconds(&server.0.id().to_string()) - herald_cpu;
    let stand_in_cpu = cpu_seconds(&stand_in) - stand_in_cpu;
    let mut found = Vec::new();
    for event_type in [
        "notification.launched",
        "notification.audience_resolved",
        "notification.sent",
    ] {
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
    anyhow::ensure!(
        delivered as usize == args.devices,
        "delivered {delivered} of {}",
        args.devices
    );
    drop(server);
    let provider_requests = accepted(fcm_addr).await?;

    let plain = plain_posts(&fcm, args.devices.min(200_000), 256, Peer::PushHttp).await?;
    let reqwest = plain_posts(
        &fcm,
        args.devices.min(200_000),
        256,
        Peer::Reqwest { http2: false },
    )
    .await?;
    let sends_per_sec = (delivered as f64 / sending).round();
    let us = |seconds: f64| (seconds * 1e7 / delivered as f64).round() / 10.0;
    println!(
        "{}",
        json!({"bench": "campaign", "backend": args.backend.name(), "devices": args.devices,
               "scattered_ids": args.scattered_ids,
               "load_seconds": (load_seconds * 10.0).round() / 10.0,
               "audience_resolution_seconds": (resolution * 100.0).round() / 100.0,
               "sending_seconds": (sending * 100.0).round() / 100.0,
               "sends_per_sec": sends_per_sec,
               "provider_requests": provider_requests,
               "plain_posts_per_sec": plain.per_sec.round(),
               "ratio_to_plain": ((sends_per_sec / plain.per_sec) * 1000.0).round() / 1000.0,
               // CPU per message: Herald's whole process (sender, projections,
               // log) beside a plain client's, and the stand-in's in each case.
               "herald_cpu_us_per_send": us(herald_cpu),
               "stand_in_cpu_us_per_send": us(stand_in_cpu),
               "plain_client_cpu_us_per_post": plain.client_us,
               "plain_stand_in_cpu_us_per_post": plain.stand_in_us,
               // The same POSTs through reqwest, which sends used before.
               "reqwest_posts_per_sec": reqwest.per_sec.round(),
               "reqwest_client_cpu_us_per_post": reqwest.client_us,
               "server_peak_rss_mib_before": rss_before, "server_peak_rss_mib_after": rss_after})
    );
    db.cleanup().await?;
    Ok(())
}
