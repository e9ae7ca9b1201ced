//! One projection following the log on its own: its checkpoint, its
//! transaction, its pace. A slow or failing projection delays nobody else.
//!
//! A step reads the events after the checkpoint (from memory when this
//! process appended them), keeps those the projection handles and whose app
//! it has not stopped for, applies them and moves the checkpoint in one
//! transaction. A stretch of events it does not handle moves the checkpoint
//! in memory only (written at most every [`PERSIST_AFTER`], or with the
//! next real write): re-reading it after a crash costs nothing.
//!
//! When a batch fails:
//! - a transient failure (the database away) is retried with back-off;
//! - otherwise the batch is applied one event at a time. An event whose
//!   failure is its own (the projection refuses it; the database refuses
//!   its data: SQLSTATE classes 22 and 23, SQLite's constraint, mismatch,
//!   too-big and range codes) stops the projection for its app (see
//!   `faults`); any other failure (a missing table, say) stalls the whole
//!   projection, retried with back-off and reported, until it clears.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::RecordedEvent;
use domain::ids::AppId;
use projections::db::Db;
use projections::{Projection, ProjectionError};
use serde::Serialize;
use tokio::sync::watch;

use super::fault_replay::replay;
use super::faults::{self, Fault};
use super::ownership::{Ownership, Role};
use super::{Kind, RuntimeError, checkpoints};
use crate::clock::Clock;
use crate::store::EventStore;

/// Events read and applied per step.
pub(crate) const BATCH: usize = 1000;
/// A checkpoint moved in memory only is written this long after it moved.
const PERSIST_AFTER: Duration = Duration::from_secs(1);
/// How often the stored faults and checkpoint are looked at (an operator's
/// action, another node's progress, a rebuild's switch).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long a reactor feed lets new events gather before applying them.
/// No command waits on a feed, and every transaction queues for the
/// database's write path (on SQLite, its one write lock): fewer, larger
/// feed batches leave it to the appender and to the read models commands
/// do wait on. The cost is this much delivery latency.
const FEED_LINGER: Duration = Duration::from_millis(25);

/// A projection stalled as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct Stall {
    /// The checkpoint it is stuck at.
    pub position: i64,
    pub error: String,
    pub since: DateTime<Utc>,
}

pub(crate) struct Follower {
    pub kind: Kind,
    pub projection: Arc<dyn Projection>,
    /// The last position applied, as this process knows it.
    pub checkpoint: watch::Sender<i64>,
    /// The apps stopped for, as last seen (refreshed every [`LOOK_EVERY`]).
    pub faults: RwLock<HashMap<AppId, Fault>>,
    pub stall: Mutex<Option<Stall>>,
    statistics: Mutex<checkpoints::Statistics>,
}

/// What a follower works with.
#[derive(Clone)]
pub(crate) struct Log {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    /// Which projections this node owns; unset (every projection its own)
    /// until the node has joined, and on SQLite.
    pub owners: Arc<OnceLock<Ownership>>,
}

enum Progress {
    More,
    CaughtUp,
    /// Events it handles wait for the projection's owner (another node).
    Owned,
}

/// The checkpoint as last written, and when.
struct Persisted {
    position: i64,
    at: Instant,
}

