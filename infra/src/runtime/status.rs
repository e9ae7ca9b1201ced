//! Where each projection stands against the log, from the database (so any
//! node, or the CLI, sees the same): its checkpoint and lag, and the apps it
//! is stopped for.

use projections::db::Db;
use projections::on_db;
use serde::Serialize;

use crate::runtime::faults::{self, Fault};
use crate::runtime::{Kind, Registered, RuntimeError};
use crate::store::EventStore;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// `read_model` (rebuildable) or `reactor_feed` (delivery state).
    pub kind: Kind,
    /// The version this build runs.
    pub version: i32,
    /// The version the stored projection was built with (`None`: never built).
    pub stored_version: Option<i32>,
    /// The last log position applied.
    pub position: i64,
    pub head: i64,
    /// Events not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
    /// The apps it is stopped for: the event it cannot apply and why.
    pub faults: Vec<Fault>,
}

impl ProjectionStatus {
    /// Takes in what the answering node knows: its in-memory checkpoint can
    /// be ahead of the stored one by a stretch of events the projection does
    /// not handle (written within a second).
    pub fn with_local(mut self, local: i64) -> Self {
        if local > self.position {
            self.position = local;
            self.lag_events = (self.head - local).max(0);
            if self.lag_events == 0 {
                self.lag_seconds = 0.0;
            }
        }
        self
    }
}

/// Three queries whatever the number of projections (checkpoints, faults,
/// and the oldest unapplied events' times), so a metrics scrape stays cheap.
pub async fn status(
    db: &Db,
    store: &dyn EventStore,
    registered: &[Registered],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<ProjectionStatus>, RuntimeError> {
    let head = store.head().await?;
    let now = at.timestamp_micros();
    let stored: Vec<(String, i32, i64)> = on_db!(db, |pool| {
        sqlx::query_as("SELECT name, version, position FROM projection_checkpoints")
            .fetch_all(pool)
            .await?
    });
    let stored_of = |name: &str| {
        stored
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, version, position)| (*version, *position))
    };
    // The first unapplied event of each projection behind the head.
    let mut behind: Vec<i64> = registered
        .iter()
        .map(|r| stored_of(r.projection.name()).map_or(0, |(_, p)| p))
        .filter(|p| *p < head)
        .map(|p| p + 1)
        .collect();
    behind.sort_unstable();
    behind.dedup();
    let recorded: Vec<(i64, i64)> = if behind.is_empty() {
        Vec::new()
    } else {
        let list = behind
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT position, recorded_at FROM events WHERE position IN ({list})");
        on_db!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await?)
    };
    let mut faults = faults::list_all(db).await?;
    let mut out = Vec::with_capacity(registered.len());
    for r in registered {
        let p = &r.projection;
        let stored = stored_of(p.name());
        let position = stored.map_or(0, |(_, position)| position);
        let oldest = recorded
            .iter()
            .find(|(at, _)| *at == position + 1)
            .map(|(_, recorded_at)| *recorded_at);
        let (mine, others): (Vec<_>, Vec<_>) = faults.into_iter().partition(|(n, _)| n == p.name());
        faults = others;
        out.push(ProjectionStatus {
            name: p.name(),
            kind: r.kind,
            version: p.version(),
            stored_version: stored.map(|(version, _)| version),
            position,
            head,
            lag_events: (head - position).max(0),
            lag_seconds: oldest.map_or(0.0, |at| ((now - at).max(0) as f64) / 1e6),
            faults: mine.into_iter().map(|(_, f)| f).collect(),
        });
    }
    Ok(out)
}
