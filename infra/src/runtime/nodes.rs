//! The nodes serving one database, and how they share the work.
//!
//! Each node (`herald serve` process) joins at start: a row in `nodes` that
//! it renews every [`HEARTBEAT`] with its read models' lag. A node silent
//! for [`DEAD_AFTER`] is dead: the leases it holds (webhook messages,
//! notification jobs) may be taken over at once by any other node, without
//! waiting for them to lapse. A node that stops cleanly deletes its row,
//! which hands its work over immediately.
//!
//! Who does what, across nodes:
//!
//! | work | shared by | a dead node holds it up |
//! |---|---|---|
//! | each read model and reactor feed | one owner among the live nodes (rendezvous hashing, `ownership`) applies it; the others follow its checkpoint through `NOTIFY`. Every batch locks the checkpoint row (`FOR UPDATE`), so each event is applied once even while two nodes both apply | [`GRACE`](super::ownership::GRACE) (0.5 s): events left waiting that long are applied by the next node that needs them |
//! | webhook delivery | every node claims due messages (`FOR UPDATE SKIP LOCKED`), one message per lease, ordered endpoints one message at a time | until its heartbeat is [`DEAD_AFTER`] old, then the next claim (≤ 1 s poll) takes its messages over |
//! | push sending and scheduled launches | every node claims due notification jobs; a notification's batches are sent by the job's holder, each recorded in the log before the next | as for webhooks; the batch in flight is sent again (at most one batch repeated) |
//! | a projection stopped for an app (faults) | the fault row is locked by whichever node retries it | not at all |
//! | idempotency-key purge, database probe | every node, for itself | not at all |
//!
//! Heartbeats are stamped on Herald's clock (a manual one in tests) and
//! renewed every [`HEARTBEAT`] of real time, or at once when a manual clock
//! moves on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::db::Db;
use projections::{on_db, on_tx};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ownership;
use crate::clock::Clock;
use crate::runtime::Followers;

/// How often a node renews its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node whose heartbeat is this old is dead.
pub const DEAD_AFTER: chrono::Duration = chrono::Duration::seconds(6);

/// Dead nodes' rows are kept this long (to be seen in `GET /v1/admin/nodes`).
const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// The SQL condition under which a lease may be taken: it is free, it has
/// lapsed, or another node holds it and is dead or gone. `lease_until` and
/// `lease_node` name the lease's columns; the query binds the claim time at
/// `$1`, this node at `$3` (its own leases it waits out) and
/// [`dead_before`] at `$4`.
pub fn claimable(lease_until: &str, lease_node: &str) -> String {
    format!(
        "({lease_until} IS NULL OR {lease_until} <= $1 OR ({lease_node} IS NOT NULL \
         AND {lease_node} <> $3 AND NOT EXISTS (SELECT 1 FROM nodes n \
         WHERE n.node_id = {lease_node} AND n.heartbeat_at > $4)))"
    )
}

/// The instant before which a heartbeat means a dead node.
pub fn dead_before(now: DateTime<Utc>) -> i64 {
    (now - DEAD_AFTER).timestamp_micros()
}

/// This node's membership; stops renewing when dropped.
pub struct Node {
    id: Uuid,
    db: Db,
    /// The live nodes as last read (at join and with every heartbeat).
    live: watch::Sender<Vec<Uuid>>,
    heartbeat: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

/// What the heartbeat reports.
pub struct Lag {
    pub followers: Followers,
    pub head: watch::Receiver<i64>,
}

impl Lag {
    fn events(&self) -> i64 {
        let head = *self.head.borrow();
        self.followers
            .checkpoints()
            .iter()
            .map(|(_, _, at)| (head - at).max(0))
            .max()
            .unwrap_or(0)
    }
}

impl Node {
    /// Joins: writes this node's row and starts renewing it.
    pub async fn join(
        db: Db,
        clock: Arc<dyn Clock>,
        name: String,
        lag: Lag,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let id = Uuid::now_v7();
        let now = clock.now().timestamp_micros();
        let mut tx = db.begin_relaxed().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO nodes (node_id, name, version, started_at, heartbeat_at, lag_events) \
                 VALUES ($1, $2, $3, $4, $4, 0)",
            )
            .bind(id)
            .bind(&name)
            .bind(env!("CARGO_PKG_VERSION"))
            .bind(now)
            .execute(c)
            .await?;
        });
        on_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
                .bind((clock.now() - FORGET_AFTER).timestamp_micros())
                .execute(c)
                .await?;
        });
        tx.commit().await?;
        let live = watch::Sender::new(live_nodes(&db, clock.now()).await?);
        let renewing = Renewing {
            db: db.clone(),
            clock,
            id,
            name,
            started_at: now,
            lag,
            live: live.clone(),
        };
        let task = tokio::spawn(renew(renewing));
        Ok(Arc::new(Self {
            id,
            db,
            live,
            heartbeat: std::sync::Mutex::new(Some(task)),
        }))
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The live nodes (this one among them once it has joined), renewed
    /// with every heartbeat.
    pub fn live(&self) -> watch::Receiver<Vec<Uuid>> {
        self.live.subscribe()
    }

    /// Stops renewing (the node is stopping; without [`leave`](Self::leave)
    /// the others take its work over once it is [`DEAD_AFTER`] silent).
    pub fn stop_heartbeat(&self) {
        if let Ok(mut task) = self.heartbeat.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }

    /// Leaves: deletes this node's row, so its leases can be taken over at
    /// once.
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        self.stop_heartbeat();
        let mut tx = self.db.begin_relaxed().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM nodes WHERE node_id = $1")
                .bind(self.id)
                .execute(c)
                .await?;
        });
        if let projections::db::Tx::Pg(c) = &mut tx {
            // The others move this node's projections at once (`ownership`).
            sqlx::query("SELECT pg_notify(left('herald_cp_' || current_schema(), 63), $1)")
                .bind(format!("{} {}", ownership::LEFT, self.id))
                .execute(&mut **c)
                .await?;
        }
        tx.commit().await
    }
}