impl Follower {
    pub fn new(kind: Kind, projection: Arc<dyn Projection>) -> Self {
        Self {
            kind,
            projection,
            checkpoint: watch::Sender::new(0),
            faults: RwLock::new(HashMap::new()),
            stall: Mutex::new(None),
            statistics: Mutex::new(Default::default()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn fault_of(&self, app: AppId) -> Option<Fault> {
        self.faults.read().ok()?.get(&app).cloned()
    }

    pub(super) fn advance(&self, position: i64) {
        self.checkpoint.send_if_modified(|cp| {
            let moved = position > *cp;
            if moved {
                *cp = position;
            }
            moved
        });
    }

    fn set_stall(&self, stall: Option<Stall>) {
        if let Ok(mut s) = self.stall.lock() {
            *s = stall;
        }
    }
}

/// Follows the log until the task is aborted.
pub(crate) async fn run(follower: Arc<Follower>, log: Log) {
    let mut head = log.store.subscribe();
    let mut persisted = Persisted {
        position: *follower.checkpoint.borrow(),
        at: Instant::now(),
    };
    let mut backoff = Duration::from_millis(100);
    let mut looked = Instant::now() - LOOK_EVERY;
    let mut role = Role::default();
    loop {
        if looked.elapsed() >= LOOK_EVERY {
            looked = Instant::now();
            if let Err(e) = look(&follower, &log).await {
                tracing::debug!(projection = follower.name(), error = %e, "cannot read faults");
            }
        }
        let applies = role.applies(&follower, &log);
        match step(&follower, &log, &mut persisted, applies).await {
            Ok(Progress::Owned) => role.wait_for_owner(&follower).await,
            Ok(progress) => {
                backoff = Duration::from_millis(100);
                follower.set_stall(None);
                role.applied();
                if let Progress::CaughtUp = progress {
                    let position = *follower.checkpoint.borrow();
                    let more = tokio::select! {
                        r = head.wait_for(|h| *h > position) => if r.is_err() { return } else { true },
                        () = tokio::time::sleep(LOOK_EVERY) => false,
                    };
                    if more && follower.kind == Kind::ReactorFeed {
                        tokio::time::sleep(FEED_LINGER).await;
                    }
                }
            }
            Err(e) => {
                let position = *follower.checkpoint.borrow();
                let first = follower.stall.lock().is_ok_and(|s| s.is_none());
                if first {
                    tracing::error!(projection = follower.name(), position, error = %e,
                        "projection stalled; retrying");
                }
                follower.set_stall(Some(Stall {
                    position,
                    error: e.to_string(),
                    since: log.clock.now(),
                }));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One step: the events after the checkpoint, applied if `applies`; a
/// follower that does not apply (another node owns the projection) only
/// passes over what its projection does not handle.
async fn step(
    f: &Follower,
    log: &Log,
    persisted: &mut Persisted,
    applies: bool,
) -> Result<Progress, RuntimeError> {
    let cp = *f.checkpoint.borrow();
    let events = log.store.read_recent(cp, BATCH).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        if applies && cp > persisted.position && persisted.at.elapsed() >= PERSIST_AFTER {
            persist(f, log, persisted, cp).await?;
        }
        return Ok(Progress::CaughtUp);
    };
    let relevant: Vec<&RecordedEvent> = events
        .iter()
        .map(|e| &**e)
        .filter(|e| e.position > cp && f.projection.handles(&e.event_type))
        .collect();
    if relevant.is_empty() {
        f.advance(last);
        if applies && persisted.at.elapsed() >= PERSIST_AFTER {
            persist(f, log, persisted, last).await?;
        }
        return Ok(Progress::More);
    }
    if !applies {
        // Up to the first event it handles; the owner applies that one.
        if let Some(before) = relevant.first().map(|e| e.position - 1) {
            f.advance(before);
        }
        return Ok(Progress::Owned);
    }
    let applied = relevant.len() as u64;
    let position = match commit(f, log, cp, &relevant, last).await {
        Ok(position) => position,
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => {
            tracing::warn!(projection = f.name(), error = %e,
                "a batch failed; applying it one event at a time");
            one_by_one(f, log, cp, &relevant, last).await?
        }
    };
    *persisted = Persisted {
        position,
        at: Instant::now(),
    };
    f.advance(position);
    let due = f.statistics.lock().is_ok_and(|mut s| s.due(applied));
    if due {
        checkpoints::analyze(&log.db, f.projection.as_ref()).await;
    }
    // Less than a full read: it was at the head. Under a steady stream of
    // appends there is always some new event by now; waiting for the head
    // (and, for a reactor feed, lingering) keeps a feed from taking the
    // write path once per append batch.
    if events.len() < BATCH {
        return Ok(Progress::CaughtUp);
    }
    Ok(Progress::More)
}

/// Writes a checkpoint moved in memory only.
async fn persist(
    f: &Follower,
    log: &Log,
    persisted: &mut Persisted,
    position: i64,
) -> Result<(), RuntimeError> {
    let written = commit(f, log, position, &[], position).await?;
    *persisted = Persisted {
        position: written,
        at: Instant::now(),
    };
    f.advance(written);
    Ok(())
}

/// Applies `events` (all after `cp`) and moves the checkpoint to `last`, in
/// one transaction. Left out: events another node applied meanwhile, and
/// those of apps the projection is stopped for — read from the table under
/// the checkpoint's lock, not from memory, so that an app another node has
/// just resumed is never passed over. Returns the checkpoint after it.
async fn commit(
    f: &Follower,
    log: &Log,
    cp: i64,
    events: &[&RecordedEvent],
    last: i64,
) -> Result<i64, RuntimeError> {
    let mut tx = log.db.begin_relaxed().await?;
    let stored = checkpoints::read(&mut tx, f.name())
        .await?
        .map_or(0, |(_, p)| p);
    if stored >= last {
        return Ok(stored);
    }
    let from = stored.max(cp);
    let stopped = if events.is_empty() {
        Vec::new()
    } else {
        faults::stopped_apps(&mut tx, f.name()).await?
    };
    let todo: Vec<&RecordedEvent> = events
        .iter()
        .copied()
        .filter(|e| e.position > from && !stopped.contains(&e.app_id))
        .collect();
    if !todo.is_empty() {
        f.projection.apply(&mut tx, &todo).await?;
    }
    checkpoints::write(
        &mut tx,
        f.name(),
        f.projection.version(),
        last,
        log.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(last)
}

/// The slow path after a failed batch: each event in its own transaction,
/// so the one that fails is found; its app is stopped for, unless the
/// failure is not the event's own.
async fn one_by_one(
    f: &Follower,
    log: &Log,
    cp: i64,
    events: &[&RecordedEvent],
    last: i64,
) -> Result<i64, RuntimeError> {
    let mut position = cp;
    for event in events {
        match commit(f, log, position, &[event], event.position).await {
            Ok(p) => position = p,
            Err(e) if e.is_event_specific() => {
                stop_for(f, log, event, &e).await?;
                position = event.position;
            }
            Err(e) => return Err(e),
        }
    }
    commit(f, log, position, &[], last).await
}

/// Records that `f` stops for `event`'s app, and passes the event.
async fn stop_for(
    f: &Follower,
    log: &Log,
    event: &RecordedEvent,
    error: &RuntimeError,
) -> Result<(), RuntimeError> {
    let fault = Fault {
        app_id: event.app_id,
        position: event.position,
        event_type: event.event_type.clone(),
        error: error.to_string(),
        since: log.clock.now(),
        action: None,
    };
    tracing::error!(
        projection = f.name(), app_id = %event.app_id, position = event.position,
        event_type = %event.event_type, error = %error,
        "projection stopped for this app: it cannot apply the event (other apps go on; \
         see `herald projections status`, then skip or retry)"
    );
    let mut tx = log.db.begin_relaxed().await?;
    faults::record(&mut tx, f.name(), &fault).await?;
    checkpoints::write(
        &mut tx,
        f.name(),
        f.projection.version(),
        event.position,
        log.clock.now(),
    )
    .await?;
    tx.commit().await?;
    if let Ok(mut faults) = f.faults.write() {
        faults.entry(event.app_id).or_insert(fault);
    }
    Ok(())
}

/// Looks at the stored faults (acting on an operator's request) and at the
/// stored checkpoint (another node's progress, a rebuild's switch).
async fn look(f: &Follower, log: &Log) -> Result<(), RuntimeError> {
    let stored = faults::list(&log.db, f.name()).await?;
    for fault in stored.iter().filter(|fault| fault.action.is_some()) {
        replay(f, log, fault.app_id).await?;
    }
    let current = faults::list(&log.db, f.name()).await?;
    if let Ok(mut faults) = f.faults.write() {
        *faults = current
            .into_iter()
            .map(|fault| (fault.app_id, fault))
            .collect();
    }
    if let Some(position) = checkpoints::peek(&log.db, f.name()).await? {
        f.advance(position);
    }
    Ok(())
}

impl RuntimeError {
    /// The database is away or overloaded: try the same again later.
    pub fn is_transient(&self) -> bool {
        match self {
            RuntimeError::Store(e) => e.is_transient(),
            RuntimeError::Projection(ProjectionError::Database(e)) => crate::store::is_transient(e),
            RuntimeError::Projection(ProjectionError::Unavailable(_)) => true,
            RuntimeError::Projection(ProjectionError::Event { .. }) | RuntimeError::Busy(_) => {
                false
            }
        }
    }

    /// The failure is the event's own: the projection refuses it, or the
    /// database refuses its data.
    pub fn is_event_specific(&self) -> bool {
        match self {
            RuntimeError::Projection(ProjectionError::Event { .. }) => true,
            RuntimeError::Projection(ProjectionError::Database(sqlx::Error::Database(db))) => {
                let code = db.code().unwrap_or_default();
                let sqlite = code.parse::<i32>().map(|c| c & 0xff);
                code.starts_with("22")
                    || code.starts_with("23")
                    || matches!(sqlite, Ok(18 | 19 | 20 | 25))
            }
            RuntimeError::Projection(ProjectionError::Database(
                sqlx::Error::Encode(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_),
            )) => true,
            _ => false,
        }
    }
}
