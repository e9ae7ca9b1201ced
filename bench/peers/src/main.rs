//! `peer-bench`: Herald's append workload, run through a peer event-sourcing
//! framework (`cqrs-es` with its `postgres-es` / `sqlite-es` event repositories).
//!
//! N writer tasks each own 100 aggregates and execute commands round-robin
//! through `CqrsFramework::execute` (load aggregate by replaying its events,
//! handle the command, persist the resulting events with optimistic
//! concurrency) until E events have been written in total. Every command
//! emits two events with a ~150-byte JSON payload. Only the write phase is
//! timed; one JSON line with the result is printed to stdout.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent, EventStore};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Pool};

/// Aggregates owned by each writer; commands go to them round-robin.
const AGGREGATES_PER_WRITER: u64 = 100;
/// Events produced by one command.
const EVENTS_PER_COMMAND: u64 = 2;
/// Upper bound for the connection pool size.
const MAX_POOL: u32 = 100;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "peer-bench",
    about = "Append benchmark for cqrs-es (postgres-es / sqlite-es)"
)]
struct Args {
    /// Storage backend.
    #[arg(long, value_enum)]
    backend: Backend,
    /// Number of concurrent writer tasks.
    #[arg(long, default_value_t = 16)]
    writers: u64,
    /// Total number of events to write across all writers (rounded up to a
    /// multiple of 2, since every command emits two events).
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// PostgreSQL connection URL (a fresh schema is created and dropped in it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    /// Directory for the SQLite database file (created if missing; a fresh
    /// uniquely-named db file is created inside and removed afterwards).
    #[arg(long, default_value = "/tmp/peer-bench-sqlite")]
    sqlite_dir: PathBuf,
}

// ---------------------------------------------------------------------------
// Domain: one aggregate type, one command, one event type
// ---------------------------------------------------------------------------

/// A stream of numbered notes. The state is small; it is rebuilt on every
/// command by replaying the aggregate's events (the framework's default
/// event-sourced store, no snapshots).
#[derive(Debug, Default, Serialize, Deserialize)]
struct NoteStream {
    count: u64,
    last_n: i64,
}

/// Appends two notes, `n` and `n + 1`, sharing the same text.
#[derive(Debug)]
struct AppendPair {
    n: i64,
    text: Arc<str>,
}

/// Serialized payload: `{"n":<i64>,"text":"<~125 chars>"}`, about 150 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NoteAppended {
    n: i64,
    text: String,
}

impl DomainEvent for NoteAppended {
    fn event_type(&self) -> String {
        "NoteAppended".to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug)]
struct NoteError(String);

impl std::fmt::Display for NoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoteError {}

impl Aggregate for NoteStream {
    const TYPE: &'static str = "note_stream";
    type Command = AppendPair;
    type Event = NoteAppended;
    type Error = NoteError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.count > 0 && command.n <= self.last_n {
            return Err(NoteError(format!(
                "note numbers must increase: got {} after {}",
                command.n, self.last_n
            )));
        }
        let text = command.text.to_string();
        sink.write(
            NoteAppended {
                n: command.n,
                text: text.clone(),
            },
            self,
        )
        .await;
        sink.write(
            NoteAppended {
                n: command.n + 1,
                text,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.count += 1;
        self.last_n = event.n;
    }
}

/// ~125 characters of text; with `{"n":<number>,"text":"..."}` around it the
/// JSON payload is about 150 bytes.
fn payload_text() -> Arc<str> {
    let base = "the quick brown fox jumps over the lazy dog while herald appends events to the log; \
                payload padding text for the benchmark 0123";
    debug_assert!(base.len() >= 120);
    Arc::from(base)
}

// ---------------------------------------------------------------------------
// Write phase (shared by both backends)
// ---------------------------------------------------------------------------

struct Outcome {
    events: u64,
    seconds: f64,
    conflicts: u64,
}

/// Runs `writers` tasks that together execute `commands` commands, and times
/// them. Writer `w` owns aggregates `w{w}-a{0..100}` and cycles through them.
async fn run_writers<ES>(
    framework: CqrsFramework<NoteStream, ES>,
    writers: u64,
    commands: u64,
) -> Result<Outcome>
where
    ES: EventStore<NoteStream> + 'static,
    ES::AC: Send,
{
    let framework = Arc::new(framework);
    let conflicts = Arc::new(AtomicU64::new(0));
    let text = payload_text();

    // Split the commands as evenly as possible over the writers.
    let per_writer = commands / writers;
    let remainder = commands % writers;

    let start = Instant::now();
    let mut handles = Vec::with_capacity(writers as usize);
    for w in 0..writers {
        let my_commands = per_writer + u64::from(w < remainder);
        let framework = Arc::clone(&framework);
        let conflicts = Arc::clone(&conflicts);
        let text = Arc::clone(&text);
        handles.push(tokio::spawn(async move {
            let ids: Vec<String> = (0..AGGREGATES_PER_WRITER)
                .map(|a| format!("w{w}-a{a}"))
                .collect();
            let mut next_n = vec![0i64; ids.len()];
            for i in 0..my_commands {
                let slot = (i % AGGREGATES_PER_WRITER) as usize;
                loop {
                    let cmd = AppendPair {
                        n: next_n[slot],
                        text: Arc::clone(&text),
                    };
                    match framework.execute(&ids[slot], cmd).await {
                        Ok(()) => break,
                        Err(AggregateError::AggregateConflict) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            return Err(anyhow::anyhow!(
                                "writer {w}, aggregate {}: {e}",
                                ids[slot]
                            ));
                        }
                    }
                }
                next_n[slot] += EVENTS_PER_COMMAND as i64;
            }
            Ok::<u64, anyhow::Error>(my_commands * EVENTS_PER_COMMAND)
        }));
    }

