//! Append throughput with N concurrent writers. Three systems over the same
//! rows (2 events of ~150 bytes per append, each writer owning 100 streams):
//!
//! * `log`: Herald's event store (`EventStore::append` with an exact
//!   expected version);
//! * `command`: Herald's command path (load the stream, decide, append);
//! * `plain`: the limit — the same rows as one multi-row `INSERT` per append,
//!   with the same table, indexes and durability, and none of the log's
//!   guarantees (no ordering lock, no expectation, no hash chain).

use std::sync::Arc;
use std::time::Instant;

use domain::ids::AppId;
use domain::{Aggregate, DomainError, DomainEvent, Metadata};
use infra::runtime::commands::CommandBus;
use infra::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, SqlEventStore};
use projections::db::Db;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::databases::{Backend, fresh};

const STREAMS_PER_WRITER: usize = 100;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    #[arg(long)]
    writers: usize,
    /// Events to write in all (2 per append).
    #[arg(long)]
    events: usize,
    #[arg(long, value_delimiter = ',', default_value = "log,command,plain")]
    systems: Vec<String>,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    for system in &args.systems {
        let connections = u32::try_from(args.writers + 4).unwrap_or(100).min(100);
        let db = fresh(args.backend, &args.pg_url, connections).await?;
        let appends = args.events / 2 / args.writers;
        let started = Instant::now();
        match system.as_str() {
            "log" => log(&db.db, args.writers, appends).await?,
            "command" => command(&db.db, args.writers, appends).await?,
            "plain" => plain(&db.db, args.writers, appends).await?,
            other => anyhow::bail!("unknown system {other}"),
        }
        let seconds = started.elapsed().as_secs_f64();
        let events = appends * args.writers * 2;
        let line = json!({
            "system": format!("herald-{system}"),
            "backend": args.backend.name(),
            "writers": args.writers,
            "events": events,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "events_per_sec": (events as f64 / seconds).round(),
        });
        println!("{line}");
        db.cleanup().await?;
    }
    Ok(())
}

fn payload(n: usize) -> Value {
    json!({"n": n, "text": "x".repeat(120)})
}

fn events(n: usize) -> Vec<NewEvent> {
    ["bench.bumped", "bench.noted"]
        .into_iter()
        .map(|t| NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: t.into(),
            schema_version: 1,
            data: payload(n),
        })
        .collect()
}

async fn log(db: &Db, writers: usize, appends: usize) -> anyhow::Result<()> {
    let store = Arc::new(SqlEventStore::open(db.clone()).await?);
    let app = AppId::generate();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = vec![0i64; STREAMS_PER_WRITER];
            for i in 0..appends {
                let s = i % STREAMS_PER_WRITER;
                let request = AppendRequest {
                    stream: format!("bench:{w}-{s}"),
                    expected: ExpectedVersion::from_loaded(versions[s]),
                    events: events(i),
                    metadata: Metadata::system(app, "bench"),
                    new_key: None,
                };
                versions[s] = store.append(request).await?.stream_version;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// A counter whose one command writes two events.
#[derive(Default)]
struct Counter {
    n: i64,
}

#[derive(Clone)]
struct Bump(usize);

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CounterEvent {
    #[serde(rename = "bench.bumped")]
    Bumped { n: usize, text: String },
    #[serde(rename = "bench.noted")]
    Noted { n: usize, text: String },
}

impl DomainEvent for CounterEvent {}

impl Aggregate for Counter {
    type Command = Bump;
    type Event = CounterEvent;

    fn decide(&self, Bump(n): Bump) -> Result<Vec<CounterEvent>, DomainError> {
        let text = "x".repeat(120);
        Ok(vec![
            CounterEvent::Bumped {
                n,
                text: text.clone(),
            },
            CounterEvent::Noted { n, text },
        ])
    }

    fn evolve(&mut self, event: &CounterEvent) {
        if let CounterEvent::Bumped { .. } = event {
            self.n += 1;
        }
    }
}

async fn command(db: &Db, writers: usize, appends: usize) -> anyhow::Result<()> {
    let store: Arc<dyn EventStore> = Arc::new(SqlEventStore::open(db.clone()).await?);
    let bus = CommandBus::new(store);
    let app = AppId::generate();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let metadata = Metadata::system(app, "bench");
            for i in 0..appends {
                let stream = format!("bench:{w}-{}", i % STREAMS_PER_WRITER);
                bus.execute::<Counter>(&stream, &metadata, Bump(i)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Two rows per statement, as one append writes them.
const PLAIN_INSERT: &str = "INSERT INTO plain_events (event_id, app_id, stream, stream_version, \
     event_type, schema_version, data, metadata, recorded_at, hash) VALUES \
     ($1, $2, $3, $4, 'bench.bumped', 1, $5, $6, $7, $8), \
     ($9, $2, $3, $10, 'bench.noted', 1, $5, $6, $7, $8)";

async fn plain(db: &Db, writers: usize, appends: usize) -> anyhow::Result<()> {
    match db {
        Db::Sqlite(s) => {
            sqlx::raw_sql(
                "CREATE TABLE plain_events (position INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, \
                 app_id BLOB NOT NULL, stream TEXT NOT NULL, stream_version INTEGER NOT NULL, \
                 event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL, \
                 metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL, hash BLOB NOT NULL, \
                 UNIQUE (app_id, stream, stream_version)); \
                 CREATE INDEX plain_app_position ON plain_events (app_id, position);",
            )
            .execute(&s.writer)
            .await?;
        }
        Db::Postgres(p) => {
            sqlx::raw_sql(
                "CREATE TABLE plain_events (LIKE events INCLUDING ALL); \
                 CREATE SEQUENCE plain_positions OWNED BY plain_events.position; \
                 ALTER TABLE plain_events ALTER COLUMN position SET DEFAULT nextval('plain_positions');",
            )
            .execute(&p.pool)
            .await?;
        }
    }
    let app = AppId::generate();
    let metadata = serde_json::to_string(&Metadata::system(app, "bench"))?;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        let metadata = metadata.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = vec![0i64; STREAMS_PER_WRITER];
            for i in 0..appends {
                let s = i % STREAMS_PER_WRITER;
                let stream = format!("bench:{w}-{s}");
                let data = payload(i).to_string();
                let now = chrono::Utc::now().timestamp_micros();
                let v = versions[s];
                versions[s] += 2;
                let hash = vec![7u8; 32];
                macro_rules! insert_pair {
                    ($pool:expr) => {
                        sqlx::query(PLAIN_INSERT)
                            .bind(uuid::Uuid::now_v7())
                            .bind(app.0)
                            .bind(&stream)
                            .bind(v + 1)
                            .bind(&data)
                            .bind(&metadata)
                            .bind(now)
                            .bind(&hash)
                            .bind(uuid::Uuid::now_v7())
                            .bind(v + 2)
                            .execute($pool)
                            .await
                            .map(|_| ())
                    };
                }
                match &db {
                    Db::Sqlite(s) => insert_pair!(&s.writer)?,
                    Db::Postgres(p) => insert_pair!(&p.pool)?,
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
