//! Whether the database answers, as a probe sees it, so that requests fail
//! at once while it does not instead of each waiting out the pool's
//! acquire timeout.
//!
//! A probe task keeps one connection of its own (outside the pool, so a busy
//! pool never looks like an outage) and runs `SELECT 1` every
//! [`PROBE_EVERY`], each attempt bounded by [`PROBE_TIMEOUT`]. The first
//! failure marks the database down; the first success marks it up again.
//! While it is down the HTTP layer answers 503 with `Retry-After` without
//! touching the database, and requests already waiting on it are answered
//! 503 at once. Anyone who sees a connection-level failure may [`report`] it
//! so the probe checks now rather than at its next tick.
//!
//! SQLite is a file in the process: it has no outage of this kind, so its
//! health is always up and no probe runs.
//!
//! [`report`]: DbHealth::report

use std::sync::Arc;
use std::time::Duration;

use projections::db::Db;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{Notify, watch};

/// How often the probe asks.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long one probe may take before the database counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(700);

#[derive(Clone)]
pub struct DbHealth {
    up: watch::Receiver<bool>,
    wake: Arc<Notify>,
}

impl DbHealth {
    /// Always up (SQLite, tests of other things).
    pub fn always_up() -> Self {
        let (_, up) = watch::channel(true);
        Self {
            up,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Starts probing `db` (PostgreSQL); the probe stops when every handle
    /// is dropped.
    pub fn start(db: &Db) -> Self {
        let Db::Postgres(pg) = db else {
            return Self::always_up();
        };
        let (tx, up) = watch::channel(true);
        let wake = Arc::new(Notify::new());
        let options = (*pg.pool.connect_options()).clone();
        tokio::spawn(probe(options, tx, wake.clone()));
        Self { up, wake }
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Someone saw the database fail: check now.
    pub fn report(&self) {
        self.wake.notify_one();
    }

    /// Resolves when the database is (or goes) down.
    pub async fn went_down(&self) {
        let mut up = self.up.clone();
        if up.wait_for(|up| !*up).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn probe(
    options: sqlx::postgres::PgConnectOptions,
    up: watch::Sender<bool>,
    wake: Arc<Notify>,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let ok = tokio::time::timeout(PROBE_TIMEOUT, async {
            if conn.is_none() {
                conn = Some(options.connect().await?);
            }
            match conn.as_mut() {
                Some(c) => c.ping().await,
                None => Ok(()),
            }
        })
        .await
        .is_ok_and(|r| r.is_ok());
        if !ok {
            // A half-open connection is no use for the next probe.
            conn = None;
        }
        let changed = up.send_if_modified(|state| {
            let moved = *state != ok;
            *state = ok;
            moved
        });
        if changed {
            if ok {
                tracing::info!("the database answers again");
            } else {
                tracing::warn!("the database does not answer; requests get 503 until it does");
            }
        }
        if up.is_closed() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_EVERY) => {}
            () = wake.notified() => {}
        }
    }
}
