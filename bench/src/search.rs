//! Device search at scale: load N devices with 5 typed properties each
//! (appended straight to the log by concurrent writers), start a real
//! `herald serve` on that database, time how long its projections take to
//! catch up, then time searches over HTTP and read the server's peak memory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::app::{self, App, AppCommand, NewApiKey};
use domain::device::{self, DeviceEvent, PushToken};
use domain::ids::{ApiKeyId, AppId, ExternalId};
use domain::platform::{DevicePlatform, SendPlatform};
use domain::properties::PropertyValue;
use domain::role::Role;
use domain::text::Name;
use domain::{DomainEvent, Metadata};
use infra::runtime::commands::CommandBus;
use infra::secrets::{new_api_token, random_in_1_to, sha256_hex};
use infra::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, SqlEventStore};
use projections::db::Db;
use serde_json::{Value, json};

use crate::databases::{Backend, fresh};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    #[arg(long, default_value_t = 1_000_000)]
    devices: usize,
    #[arg(long, default_value_t = 32)]
    writers: usize,
    /// Timed runs per query (after 3 warm-up runs).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    #[arg(long, default_value = "target/release/herald")]
    herald_bin: PathBuf,
    /// Leave the database in place (for inspection) instead of dropping it.
    #[arg(long)]
    keep: bool,
}

/// A small deterministic generator, so every run loads the same data.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn properties(i: u64) -> domain::properties::Properties {
    let r = |salt: u64, n: u64| mix(i * 31 + salt) % n;
    let plan = match r(1, 10) {
        0 => "enterprise",
        1..=3 => "pro",
        _ => "free",
    };
    let tags: Vec<String> = (0..=r(2, 3))
        .map(|k| format!("t{}", r(3 + k, 10)))
        .collect();
    [
        ("plan".to_owned(), PropertyValue::Str(plan.into())),
        ("age".to_owned(), PropertyValue::Int(13 + r(4, 68) as i64)),
        ("beta".to_owned(), PropertyValue::Bool(r(5, 5) == 0)),
        ("tags".to_owned(), PropertyValue::List(tags)),
        (
            "app_version".to_owned(),
            PropertyValue::Str(format!("1.{}.{}", r(6, 20), r(7, 10))),
        ),
    ]
    .into_iter()
    .collect()
}

/// Creates an app (so also its default change queue) with a key holding
/// every role; returns the app and the key's token.
pub(crate) async fn create_app(store: &Arc<SqlEventStore>) -> anyhow::Result<(AppId, String)> {
    let app_id = AppId::generate();
    let token = new_api_token();
    let bus = CommandBus::new(store.clone());
    let create = AppCommand::Create {
        app_id,
        name: Name::parse("name", "bench")?,
        first_key: NewApiKey {
            key_id: ApiKeyId::generate(),
            name: Name::parse("name", "bench")?,
            roles: Role::SERVER.to_vec(),
            token_sha256: sha256_hex(token.as_bytes()),
        },
    };
    bus.execute::<App>(
        &app::stream(app_id),
        &Metadata::system(app_id, "bench"),
        create,
    )
    .await?;
    Ok((app_id, token))
}

/// Appends `devices` devices (a registration and a properties event each)
/// with `writers` concurrent writers; returns the seconds it took.
pub(crate) async fn load_devices(
    store: &Arc<SqlEventStore>,
    app_id: AppId,
    devices: usize,
    writers: usize,
) -> anyhow::Result<f64> {
    load_devices_from(store, app_id, 0, devices, writers).await
}

