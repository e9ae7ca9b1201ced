//! One rebuild at a time per database, and where the running one stands.
//!
//! A rebuild (or a dry run) holds a lock for as long as it runs: a session
//! advisory lock on PostgreSQL (on a connection of its own), an exclusive
//! lock on `<database file>.rebuild.lock` on SQLite. Both go with the
//! process, so a rebuild killed midway never leaves the lock behind. A
//! second rebuild is refused at once, naming where the first one is.
//!
//! A rebuild that switches its models in writes its progress to the live
//! database's `rebuilds` row from the moment it takes the lock and about
//! every second after, for `GET /v1/admin/projections`; the row goes when
//! the switch is done. A rebuild that fails says why in its row; a row no
//! longer renewed is a rebuild that stopped (interrupted: run it again to
//! resume).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use projections::db::Db;
use projections::{on_db, on_tx};
use serde::Serialize;
use sqlx::Connection;

use super::RuntimeError;
use super::rebuild::Progress;
use crate::clock::{Clock, SystemClock};

/// How often progress is written.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// A row renewed within this long is a running rebuild.
const RUNNING_WITHIN: chrono::Duration = chrono::Duration::seconds(15);

/// The lock, held while a rebuild runs.
pub struct Guard {
    db: Db,
    held: Held,
    projections: String,
    started_at: DateTime<Utc>,
    reported: Option<Instant>,
}

enum Held {
    Postgres(sqlx::PgConnection),
    Sqlite(std::fs::File),
}

/// FNV-1a of the schema: the advisory lock's key, stable across processes.
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("herald.rebuild.{schema}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Takes the lock, or says who holds it.
pub async fn take(live: &Db, projections: &[&str]) -> Result<Guard, RuntimeError> {
    let mut guard = exclude(live).await?;
    guard.projections = projections.join(",");
    // Seen at once, before the shadow is opened (on PostgreSQL that takes
    // seconds) and anything is counted.
    if let Err(e) = guard.write(Progress::default()).await {
        tracing::debug!(error = %e, "cannot record the rebuild's start");
    }
    Ok(guard)
}

/// Takes the lock without a rebuild to report: keeps rebuilds out while
/// it is held (see `rebuild::discard_stopped`), or says who holds it.
pub async fn exclude(live: &Db) -> Result<Guard, RuntimeError> {
    let held = match live {
        Db::Postgres(p) => {
            let mut conn = sqlx::PgConnection::connect_with(&p.pool.connect_options()).await?;
            // Tried once: a second rebuild is refused at once, never left
            // waiting to run after the first. (A rebuild that stopped
            // leaves no lock behind: its session ends with its connection.)
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(lock_key(&p.schema))
                .fetch_one(&mut conn)
                .await?;
            if !got {
                let _ = conn.close().await;
                return Err(busy(live).await);
            }
            Held::Postgres(conn)
        }
        Db::Sqlite(s) => {
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&s.reader)
                    .await?;
            let path = format!("{file}.rebuild.lock");
            let lock = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| internal(format!("cannot open {path}: {e}")))?;
            match lock.try_lock() {
                Ok(()) => Held::Sqlite(lock),
                Err(std::fs::TryLockError::WouldBlock) => return Err(busy(live).await),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(internal(format!("cannot lock {path}: {e}")));
                }
            }
        }
    };
    Ok(Guard {
        db: live.clone(),
        held,
        projections: String::new(),
        started_at: SystemClock.now(),
        reported: None,
    })
}

fn internal(message: String) -> RuntimeError {
    RuntimeError::Store(crate::store::StoreError::Internal(message))
}

async fn busy(live: &Db) -> RuntimeError {
    let detail = match current(live).await {
        Ok(Some(r)) if r.events_total == 0 => format!(
            " ({}, started {}, still counting what it reads)",
            r.projections.join(", "),
            r.started_at.to_rfc3339(),
        ),
        Ok(Some(r)) => format!(
            " ({}, started {}, {} of {} events read, at position {} of {})",
            r.projections.join(", "),
            r.started_at.to_rfc3339(),
            r.events_read,
            r.events_total,
            r.position,
            r.head
        ),
        _ => String::new(),
    };
    RuntimeError::Busy(format!(
        "another rebuild is running on this database{detail}; wait for it to finish \
         (GET /v1/admin/projections shows its progress), or stop it and run this again"
    ))
}

impl Guard {
    /// Records where the rebuild is, at most every [`REPORT_EVERY`]; a
    /// failure to write it is logged, never the rebuild's failure.
    pub async fn report(&mut self, p: Progress) {
        if self.reported.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        self.reported = Some(Instant::now());
        if let Err(e) = self.write(p).await {
            tracing::debug!(error = %e, "cannot record the rebuild's progress");
        }
    }

