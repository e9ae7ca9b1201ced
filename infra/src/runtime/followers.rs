//! Every projection this node runs, each on its own task, and what the rest
//! of the system asks of them: wait until one has applied a position (the
//! read-your-writes wait of a command, a read's consistency token), whether
//! one can serve an app at all, where each stands.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use domain::ids::AppId;
use projections::db::Db;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::faults::Fault;
use super::follower::{self, Follower, Log, Stall};
use super::ownership::{self, Ownership};
use super::{Kind, Registered, RuntimeError, checkpoints};
use crate::clock::Clock;
use crate::store::EventStore;

#[derive(Clone)]
pub struct Followers {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    by_name: BTreeMap<&'static str, Arc<Follower>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// Why a read cannot be served (yet).
#[derive(Debug, Clone, PartialEq)]
pub enum NotReady {
    /// The read model is stopped for this app at `position` (503 naming it).
    Stopped {
        model: &'static str,
        position: i64,
        error: String,
    },
    /// The read model has not reached the position asked for in time (503,
    /// try again).
    Behind {
        model: &'static str,
        position: i64,
        wanted: i64,
    },
}

impl Followers {
    pub fn new(
        db: Db,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        registered: Vec<Registered>,
    ) -> Self {
        let by_name = registered
            .into_iter()
            .map(|r| {
                let follower = Follower::new(r.kind, r.projection);
                (follower.name(), Arc::new(follower))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                log: Log {
                    db,
                    store,
                    clock,
                    owners: Arc::new(OnceLock::new()),
                },
                by_name,
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Prepares every checkpoint (resetting a read model whose stored
    /// version differs from the code's) and starts following the log.
    pub async fn start(&self) -> Result<(), RuntimeError> {
        let mut tasks = Vec::with_capacity(self.inner.by_name.len());
        for follower in self.inner.by_name.values() {
            let position = checkpoints::prepare(
                &self.inner.log.db,
                follower.projection.as_ref(),
                follower.kind,
                self.inner.log.clock.now(),
            )
            .await?;
            follower.checkpoint.send_replace(position);
            checkpoints::analyze(&self.inner.log.db, follower.projection.as_ref()).await;
            tasks.push(tokio::spawn(follower::run(
                follower.clone(),
                self.inner.log.clone(),
            )));
        }
        if let Ok(mut slot) = self.inner.tasks.lock() {
            slot.extend(tasks);
        }
        Ok(())
    }

    /// Shares the projections with the other nodes of a PostgreSQL
    /// database: from now on this node applies only those it owns among
    /// `live`, and follows the others' checkpoints as their owners notify
    /// them (see `ownership`). On SQLite, nothing changes.
    pub fn share(&self, node: uuid::Uuid, live: watch::Receiver<Vec<uuid::Uuid>>) {
        let Db::Postgres(pg) = &self.inner.log.db else {
            return;
        };
        let _ = self.inner.log.owners.set(Ownership::new(node, live));
        let listener = tokio::spawn(ownership::follow_owners(
            pg.pool.clone(),
            ownership::channel(&pg.schema),
            self.inner.by_name.values().cloned().collect(),
            self.inner.log.owners.clone(),
        ));
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(listener);
        }
    }

    /// Stops following the log (a step in progress rolls back).
    pub fn stop(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// Waits until projection `name` has applied `position`, at most
    /// `timeout`. Returns whether it got there.
    pub async fn wait_for(&self, name: &str, position: i64, timeout: Duration) -> bool {
        let Some(follower) = self.inner.by_name.get(name) else {
            return false;
        };
        let mut rx = follower.checkpoint.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|cp| *cp >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until every projection has applied `position`.
    pub async fn wait_for_all(&self, position: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        for name in self.inner.by_name.keys() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.wait_for(name, position, left).await {
                return false;
            }
        }
        true
    }

    /// Whether the read models `names` can serve `app`, once they have
    /// applied `min_position` (a command's `Herald-Position`), waiting for
    /// that at most `timeout`.
    pub async fn ready(
        &self,
        app: AppId,
        names: &[&'static str],
        min_position: Option<i64>,
        timeout: Duration,
    ) -> Result<(), NotReady> {
        for name in names {
            if let Some(fault) = self.inner.by_name.get(name).and_then(|f| f.fault_of(app)) {
                return Err(NotReady::Stopped {
                    model: name,
                    position: fault.position,
                    error: fault.error,
                });
            }
        }
        let Some(wanted) = min_position else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + timeout;
        for name in names {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.wait_for(name, wanted, left).await {
                let position = self
                    .inner
                    .by_name
                    .get(name)
                    .map_or(0, |f| *f.checkpoint.borrow());
                return Err(NotReady::Behind {
                    model: name,
                    position,
                    wanted,
                });
            }
        }
        Ok(())
    }

    /// A receiver that changes whenever projection `name`'s checkpoint moves.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<i64>> {
        self.inner
            .by_name
            .get(name)
            .map(|f| f.checkpoint.subscribe())
    }

    /// (name, version, checkpoint) of every projection, as this node knows them.
    pub fn checkpoints(&self) -> Vec<(&'static str, i32, i64)> {
        self.inner
            .by_name
            .iter()
            .map(|(name, f)| (*name, f.projection.version(), *f.checkpoint.borrow()))
            .collect()
    }

    /// What this node knows is wrong: each projection stalled as a whole,
    /// and each app one is stopped for.
    pub fn trouble(&self) -> Vec<Trouble> {
        let mut out = Vec::new();
        for (name, f) in &self.inner.by_name {
            let stall = f.stall.lock().ok().and_then(|s| s.clone());
            let faults: Vec<Fault> = f
                .faults
                .read()
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            if stall.is_some() || !faults.is_empty() {
                out.push(Trouble {
                    name,
                    kind: f.kind,
                    stall,
                    faults,
                });
            }
        }
        out
    }
}

/// One projection's trouble, as this node sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trouble {
    pub name: &'static str,
    pub kind: Kind,
    /// Stalled as a whole (retried with back-off).
    pub stall: Option<Stall>,
    /// Stopped for these apps.
    pub faults: Vec<Fault>,
}
