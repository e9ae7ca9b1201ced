//! Each projection's checkpoint: the last log position it has applied,
//! written in the same transaction as its rows. On PostgreSQL a step locks
//! its projection's checkpoint row (`FOR UPDATE`) for its transaction, so
//! any number of nodes may follow the log: whoever holds the row applies,
//! the others see it move and skip what was applied (and `ownership` keeps
//! all but one of them from trying). Every write is notified to the other
//! nodes.

use projections::db::{Db, Tx};
use projections::{Projection, on_db};

use super::{Kind, RuntimeError};

/// Reads the stored checkpoint; creates it, or resets a read model whose
/// stored version differs from the code's (its tables emptied, its faults
/// forgotten: it is rebuilt from the start of the log). A reactor feed is
/// never reset: its tables hold delivery state and change by migration.
pub(crate) async fn prepare(
    db: &Db,
    projection: &dyn Projection,
    kind: Kind,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<i64, RuntimeError> {
    let mut tx = db.begin().await?;
    let stored = read(&mut tx, projection.name()).await?;
    let position = match (stored, kind) {
        (Some((version, position)), _) if version == projection.version() => position,
        (Some((_, position)), Kind::ReactorFeed) => {
            tracing::warn!(
                projection = projection.name(),
                "reactor feed version changed; it carries on from its checkpoint"
            );
            write(
                &mut tx,
                projection.name(),
                projection.version(),
                position,
                at,
            )
            .await?;
            position
        }
        (stored, _) => {
            if stored.is_some() {
                tracing::warn!(
                    projection = projection.name(),
                    "read model version changed; rebuilding it from the start of the log"
                );
            }
            for table in projection.tables() {
                let sql = format!("DELETE FROM {table}");
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query(&sql).execute(c).await?;
                });
            }
            for table in ["projection_faults", "projection_skipped"] {
                let sql = format!("DELETE FROM {table} WHERE name = $1");
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query(&sql).bind(projection.name()).execute(c).await?;
                });
            }
            write(&mut tx, projection.name(), projection.version(), 0, at).await?;
            0
        }
    };
    tx.commit().await?;
    Ok(position)
}

/// The stored (version, position), locked for the transaction on PostgreSQL.
pub(crate) async fn read(tx: &mut Tx, name: &str) -> Result<Option<(i32, i64)>, RuntimeError> {
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

/// The stored position, read without a lock (to notice other nodes' and
/// rebuilds' progress).
pub(crate) async fn peek(db: &Db, name: &str) -> Result<Option<i64>, RuntimeError> {
    Ok(on_db!(db, |pool| {
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

pub(crate) async fn write(
    tx: &mut Tx,
    name: &str,
    version: i32,
    position: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), RuntimeError> {
    let now = at.timestamp_micros();
    const UPSERT: &str = "INSERT INTO projection_checkpoints (name, version, position, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
         SET version = excluded.version, position = excluded.position, updated_at = excluded.updated_at";
    match tx {
        Tx::Sqlite(c, _) => {
            sqlx::query(UPSERT)
                .bind(name)
                .bind(version)
                .bind(position)
                .bind(now)
                .execute(&mut **c)
                .await?;
        }
        // The other nodes hear of the move at commit (`ownership`), in the
        // same statement: no round trip more.
        Tx::Pg(c) => {
            sqlx::query(&format!(
                "WITH w AS ({UPSERT} RETURNING name, position) \
                 SELECT pg_notify(left('herald_cp_' || current_schema(), 63), \
                   w.name || ' ' || w.position::text) FROM w"
            ))
            .bind(name)
            .bind(version)
            .bind(position)
            .bind(now)
            .execute(&mut **c)
            .await?;
        }
    }
    Ok(())
}

/// Refreshes the planner statistics of a projection's tables. A failure is
/// logged and otherwise ignored: statistics only steer plans.
pub(crate) async fn analyze(db: &Db, projection: &dyn Projection) {
    let tables = projection.tables().join(", ");
    let result = match db {
        // A bounded sample keeps this fast on big tables.
        Db::Sqlite(_) => {
            let mut tx = match db.begin_relaxed().await {
                Ok(tx) => tx,
                Err(e) => return report(projection, Err(e)),
            };
            let mut result = projections::on_tx!(&mut tx, |c| {
                sqlx::query("PRAGMA analysis_limit = 1000")
                    .execute(c)
                    .await
                    .map(|_| ())
            });
            for table in projection.tables() {
                if result.is_ok() {
                    let sql = format!("ANALYZE {table}");
                    result = projections::on_tx!(&mut tx, |c| {
                        sqlx::query(&sql).execute(c).await.map(|_| ())
                    });
                }
            }
            match result {
                Ok(()) => tx.commit().await,
                Err(e) => Err(e),
            }
        }
        Db::Postgres(p) => sqlx::query(&format!("ANALYZE {tables}"))
            .execute(&p.pool)
            .await
            .map(|_| ()),
    };
    report(projection, result);
}

fn report(projection: &dyn Projection, result: Result<(), sqlx::Error>) {
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

/// When to refresh a projection's planner statistics: after bulk changes
/// the planner otherwise works from empty or stale statistics and can pick
/// plans that are orders of magnitude slower. Refreshed at start, then each
/// time the events applied since the last refresh reach the total applied
/// before it (at least `MIN_EVENTS`): a logarithmic number of refreshes
/// during a bulk load.
#[derive(Default)]
pub(crate) struct Statistics {
    since: u64,
    before: u64,
}

impl Statistics {
    const MIN_EVENTS: u64 = 10_000;

    pub fn due(&mut self, applied: u64) -> bool {
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
