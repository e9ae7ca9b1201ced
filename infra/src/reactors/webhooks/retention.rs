//! How long deliveries are kept: a message that has finished (succeeded,
//! or failed for good) is deleted once it has not changed for the
//! retention time (`HERALD_WEBHOOK_RETENTION_DAYS`, 30 by default), with
//! its attempts and its callback URL. Pending and paused messages are kept
//! however old: they still have work to do. The log keeps every event, so
//! nothing an auditor relies on goes; what goes is the delivery record
//! (attempts' response bodies among it).
//!
//! Deleted a chunk per transaction, so that a large backlog never holds
//! SQLite's write lock for long. Every node may run it: deletes are
//! idempotent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::db::{Db, Tx};
use projections::on_tx;
use uuid::Uuid;

/// The default retention.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Rows per delete.
const CHUNK: i64 = 2000;

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub attempts: u64,
    pub callbacks: u64,
}

/// Deletes what finished before `now - retention`.
pub async fn purge(
    db: &Db,
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<Purged, sqlx::Error> {
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let before = cutoff.timestamp_micros();
    // Attempts are v7 ids: those begun before the cutoff sort before this.
    let boundary = first_id_at(cutoff);
    Ok(Purged {
        messages: in_chunks(
            db,
            "DELETE FROM webhook_messages WHERE (endpoint_id, message_id) IN (\
             SELECT endpoint_id, message_id FROM webhook_messages \
             WHERE status IN ('succeeded', 'failed') AND updated_at < $1 LIMIT $2)",
            Bound::Micros(before),
        )
        .await?,
        attempts: in_chunks(
            db,
            "DELETE FROM webhook_attempts WHERE attempt_id IN (\
             SELECT a.attempt_id FROM webhook_attempts a WHERE a.attempt_id < $1 \
             AND NOT EXISTS (SELECT 1 FROM webhook_messages m \
             WHERE m.endpoint_id = a.endpoint_id AND m.message_id = a.message_id) LIMIT $2)",
            Bound::Id(boundary),
        )
        .await?,
        callbacks: in_chunks(
            db,
            "DELETE FROM webhook_callbacks WHERE token_sha256 IN (\
             SELECT c.token_sha256 FROM webhook_callbacks c WHERE c.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM webhook_messages m \
             WHERE m.endpoint_id = c.endpoint_id AND m.message_id = c.message_id) LIMIT $2)",
            Bound::Micros(before),
        )
        .await?,
    })
}

#[derive(Clone, Copy)]
enum Bound {
    Micros(i64),
    Id(Uuid),
}

/// Runs `sql` (`$1` the bound, `$2` the chunk) until a chunk deletes less
/// than a whole one; returns how many rows went.
async fn in_chunks(db: &Db, sql: &str, bound: Bound) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut tx: Tx = db.begin().await?;
        let gone = on_tx!(&mut tx, |c| {
            let query = sqlx::query(sql);
            let query = match bound {
                Bound::Micros(m) => query.bind(m),
                Bound::Id(id) => query.bind(id),
            };
            query.bind(CHUNK).execute(&mut *c).await?.rows_affected()
        });
        tx.commit().await?;
        total += gone;
        if gone < CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// The smallest UUID v7 of the millisecond `at`.
fn first_id_at(at: DateTime<Utc>) -> Uuid {
    let millis = u128::try_from(at.timestamp_millis().max(0)).unwrap_or(0);
    Uuid::from_u128(millis << 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_sorts_between_ids_of_either_side() {
        let at = DateTime::<Utc>::from_timestamp_millis(1_765_000_000_123).unwrap_or_default();
        let boundary = first_id_at(at);
        let ts = |ms: i64| {
            let secs = u64::try_from(ms / 1000).unwrap_or(0);
            let nanos = u32::try_from((ms % 1000) * 1_000_000).unwrap_or(0);
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos))
        };
        assert!(ts(1_765_000_000_122) < boundary);
        assert!(ts(1_765_000_000_123) >= boundary);
        assert!(ts(1_765_000_000_124) > boundary);
    }
}
