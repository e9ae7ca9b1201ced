//! Runs projections: catch up at start, then follow the log.
//!
//! All projections advance together: one transaction per batch reads the
//! events after the lowest checkpoint, gives each projection the events past
//! its own checkpoint (and of the types it handles), and writes every
//! checkpoint with the rows. A crash therefore never applies an event twice
//! or skips one. On PostgreSQL the checkpoint rows are locked (`FOR UPDATE`,
//! in name order) for the batch, so any number of nodes can run the runner
//! safely: whoever holds the rows applies, the others see the checkpoints
//! move. Read-model transactions relax durability (see
//! `Db::begin_relaxed`): they are rebuilt from the log anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain::RecordedEvent;
use projections::Projection;
use projections::db::{Db, Tx};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{EventStore, StoreError, read_after_in};

/// Events read, applied and checkpointed per transaction.
const BATCH: usize = 1000;

struct Entry {
    projection: Arc<dyn Projection>,
    checkpoint: watch::Sender<i64>,
    statistics: std::sync::Mutex<Statistics>,
}

/// When to refresh the planner's statistics of a projection's tables: after
/// bulk changes the query planner otherwise works from empty or stale
/// statistics and can pick plans that are orders of magnitude slower.
/// Refreshed at start, then each time the events applied since the last
/// refresh reach the total applied before it (at least `MIN_EVENTS`): a
/// logarithmic number of refreshes during a bulk load.
#[derive(Default)]
struct Statistics {
    since: u64,
    before: u64,
}

impl Statistics {
    const MIN_EVENTS: u64 = 10_000;