    async fn write(&self, p: Progress) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_relaxed().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO rebuilds (id, projections, started_at, position, head, \
                 events_per_second, updated_at, events_read, events_total, step, error) \
                 VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) \
                 ON CONFLICT (id) DO UPDATE SET projections = excluded.projections, \
                 started_at = excluded.started_at, position = excluded.position, \
                 head = excluded.head, events_per_second = excluded.events_per_second, \
                 updated_at = excluded.updated_at, events_read = excluded.events_read, \
                 events_total = excluded.events_total, step = excluded.step, error = NULL",
            )
            .bind(&self.projections)
            .bind(self.started_at.timestamp_micros())
            .bind(p.position)
            .bind(p.head)
            .bind(p.events_per_second)
            .bind(SystemClock.now().timestamp_micros())
            .bind(i64::try_from(p.applied).unwrap_or(i64::MAX))
            .bind(i64::try_from(p.total).unwrap_or(i64::MAX))
            .bind(p.step)
            .execute(c)
            .await?;
        });
        tx.commit().await
    }

    /// The rebuild is done: its row goes, the lock is released.
    pub async fn finish(self) -> Result<(), RuntimeError> {
        let mut tx = self.db.begin_relaxed().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM rebuilds").execute(c).await?;
        });
        tx.commit().await?;
        self.release().await;
        Ok(())
    }

    /// The rebuild failed with `error`: its row says so (and that it no
    /// longer runs), the lock is released. Its shadow stays: run it again
    /// to resume.
    pub async fn fail(self, error: &str) {
        let written = async {
            let mut tx = self.db.begin_relaxed().await?;
            on_tx!(&mut tx, |c| {
                sqlx::query("UPDATE rebuilds SET error = $1, updated_at = $2 WHERE id = 1")
                    .bind(error)
                    .bind(SystemClock.now().timestamp_micros())
                    .execute(c)
                    .await?;
            });
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "cannot record the rebuild's failure");
        }
        self.release().await;
    }

    /// Releases the lock, leaving the row (an interrupted rebuild).
    pub async fn release(self) {
        match self.held {
            Held::Postgres(conn) => {
                let _ = conn.close().await;
            }
            Held::Sqlite(file) => {
                let _ = file.unlock();
            }
        }
    }
}

/// A rebuild as `GET /v1/admin/projections` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projections: Vec<String>,
    pub started_at: DateTime<Utc>,
    /// When it last said where it was.
    pub updated_at: DateTime<Utc>,
    /// Its lowest shadow checkpoint.
    pub position: i64,
    /// The log's head when it started (it then catches up with what came
    /// after, in the switch).
    pub head: i64,
    /// Events it has read so far, and reads in all (counted when it
    /// started, grown by what it finds to catch up with).
    pub events_read: i64,
    pub events_total: i64,
    /// `events_read` of `events_total`, 0 to 100.
    pub percent: f64,
    /// What it is doing: `bulk load`, `indexes` (on SQLite `indexes and
    /// copy into the live file`), `catch-up`, `switch`; empty while it
    /// prepares.
    pub step: String,
    pub events_per_second: f64,
    /// What is left to read at the rate so far, while it runs.
    pub eta_seconds: Option<f64>,
    /// False once it failed, or has not reported for 15 s: it stopped (run
    /// it again to resume from its checkpoints).
    pub running: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The rebuild running, or the last one interrupted, if any.
pub async fn current(db: &Db) -> Result<Option<RebuildReport>, sqlx::Error> {
    type Row = (
        String,
        i64,
        i64,
        i64,
        i64,
        f64,
        i64,
        i64,
        String,
        Option<String>,
    );
    let row: Option<Row> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT projections, started_at, updated_at, position, head, events_per_second, \
             events_read, events_total, step, error FROM rebuilds WHERE id = 1",
        )
        .fetch_optional(pool)
        .await?
    });
    let at = |m: i64| DateTime::from_timestamp_micros(m).unwrap_or_default();
    Ok(row.map(
        |(projections, started, updated, position, head, rate, read, total, step, error)| {
            let updated_at = at(updated);
            let running = error.is_none() && SystemClock.now() - updated_at < RUNNING_WITHIN;
            RebuildReport {
                projections: projections.split(',').map(str::to_owned).collect(),
                started_at: at(started),
                updated_at,
                position,
                head,
                events_read: read,
                events_total: total,
                percent: if total > 0 {
                    (read as f64 * 100.0 / total as f64).min(100.0)
                } else {
                    0.0
                },
                step,
                events_per_second: rate,
                eta_seconds: (running && rate > 0.0 && total > 0)
                    .then(|| (total - read).max(0) as f64 / rate),
                running,
                error,
            }
        },
    ))
}