/// What the heartbeat task works with.
struct Renewing {
    db: Db,
    clock: Arc<dyn Clock>,
    id: Uuid,
    name: String,
    started_at: i64,
    lag: Lag,
    live: watch::Sender<Vec<Uuid>>,
}

/// The nodes whose heartbeat is fresh at `now`, in id order.
async fn live_nodes(db: &Db, now: DateTime<Utc>) -> Result<Vec<Uuid>, sqlx::Error> {
    Ok(on_db!(db, |pool| {
        sqlx::query_scalar("SELECT node_id FROM nodes WHERE heartbeat_at > $1 ORDER BY node_id")
            .bind(dead_before(now))
            .fetch_all(pool)
            .await?
    }))
}

async fn renew(r: Renewing) {
    let Renewing {
        db,
        clock,
        id,
        name,
        started_at,
        lag,
        live,
    } = r;
    let mut last = clock.now();
    loop {
        // Real time, or a manual clock moving past the next beat.
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            () = clock.sleep_until(last + chrono::Duration::from_std(HEARTBEAT).unwrap_or_default()) => {}
        }
        last = clock.now();
        let beat = async {
            let mut tx = db.begin_relaxed().await?;
            let lag_events = lag.events();
            on_tx!(&mut tx, |c| {
                // An upsert: a row removed meanwhile (the node was thought
                // dead and forgotten) comes back.
                sqlx::query(
                    "INSERT INTO nodes (node_id, name, version, started_at, heartbeat_at, lag_events) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = $5, lag_events = $6",
                )
                .bind(id)
                .bind(&name)
                .bind(env!("CARGO_PKG_VERSION"))
                .bind(started_at)
                .bind(last.timestamp_micros())
                .bind(lag_events)
                .execute(c)
                .await?;
            });
            tx.commit().await?;
            live_nodes(&db, last).await
        };
        match beat.await {
            Ok(nodes) => {
                live.send_if_modified(|known| {
                    let changed = *known != nodes;
                    if changed {
                        *known = nodes;
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew this node's heartbeat"),
        }
    }
}

/// A node as `GET /v1/admin/nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node_id: Uuid,
    /// The address it serves on, as it listens.
    pub name: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// False once its heartbeat is older than [`DEAD_AFTER`] (its leases
    /// are then taken over).
    pub alive: bool,
    /// Its read models' greatest lag (events) at its last heartbeat.
    pub lag_events: i64,
    /// Work it holds a lease on now (a dead node's, until taken over).
    pub owns: Owned,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Owned {
    /// The projections (read models and reactor feeds) it applies: each
    /// has one owner among the live nodes on PostgreSQL (see
    /// `runtime::ownership`); on SQLite a node applies all of them.
    pub projections: Vec<&'static str>,
    /// Webhook messages being delivered.
    pub webhook_messages: i64,
    /// Notifications being launched or sent.
    pub notifications: i64,
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Every node seen in the last hour, live ones first, with what each owns.
pub async fn list(db: &Db, now: DateTime<Utc>) -> Result<Vec<NodeReport>, sqlx::Error> {
    type Row = (Uuid, String, String, i64, i64, i64);
    let rows: Vec<Row> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT node_id, name, version, started_at, heartbeat_at, lag_events FROM nodes \
             ORDER BY heartbeat_at DESC",
        )
        .fetch_all(pool)
        .await?
    });
    let now_micros = now.timestamp_micros();
    let count = |table: &'static str| async move {
        let sql = format!(
            "SELECT lease_node, COUNT(*) FROM {table} \
             WHERE lease_node IS NOT NULL AND lease_until > $1 GROUP BY lease_node"
        );
        let counts: Vec<(Uuid, i64)> = on_db!(db, |pool| {
            sqlx::query_as(&sql)
                .bind(now_micros)
                .fetch_all(pool)
                .await?
        });
        Ok::<_, sqlx::Error>(counts)
    };
    let messages = count("webhook_messages").await?;
    let jobs = count("notification_jobs").await?;
    let of = |counts: &[(Uuid, i64)], id: Uuid| {
        counts.iter().find(|(n, _)| *n == id).map_or(0, |(_, c)| *c)
    };
    let dead_before = dead_before(now);
    let live: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.4 > dead_before)
        .map(|r| r.0)
        .collect();
    let names: Vec<&'static str> = super::registered()
        .iter()
        .map(|r| r.projection.name())
        .collect();
    let applied_by = |node: Uuid| -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|name| match db {
                Db::Sqlite(_) => live.contains(&node),
                Db::Postgres(_) => ownership::owner_of(name, &live) == Some(node),
            })
            .collect()
    };
    let mut out: Vec<NodeReport> = rows
        .into_iter()
        .map(|(node_id, name, version, started, beat, lag_events)| {
            let alive = beat > dead_before;
            NodeReport {
                node_id,
                name,
                version,
                started_at: at(started),
                heartbeat_at: at(beat),
                alive,
                lag_events,
                owns: Owned {
                    projections: applied_by(node_id),
                    webhook_messages: of(&messages, node_id),
                    notifications: of(&jobs, node_id),
                },
            }
        })
        .collect();
    out.sort_by_key(|n| !n.alive);
    Ok(out)
}
