//! Reactors: what acts on the world from the log (webhook delivery, push
//! sending, scheduled launches). One abstraction and one loop run them all.
//!
//! A reactor's work sits in its feed's tables (see `projections::ReactorFeed`):
//! a reactor *claims* due work under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so every live node shares it; a dead node's lease lapses and
//! another takes the work over), *handles* each item and records its
//! outcome, and says when its next work is *due*. Outcomes that change the
//! domain go back into the log as commands.
//!
//! The loop claims as long as there is room (at most `capacity` items in
//! flight) and due work, and otherwise sleeps until one of: an explicit
//! wake, its feed moving, the next due time on the reactor's clock, the poll
//! interval (work another node queued), or an item finishing. A failing
//! claim is retried with back-off.
//!
//! [`ReactorHandle::drain`] is the orderly stop: no more claims, and the
//! items in flight finish and record their outcome (bounded by a timeout)
//! before the loop stops; [`ReactorHandle::stop`] abandons them.
//!
//! Tests (and anything else that must know) ask [`ReactorHandle::idle`]:
//! it resolves once the loop has run a whole round after the call and found
//! nothing due, with nothing in flight — no polling, no deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::store::StoreError;

#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    /// One claimed item.
    type Work: Send + 'static;

    fn name(&self) -> &'static str;

    /// Items in flight at most.
    fn capacity(&self) -> usize;

    /// Items claimed per round at most.
    fn batch(&self) -> usize;

    /// The clock due times are on (a manual one in tests).
    fn clock(&self) -> &Arc<dyn Clock>;

    /// Claims up to `limit` items due now, under a lease.
    async fn claim(&self, limit: usize) -> Result<Vec<Self::Work>, StoreError>;

    /// Handles one item and records its outcome. Abandoned when the reactor
    /// stops: the lease lapses and the item is handled again.
    async fn handle(self: Arc<Self>, work: Self::Work);

    /// When the next item not claimable now comes due, if known.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// How the loop is woken and stopped, and how it tells it is idle.
struct Signals {
    wake: Notify,
    stop: watch::Sender<bool>,
    /// No more claims ([`ReactorHandle::drain`]).
    draining: watch::Sender<bool>,
    /// Told whenever an item in flight ends.
    ended: Notify,
    /// Rounds started so far.
    rounds: AtomicU64,
    /// The number of the last round that found nothing due with nothing in
    /// flight.
    idle: watch::Sender<u64>,
    /// Items finished so far.
    finished: AtomicU64,
    /// Items being handled now.
    in_flight: AtomicUsize,
}

/// A running reactor; stops when dropped.
pub struct ReactorHandle {
    name: &'static str,
    signals: Arc<Signals>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ReactorHandle {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Items being handled now.
    pub fn in_flight(&self) -> usize {
        self.signals.in_flight.load(Ordering::SeqCst)
    }

    /// Look for due work now.
    pub fn wake(&self) {
        self.signals.wake.notify_one();
    }

    /// Stops the loop; items in flight are abandoned (their leases lapse).
    pub fn stop(&self) {
        self.signals.stop.send_replace(true);
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }

    /// Stops claiming, lets the items in flight finish (at most `timeout`),
    /// then stops. Returns how many were still in flight at the deadline
    /// (abandoned: their leases lapse and they are handled again).
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.signals.draining.send_replace(true);
        let signals = self.signals.clone();
        let finished = async move {
            loop {
                let ended = signals.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if signals.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                ended.await;
            }
        };
        let _ = tokio::time::timeout(timeout, finished).await;
        let left = self.in_flight();
        self.stop();
        left
    }

    /// Resolves once the loop has run a whole round after this call and
    /// found nothing due now, with nothing in flight.
    pub async fn idle(&self) {
        self.idle_signal().await;
    }

    /// [`idle`](Self::idle), as a future that does not borrow the handle
    /// (the round count is taken now).
    pub fn idle_signal(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut idle = self.signals.idle.subscribe();
        let started = self.signals.rounds.load(Ordering::SeqCst);
        self.wake();
        async move {
            let _ = idle.wait_for(|round| *round > started).await;
        }
    }
}

/// Starts running `reactor`. `feed` changes whenever new work may have been
/// queued (its feed's checkpoint); `poll` bounds how long work queued by
/// other nodes waits.
pub fn spawn<R: Reactor>(
    reactor: Arc<R>,
    feed: Option<watch::Receiver<i64>>,
    poll: Duration,
) -> ReactorHandle {
    let signals = Arc::new(Signals {
        wake: Notify::new(),
        stop: watch::Sender::new(false),
        draining: watch::Sender::new(false),
        ended: Notify::new(),
        rounds: AtomicU64::new(0),
        idle: watch::Sender::new(0),
        finished: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let name = reactor.name();
    let task = tokio::spawn(run(reactor, feed, poll, signals.clone()));
    ReactorHandle {
        name,
        signals,
        task: std::sync::Mutex::new(Some(task)),
    }
}

async fn run<R: Reactor>(
    reactor: Arc<R>,
    mut feed: Option<watch::Receiver<i64>>,
    poll: Duration,
    signals: Arc<Signals>,
) {
    let capacity = reactor.capacity().max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    let mut backoff = Duration::from_millis(100);
    let mut stopped = signals.stop.subscribe();
    let mut draining = signals.draining.subscribe();
    loop {
        if *stopped.borrow() || *draining.borrow() {
            return;
        }
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                _ = stopped.wait_for(|s| *s) => return,
                _ = draining.wait_for(|d| *d) => return,
            }
            continue;
        }
        let round = signals.rounds.fetch_add(1, Ordering::SeqCst) + 1;
        let finished_before = signals.finished.load(Ordering::SeqCst);
        let limit = free.min(reactor.batch().max(1));
        let claimed = match reactor.claim(limit).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(reactor = reactor.name(), error = %e, "claiming work failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let full = claimed.len() == limit;
        let any = !claimed.is_empty();
        for work in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let reactor = reactor.clone();
            let signals = signals.clone();
            let mut stopping = signals.stop.subscribe();
            signals.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let handled = tokio::select! {
                    () = reactor.handle(work) => true,
                    _ = stopping.wait_for(|s| *s) => false,
                };
                signals.in_flight.fetch_sub(1, Ordering::SeqCst);
                signals.ended.notify_waiters();
                if !handled {
                    return;
                }
                drop(permit);
                signals.finished.fetch_add(1, Ordering::SeqCst);
                signals.wake.notify_one();
            });
        }
        if full || any {
            continue;
        }
        let quiet = slots.available_permits() == capacity
            && signals.finished.load(Ordering::SeqCst) == finished_before;
        if quiet {
            signals.idle.send_replace(round);
        }
        let now = reactor.clock().now();
        let due = reactor
            .next_due()
            .await
            .ok()
            .flatten()
            .filter(|at| *at > now);
        let until_due = async {
            match due {
                Some(at) => reactor.clock().sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let fed = async {
            match feed.as_mut() {
                Some(f) => {
                    if f.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signals.wake.notified() => {}
            () = fed => {}
            () = until_due => {}
            () = tokio::time::sleep(poll) => {}
            _ = stopped.wait_for(|s| *s) => return,
            _ = draining.wait_for(|d| *d) => return,
        }
    }
}