/// Registers devices `first..first + devices` (see [`load_devices`]).
pub(crate) async fn load_devices_from(
    store: &Arc<SqlEventStore>,
    app_id: AppId,
    first: usize,
    devices: usize,
    writers: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_writer = devices.div_ceil(writers);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let from = first + w * per_writer;
        let to = (first + (w + 1) * per_writer).min(first + devices);
        tasks.push(tokio::spawn(async move {
            for i in from..to {
                let request = AppendRequest {
                    stream: format!("device:dev-{i}"),
                    expected: ExpectedVersion::NoStream,
                    events: device_events(i as u64)?,
                    metadata: Metadata::system(app_id, "bench"),
                    new_key: None,
                };
                store.append(request).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Appends one device registration (a single event).
pub(crate) async fn append_registration(
    store: &dyn EventStore,
    app_id: AppId,
    i: usize,
) -> anyhow::Result<()> {
    let mut events = device_events(i as u64)?;
    events.truncate(1);
    let request = AppendRequest {
        stream: format!("device:dev-{i}"),
        expected: ExpectedVersion::NoStream,
        events,
        metadata: Metadata::system(app_id, "bench"),
        new_key: None,
    };
    store.append(request).await?;
    Ok(())
}

fn device_events(i: u64) -> anyhow::Result<Vec<NewEvent>> {
    let external_id = ExternalId::parse(format!("dev-{i}"))?;
    let registered = DeviceEvent::Registered {
        external_id: external_id.clone(),
        push_token: PushToken::parse(format!("token-{}", mix(i)))?,
        send_platform: if i.is_multiple_of(3) {
            SendPlatform::Apns
        } else {
            SendPlatform::Fcm
        },
        device_platform: if i.is_multiple_of(3) {
            DevicePlatform::Ios
        } else {
            DevicePlatform::Android
        },
        random_bucket: random_in_1_to(device::RANDOM_BUCKETS),
        user_id: None,
        has_permission: true,
    };
    let properties = DeviceEvent::PropertiesChanged {
        external_id,
        set: properties(i),
        removed: vec![],
    };
    Ok([registered, properties]
        .iter()
        .map(|e| {
            let (event_type, data) = e.encode();
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type,
                schema_version: 1,
                data,
            }
        })
        .collect())
}

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connections = u32::try_from(args.writers + 4).unwrap_or(64);
    let db = fresh(args.backend, &args.pg_url, connections).await?;
    let store = Arc::new(SqlEventStore::open(db.db.clone()).await?);

    // An app with a known key.
    let (app_id, token) = create_app(&store).await?;

    // Load.
    let load_seconds = load_devices(&store, app_id, args.devices, args.writers).await?;
    let head = store.head().await?;
    drop(store);

    // Serve, and wait for the read models.
    let port = 18099;
    let mut command = Command::new(&args.herald_bin);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&db.dir)
        .env("HERALD_ROOT_TOKEN", "hr_search_bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(schema) = &db.schema {
        command.env(
            "HERALD_DATABASE_URL",
            format!("{}?options=-csearch_path%3D{schema}", args.pg_url),
        );
    }
    let server = Server(command.spawn()?);
    let caught_up = Instant::now();
    wait_for_projections(&db.db, head).await?;
    let projection_seconds = caught_up.elapsed().as_secs_f64();
    let rss_after_load = peak_rss(server.0.id());

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/devices/search");
    let leaf =
        |key: &str, op: &str, value: Value| json!({"key": key, "operator": op, "value": value});
    let queries = vec![
        (
            "equality: plan = enterprise",
            leaf("plan", "str_eq", json!("enterprise")),
        ),
        (
            "integer range: 30 <= age < 35",
            json!({"join_type": "AND", "conditions": [
            leaf("age", "int_gte", json!(30)), leaf("age", "int_lt", json!(35))]}),
        ),
        (
            "OR of three leaves",
            json!({"join_type": "OR", "conditions": [
            leaf("plan", "str_eq", json!("enterprise")), leaf("beta", "bool_eq", json!(true)),
            leaf("tags", "str_exists", json!("t7"))]}),
        ),
        (
            "NOT: plan != free",
            json!({"not": leaf("plan", "str_eq", json!("free"))}),
        ),
        (
            "random_bucket <= 100",
            leaf("random_bucket", "int_lte", json!(100)),
        ),
        (
            "selective equality: app_version = 1.7.3",
            leaf("app_version", "str_eq", json!("1.7.3")),
        ),
    ];
    for (name, tree) in queries {
        let body = json!({"conditions": tree, "limit": 100});
        let mut times = Vec::with_capacity(args.runs);
        let mut found = 0;
        for run in 0..args.runs + 3 {
            let t = Instant::now();
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "{name}: {}", resp.status());
            let page: Value = resp.json().await?;
            if run >= 3 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            found = page["devices"].as_array().map_or(0, Vec::len);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{}",
            json!({"bench": "search", "backend": args.backend.name(), "devices": args.devices, "query": name,
                   "page": found, "p50_ms": round(pct(0.5)), "p95_ms": round(pct(0.95))})
        );
    }
    println!(
        "{}",
        json!({"bench": "search-load", "backend": args.backend.name(), "devices": args.devices,
               "events": head, "append_seconds": round(load_seconds),
               "append_devices_per_sec": (args.devices as f64 / load_seconds).round(),
               "projection_seconds": round(projection_seconds),
               "projection_events_per_sec": (head as f64 / projection_seconds).round(),
               "server_peak_rss_mib_after_catch_up": rss_after_load,
               "server_peak_rss_mib": peak_rss(server.0.id())})
    );
    drop(server);
    if args.keep {
        eprintln!("kept: {} {:?}", db.dir.display(), db.schema);
    } else {
        db.cleanup().await?;
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) async fn wait_for_projections(db: &Db, head: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let lowest: Option<i64> = projections::on_db!(db, |pool| {
            sqlx::query_scalar("SELECT MIN(position) FROM projection_checkpoints")
                .fetch_one(pool)
                .await
                .ok()
                .flatten()
        });
        if lowest.is_some_and(|p| p >= head) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "projections did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// VmHWM of a process, in MiB.
/// CPU seconds (user + system) a process has used so far (`self` for this one).
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 Hz on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) fn peak_rss(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| round(kb / 1024.0))
}
