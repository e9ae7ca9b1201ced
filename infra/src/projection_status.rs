//! Where each read model stands against the log.

use std::sync::Arc;

use projections::Projection;
use projections::db::Db;
use projections::on_db;
use serde::Serialize;

use crate::store::{EventStore, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The version this build runs.
    pub version: i32,
    /// The version the stored read model was built with (`None`: never built).
    pub stored_version: Option<i32>,
    /// The last log position applied.
    pub position: i64,
    pub head: i64,
    /// Events not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
}

pub async fn status(
    db: &Db,
    store: &dyn EventStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Vec<ProjectionStatus>, StoreError> {
    let head = store.head().await?;
    let now = chrono::Utc::now().timestamp_micros();
    let mut out = Vec::with_capacity(projections.len());
    for p in projections {
        let stored: Option<(i32, i64)> = on_db!(db, |pool| {
            sqlx::query_as("SELECT version, position FROM projection_checkpoints WHERE name = $1")
                .bind(p.name())
                .fetch_optional(pool)
                .await?
        });
        let position = stored.map_or(0, |(_, position)| position);
        let oldest: Option<i64> = if position < head {
            on_db!(db, |pool| {
                sqlx::query_scalar("SELECT recorded_at FROM events WHERE position = $1")
                    .bind(position + 1)
                    .fetch_optional(pool)
                    .await?
            })
        } else {
            None
        };
        out.push(ProjectionStatus {
            name: p.name(),
            version: p.version(),
            stored_version: stored.map(|(version, _)| version),
            position,
            head,
            lag_events: (head - position).max(0),
            lag_seconds: oldest.map_or(0.0, |at| ((now - at).max(0) as f64) / 1e6),
        });
    }
    Ok(out)
}
