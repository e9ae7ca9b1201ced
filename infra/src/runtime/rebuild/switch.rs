//! Putting a finished PostgreSQL shadow in place of the live models, in one
//! transaction on the live database that first stops the live runner (it
//! holds the live checkpoints) and applies the last few events to the
//! shadow: the shadow tables move into the live schema (`ALTER TABLE … SET
//! SCHEMA`, their extended statistics with them), with no copying. SQLite:
//! see `switch_sqlite`.

use domain::RecordedEvent;
use projections::Projection;
use projections::db::{PgDb, Tx};

use super::apply_batch;
use super::shadow::quote;
use crate::clock::{Clock, SystemClock};
use crate::runtime::RuntimeError as RunnerError;
use crate::runtime::checkpoints::{read as read_checkpoint, write as write_checkpoint};
use crate::store::{EventStore, rows};

/// Events read and applied per step of the switch's catch-up.
const BATCH: usize = 5000;

/// Stops the live runner, finishes the shadow, moves its tables into the
/// live schema and hands its checkpoints over: one transaction.
pub(super) async fn switch_postgres(
    live: &PgDb,
    store: &dyn EventStore,
    shadow: &str,
    positions: &mut [(&dyn Projection, i64)],
) -> Result<i64, RunnerError> {
    let live_schema = quote(&live.schema);
    let shadow_schema = quote(shadow);
    let mut tx = projections::db::pg_begin(&live.pool).await?;
    positions.sort_by_key(|(p, _)| p.name());
    // The live runner locks every checkpoint row in name order for each
    // batch; holding these stops it (for these projections) until commit.
    let mut wrapped = Tx::Pg(tx);
    for (projection, _) in positions.iter() {
        read_checkpoint(&mut wrapped, projection.name()).await?;
    }
    let Tx::Pg(t) = wrapped else { unreachable!() };
    tx = t;
    loop {
        let lowest = super::lowest(positions);
        let found = sqlx::query(rows::READ_AFTER)
            .bind(lowest)
            .bind(BATCH as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut events = found
            .iter()
            .map(rows::decode)
            .collect::<Result<Vec<RecordedEvent>, _>>()?;
        if events.is_empty() {
            break;
        }
        store.open(&mut events).await?;
        set_search_path(&mut tx, &shadow_schema).await?;
        let mut wrapped = Tx::Pg(tx);
        apply_batch(&mut wrapped, positions, &events).await?;
        let Tx::Pg(t) = wrapped else { unreachable!() };
        tx = t;
        set_search_path(&mut tx, &live_schema).await?;
    }
    let position = super::lowest(positions);
    for (projection, _) in positions.iter() {
        for table in projection.tables() {
            sqlx::query(&format!("DROP TABLE {live_schema}.{table}"))
                .execute(&mut *tx)
                .await?;
            // Extended statistics do not move with their table (and the
            // live ones went with the live table): move them too.
            let statistics: Vec<String> = sqlx::query_scalar(
                "SELECT s.stxname::text FROM pg_statistic_ext s \
                 JOIN pg_namespace n ON n.oid = s.stxnamespace \
                 JOIN pg_class t ON t.oid = s.stxrelid \
                 WHERE n.nspname = $1 AND t.relname = $2",
            )
            .bind(shadow)
            .bind(*table)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "ALTER TABLE {shadow_schema}.{table} SET SCHEMA {live_schema}"
            ))
            .execute(&mut *tx)
            .await?;
            for name in statistics {
                sqlx::query(&format!(
                    "ALTER STATISTICS {shadow_schema}.{} SET SCHEMA {live_schema}",
                    quote(&name)
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    let mut wrapped = Tx::Pg(tx);
    for (projection, _) in positions.iter() {
        write_checkpoint(
            &mut wrapped,
            projection.name(),
            projection.version(),
            position,
            SystemClock.now(),
        )
        .await?;
    }
    wrapped.commit().await?;
    Ok(position)
}

async fn set_search_path(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    schema: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SET LOCAL search_path TO {schema}"))
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