    fn due(&mut self, applied: u64) -> bool {
        self.since += applied;
        if self.since >= self.before.max(Self::MIN_EVENTS) {
            self.before += self.since;
            self.since = 0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
pub struct ProjectionRunner {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    store: Arc<dyn EventStore>,
    /// By name: the lock order on PostgreSQL.
    entries: BTreeMap<&'static str, Entry>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
}

impl From<sqlx::Error> for RunnerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl ProjectionRunner {
    pub fn new(db: Db, store: Arc<dyn EventStore>, projections: Vec<Arc<dyn Projection>>) -> Self {
        let entries = projections
            .into_iter()
            .map(|p| {
                (
                    p.name(),
                    Entry {
                        projection: p,
                        checkpoint: watch::Sender::new(0),
                        statistics: Default::default(),
                    },
                )
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                db,
                store,
                entries,
                task: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Prepares every checkpoint (resetting a projection whose stored version
    /// differs from the code's) and starts following the log.
    pub async fn start(&self) -> Result<(), RunnerError> {
        for entry in self.inner.entries.values() {
            let position = prepare(&self.inner.db, entry.projection.as_ref()).await?;
            entry.checkpoint.send_replace(position);
            analyze(&self.inner.db, entry.projection.as_ref()).await;
        }
        let task = tokio::spawn(follow(Arc::downgrade(&self.inner)));
        if let Ok(mut slot) = self.inner.task.lock() {
            *slot = Some(task);
        }
        Ok(())
    }

    /// Stops following the log (a batch in progress rolls back).
    pub fn stop(&self) {
        if let Ok(mut task) = self.inner.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }

    /// Waits until projection `name` has applied `position`, at most `timeout`.
    /// Returns whether it got there.
    pub async fn wait_for(&self, name: &str, position: i64, timeout: Duration) -> bool {
        let Some(entry) = self.inner.entries.get(name) else {
            return false;
        };
        let mut rx = entry.checkpoint.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|cp| *cp >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until every projection has applied `position`.
    pub async fn wait_for_all(&self, position: i64, timeout: Duration) -> bool {
        for name in self.inner.entries.keys() {
            if !self.wait_for(name, position, timeout).await {
                return false;
            }
        }
        true
    }

    /// A receiver that changes whenever projection `name`'s checkpoint moves.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<i64>> {
        self.inner
            .entries
            .get(name)
            .map(|e| e.checkpoint.subscribe())
    }

    /// (name, version, checkpoint) of every projection, as this process knows them.
    pub fn checkpoints(&self) -> Vec<(&'static str, i32, i64)> {
        self.inner
            .entries
            .iter()
            .map(|(name, e)| (*name, e.projection.version(), *e.checkpoint.borrow()))
            .collect()
    }
}

/// Reads the stored checkpoint; creates it, or resets the projection when
/// its version changed.
pub(crate) async fn prepare(db: &Db, projection: &dyn Projection) -> Result<i64, RunnerError> {
    let mut tx = db.begin().await?;
    let stored = read_checkpoint(&mut tx, projection.name()).await?;
    let position = match stored {
        Some((version, position)) if version == projection.version() => position,
        stored => {
            if stored.is_some() {
                tracing::warn!(
                    projection = projection.name(),
                    "projection version changed; rebuilding it from the start of the log"
                );
            }
            for table in projection.tables() {
                let sql = format!("DELETE FROM {table}");
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(c).await?;
                });
            }
            write_checkpoint(&mut tx, projection.name(), projection.version(), 0).await?;
            0
        }
    };
    tx.commit().await?;
    Ok(position)
}

pub(crate) async fn read_checkpoint(
    tx: &mut Tx,
    name: &str,
) -> Result<Option<(i32, i64)>, RunnerError> {
    let row: Option<(i32, i64)> = match tx {
        Tx::Sqlite(c, _) => {
            sqlx::query_as("SELECT version, position FROM projection_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **c)
                .await?
        }
        Tx::Pg(c) => {
            sqlx::query_as(
                "SELECT version, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
            )
            .bind(name)
            .fetch_optional(&mut **c)
            .await?
        }
    };
    Ok(row)
}

pub(crate) async fn write_checkpoint(
    tx: &mut Tx,
    name: &str,
    version: i32,
    position: i64,
) -> Result<(), RunnerError> {
    let now = chrono::Utc::now().timestamp_micros();
    projections::on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, version, position, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
             SET version = excluded.version, position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version)
        .bind(position)
        .bind(now)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Refreshes the planner statistics of a projection's tables. A failure is
/// logged and otherwise ignored: statistics only steer plans.
pub(crate) async fn analyze(db: &Db, projection: &dyn Projection) {
    let tables = projection.tables().join(", ");
    let result = match db {
        // A bounded sample keeps this fast on big tables.
        Db::Sqlite(s) => {
            let sql = format!(
                "PRAGMA analysis_limit = 1000; ANALYZE {};",
                projection.tables().join("; ANALYZE ")
            );
            match s.begin_on(&s.relaxed).await {
                Ok(Tx::Sqlite(mut tx, guard)) => {
                    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *tx)
                        .await;
                    let r = match r {
                        Ok(_) => tx.commit().await,
                        Err(e) => Err(e),
                    };
                    drop(guard);
                    r
                }
                Ok(Tx::Pg(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
            .execute(&p.pool)
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => tracing::debug!(
            projection = projection.name(),
            "planner statistics refreshed"
        ),
        Err(e) => {
            tracing::warn!(projection = projection.name(), error = %e, "could not refresh planner statistics")
        }
    }
}

/// Applies one batch to every projection. Returns each checkpoint after it
/// and whether the batch was full (more may be waiting).
async fn step(inner: &Inner) -> Result<(Vec<(&'static str, i64, u64)>, bool), RunnerError> {
    let mut tx = inner.db.begin_relaxed().await?;
    let mut checkpoints = Vec::with_capacity(inner.entries.len());
    for (name, _) in inner.entries.iter() {
        let Some((_, position)) = read_checkpoint(&mut tx, name).await? else {
            return Err(
                StoreError::Internal(format!("the checkpoint of {name} is missing")).into(),
            );
        };
        checkpoints.push((*name, position, 0));
    }
    let lowest = checkpoints.iter().map(|(_, p, _)| *p).min().unwrap_or(0);
    let events = read_after_in(&mut tx, lowest, BATCH).await?;
    if events.is_empty() {
        return Ok((checkpoints, false));
    }
    let mut positions: Vec<(&dyn Projection, i64)> = checkpoints
        .iter()
        .filter_map(|(name, position, _)| {
            inner
                .entries
                .get(name)
                .map(|e| (e.projection.as_ref(), *position))
        })
        .collect();
    let applied = apply_batch(&mut tx, &mut positions, &events).await?;
    for ((entry, (_, position)), count) in checkpoints.iter_mut().zip(positions).zip(applied) {
        entry.1 = position;
        entry.2 = count;
    }
    tx.commit().await?;
    Ok((checkpoints, events.len() == BATCH))
}

/// Gives each projection the events of `events` past its own position (and
/// of the types it handles), then moves its checkpoint to the end of the
/// batch, all in `tx`. Returns how many events each projection applied.
pub(crate) async fn apply_batch(
    tx: &mut Tx,
    projections: &mut [(&dyn Projection, i64)],
    events: &[RecordedEvent],
) -> Result<Vec<u64>, RunnerError> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(vec![0; projections.len()]);
    };
    let mut applied = Vec::with_capacity(projections.len());
    for (projection, position) in projections.iter_mut() {
        let relevant: Vec<_> = events
            .iter()
            .filter(|e| e.position > *position && projection.handles(&e.event_type))
            .collect();
        if !relevant.is_empty() {
            projection.apply(tx, &relevant).await?;
        }
        applied.push(relevant.len() as u64);
        if last > *position {
            write_checkpoint(tx, projection.name(), projection.version(), last).await?;
            *position = last;
        }
    }
    Ok(applied)
}

async fn follow(inner: std::sync::Weak<Inner>) {
    let mut head = match inner.upgrade() {
        Some(i) => i.store.subscribe(),
        None => return,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match step(&strong).await {
            Ok((checkpoints, more)) => {
                backoff = Duration::from_millis(100);
                let lowest = checkpoints.iter().map(|(_, p, _)| *p).min().unwrap_or(0);
                for (name, position, applied) in checkpoints {
                    if let Some(entry) = strong.entries.get(name) {
                        entry.checkpoint.send_if_modified(|cp| {
                            let moved = *cp != position;
                            *cp = position;
                            moved
                        });
                        let due = entry.statistics.lock().is_ok_and(|mut s| s.due(applied));
                        if due {
                            analyze(&strong.db, entry.projection.as_ref()).await;
                        }
                    }
                }
                if more {
                    continue;
                }
                drop(strong);
                if head.wait_for(|h| *h > lowest).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "projection batch failed; retrying");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
