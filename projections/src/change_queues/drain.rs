//! Reading change queues: their list with depth, and the drain that hands
//! out the oldest changes and deletes exactly those in one transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::{on_db, on_tx};

/// A queue with its backlog.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: String,
    pub event_types: Vec<String>,
    pub max_age_seconds: Option<i64>,
    /// Events after this log position enter the queue.
    pub starts_after: i64,
    /// Changes dropped for being older than `max_age_seconds`.
    pub expired: i64,
    pub depth: i64,
    pub oldest_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One change handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: Uuid,
    pub event_type: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub data: Value,
    pub at: DateTime<Utc>,
    pub position: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("change queue not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The caller refused to commit (it could not produce its response).
    #[error("the drain was abandoned: {0}")]
    Abandoned(String),
}

fn micros(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at).unwrap_or_default()
}

type QueueRow = (String, String, Option<i64>, i64, i64, i64, i64);

/// The app's queues, by name, with depth and oldest change.
pub async fn list(db: &Db, app: Uuid) -> Result<Vec<QueueInfo>, sqlx::Error> {
    let rows: Vec<(QueueRow, Option<i64>)> = on_db!(db, |pool| {
        let queues: Vec<QueueRow> = sqlx::query_as(
            "SELECT name, event_types, max_age_seconds, starts_after, expired, depth, created_at \
             FROM change_queues WHERE app_id = $1 ORDER BY name",
        )
        .bind(app)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(queues.len());
        for q in queues {
            let oldest: Option<i64> = sqlx::query_scalar(
                "SELECT recorded_at FROM changes WHERE app_id = $1 AND queue = $2 \
                 ORDER BY position LIMIT 1",
            )
            .bind(app)
            .bind(&q.0)
            .fetch_optional(pool)
            .await?;
            out.push((q, oldest));
        }
        out
    });
    Ok(rows
        .into_iter()
        .map(
            |((name, types, max_age_seconds, starts_after, expired, depth, created_at), oldest)| {
                QueueInfo {
                    name,
                    event_types: serde_json::from_str(&types).unwrap_or_default(),
                    max_age_seconds,
                    starts_after,
                    expired,
                    depth,
                    oldest_at: oldest.map(micros),
                    created_at: micros(created_at),
                }
            },
        )
        .collect())
}

/// Hands out the oldest `limit` changes of a queue and deletes them, in one
/// transaction that commits only if `respond` succeeds with them (so a
/// response that cannot be produced leaves the changes queued). Returns the
/// changes, in log order, and how many remain. Expired changes are dropped
/// (and counted) first.
pub async fn drain<T>(
    db: &Db,
    app: Uuid,
    queue: &str,
    limit: i64,
    now: DateTime<Utc>,
    respond: impl FnOnce(&[Change], i64) -> Result<T, String>,
) -> Result<T, DrainError> {
    let mut tx = db.begin().await?;
    let max_age: Option<Option<i64>> = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
            "SELECT max_age_seconds FROM change_queues WHERE app_id = $1 AND name = $2",
        )
        .bind(app)
        .bind(queue)
        .fetch_optional(c)
        .await?
    });
    let Some(max_age) = max_age else {
        return Err(DrainError::NotFound);
    };
    if let Some(seconds) = max_age {
        // Saturating: a queue created before ages were bounded may hold
        // any age, and an overflow must never expire everything.
        let cutoff = now
            .timestamp_micros()
            .saturating_sub(seconds.saturating_mul(1_000_000));
        expire(&mut tx, app, queue, cutoff).await?;
    }
    let sql = match &tx {
        // Concurrent drains skip each other's rows instead of waiting. The
        // CTE is evaluated once (a row-locking CTE always is), so exactly
        // the picked rows are deleted.
        Tx::Pg(_) => {
            "WITH picked AS (SELECT position FROM changes WHERE app_id = $1 AND queue = $2 \
                ORDER BY position LIMIT $3 FOR UPDATE SKIP LOCKED) \
             DELETE FROM changes c USING picked p \
             WHERE c.app_id = $1 AND c.queue = $2 AND c.position = p.position \
             RETURNING c.position, c.event_id, c.event_type, c.subject_kind, c.subject_id, c.data, c.recorded_at"
        }
        // SQLite: the transaction holds the write lock; drains queue up.
        Tx::Sqlite(..) => {
            "DELETE FROM changes WHERE app_id = $1 AND queue = $2 AND position IN \
               (SELECT position FROM changes WHERE app_id = $1 AND queue = $2 \
                ORDER BY position LIMIT $3) \
             RETURNING position, event_id, event_type, subject_kind, subject_id, data, recorded_at"
        }
    };
    type Found = (i64, Uuid, String, String, String, String, i64);
    let mut found: Vec<Found> = on_tx!(&mut tx, |c| {
        sqlx::query_as(sql)
            .bind(app)
            .bind(queue)
            .bind(limit)
            .fetch_all(c)
            .await?
    });
    found.sort_by_key(|f| f.0);
    let taken = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let remaining: i64 = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
            "UPDATE change_queues SET depth = depth - $3 WHERE app_id = $1 AND name = $2 \
             RETURNING depth",
        )
        .bind(app)
        .bind(queue)
        .bind(taken)
        .fetch_one(c)
        .await?
    });
    let changes: Vec<Change> = found
        .into_iter()
        .map(
            |(position, id, event_type, subject_kind, subject_id, data, at)| Change {
                id,
                event_type,
                subject_kind,
                subject_id,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
                at: micros(at),
                position,
            },
        )
        .collect();
    // Dropping `tx` without committing rolls the deletion back.
    let response = respond(&changes, remaining).map_err(DrainError::Abandoned)?;
    tx.commit().await?;
    Ok(response)
}

/// Drops changes recorded before `cutoff` (micros) and counts them on the
/// queue. Changes are in log order and so, nearly, in time order: when the
/// oldest has not expired, nothing has.
async fn expire(tx: &mut Tx, app: Uuid, queue: &str, cutoff: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT recorded_at FROM changes WHERE app_id = $1 AND queue = $2 ORDER BY position LIMIT 1",
        )
        .bind(app)
        .bind(queue)
        .fetch_optional(&mut *c)
        .await?;
        if oldest.is_some_and(|at| at < cutoff) {
            let dropped = sqlx::query(
                "DELETE FROM changes WHERE app_id = $1 AND queue = $2 AND recorded_at < $3",
            )
            .bind(app)
            .bind(queue)
            .bind(cutoff)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE change_queues SET expired = expired + $3, depth = depth - $3 \
                 WHERE app_id = $1 AND name = $2",
            )
            .bind(app)
            .bind(queue)
            .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
            .execute(&mut *c)
            .await?;
        }
    });
    Ok(())
}