    let mut events = 0;
    for handle in handles {
        events += handle.await.context("writer task panicked")??;
    }
    let seconds = start.elapsed().as_secs_f64();

    Ok(Outcome {
        events,
        seconds,
        conflicts: conflicts.load(Ordering::Relaxed),
    })
}

/// Opens every pool connection once before timing, so connection set-up is
/// not part of the measured write phase.
async fn warm_pool<DB: sqlx::Database>(pool: &Pool<DB>, size: u32) -> Result<()> {
    let mut held = Vec::with_capacity(size as usize);
    for _ in 0..size {
        held.push(pool.acquire().await.context("warming pool")?);
    }
    drop(held);
    Ok(())
}

fn pool_size(writers: u64) -> u32 {
    u32::try_from(writers.saturating_add(4))
        .unwrap_or(MAX_POOL)
        .min(MAX_POOL)
}

fn random_suffix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// `events` table as documented by postgres-es (db/init.sql). The snapshot
/// table is only needed for snapshot stores and is not created.
const PG_EVENTS_DDL: &str = "
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
)";

async fn bench_postgres(args: &Args, commands: u64) -> Result<Outcome> {
    let schema = format!("peer_{}", random_suffix());
    let base = PgConnectOptions::from_str(&args.pg_url).context("parsing --pg-url")?;

    // Setup on a separate admin connection (no search_path override).
    let mut admin = sqlx::PgConnection::connect_with(&base)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await?;

    let result: Result<Outcome> = async {
        let opts = base.clone().options([("search_path", schema.as_str())]);
        let size = pool_size(args.writers);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts)
            .await
            .context("creating PostgreSQL pool")?;
        sqlx::query(PG_EVENTS_DDL)
            .execute(&pool)
            .await
            .context("creating events table")?;
        warm_pool(&pool, size).await?;

        let framework = postgres_es::postgres_cqrs::<NoteStream>(pool.clone(), vec![], ());
        let outcome = run_writers(framework, args.writers, commands).await?;

        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await?;
        verify_count(stored, outcome.events)?;
        pool.close().await;
        Ok(outcome)
    }
    .await;

    // Always drop the schema, even if the run failed.
    let dropped = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut admin)
        .await;
    admin.close().await.ok();
    let outcome = result?;
    dropped.context("dropping benchmark schema")?;
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

/// `events` table as documented by sqlite-es (migrations/…_init.sql).
const SQLITE_EVENTS_DDL: &str = "
CREATE TABLE events
(
  aggregate_type text                          NOT NULL,
  aggregate_id   text                          NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text                          NOT NULL,
  event_version  text                          NOT NULL,
  payload        text                          NOT NULL,
  metadata       text                          NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT";

async fn bench_sqlite(args: &Args, commands: u64) -> Result<Outcome> {
    std::fs::create_dir_all(&args.sqlite_dir)
        .with_context(|| format!("creating {}", args.sqlite_dir.display()))?;
    let db = args.sqlite_dir.join(format!("peer-{}.db", random_suffix()));

    let result: Result<Outcome> = async {
        let opts = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let size = pool_size(args.writers);
        let pool = SqlitePoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts)
            .await
            .context("opening SQLite database")?;
        sqlx::query(SQLITE_EVENTS_DDL)
            .execute(&pool)
            .await
            .context("creating events table")?;
        warm_pool(&pool, size).await?;

        let framework = sqlite_es::sqlite_cqrs::<NoteStream>(pool.clone(), vec![], ());
        let outcome = run_writers(framework, args.writers, commands).await?;

        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await?;
        verify_count(stored, outcome.events)?;
        pool.close().await;
        Ok(outcome)
    }
    .await;

    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    result
}

fn verify_count(stored: i64, written: u64) -> Result<()> {
    if u64::try_from(stored).ok() != Some(written) {
        bail!("event count mismatch: table holds {stored}, writers reported {written}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------

/// The one output line; field order is the documented key order.
#[derive(Serialize)]
struct Report {
    system: &'static str,
    backend: &'static str,
    writers: u64,
    events: u64,
    seconds: f64,
    events_per_sec: f64,
    conflicts: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.writers == 0 {
        bail!("--writers must be at least 1");
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let commands = args.events.div_ceil(EVENTS_PER_COMMAND);
    if args.events % EVENTS_PER_COMMAND != 0 {
        eprintln!(
            "note: --events {} is odd; writing {} events ({} commands x 2)",
            args.events,
            commands * EVENTS_PER_COMMAND,
            commands
        );
    }

    let outcome = match args.backend {
        Backend::Postgres => bench_postgres(&args, commands).await?,
        Backend::Sqlite => bench_sqlite(&args, commands).await?,
    };

    let line = serde_json::to_string(&Report {
        system: "cqrs-es",
        backend: args.backend.name(),
        writers: args.writers,
        events: outcome.events,
        seconds: outcome.seconds,
        events_per_sec: outcome.events as f64 / outcome.seconds,
        conflicts: outcome.conflicts,
    })?;
    println!("{line}");
    Ok(())
}
