//! The SQLite batch writer. `BEGIN IMMEDIATE` takes SQLite's database-wide
//! write lock, which serialises appenders in every process that opens the
//! file; WAL lets readers go on meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::appender::BatchWriter;
use super::batch::{Committed, Snapshot, StoredId, plan};
use super::chain::Hash;
use super::rows::EventRow;
use super::{AppendRequest, StoreError};

/// Streams looked up per query.
const STREAMS_PER_QUERY: usize = 500;

/// Rows per INSERT statement (11 parameters each; SQLite allows 32766).
const ROWS_PER_INSERT: usize = 500;

pub(crate) struct SqliteWriter {
    pub pool: SqlitePool,
    /// Shared with the read models' transactions (see `SqliteDb`).
    pub write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Stamps each batch's `recorded_at`.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

#[async_trait]
impl BatchWriter for SqliteWriter {
    async fn write(
        &self,
        batch: &[&AppendRequest],
        careful: bool,
    ) -> Result<Committed, StoreError> {
        let _write = self.write_lock.lock().await;
        let mut tx = projections::db::sqlite_begin_immediate(&self.pool).await?;
        let mut snapshot = snapshot(&mut tx, batch, careful).await?;
        let refused = super::keys::store_sqlite(&mut tx, batch).await?;
        let plan = plan(
            batch,
            &mut snapshot,
            self.clock.now().timestamp_micros(),
            refused,
        );
        insert(&mut tx, &plan.rows).await?;
        tx.commit().await?;
        Ok(Committed {
            outcomes: plan.outcomes,
            head: snapshot.head,
            events: plan.events,
        })
    }
}

async fn snapshot(
    conn: &mut SqliteConnection,
    batch: &[&AppendRequest],
    careful: bool,
) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    if let Some(row) =
        sqlx::query("SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?
    {
        snap.head = row.try_get(0)?;
        snap.last_recorded_at = row.try_get(1)?;
    }
    // One query per app: `stream IN (…)` walks the (app_id, stream,
    // stream_version) index once for all the batch's streams.
    let mut by_app: BTreeMap<Uuid, BTreeSet<&str>> = BTreeMap::new();
    for r in batch {
        by_app
            .entry(r.app_id().0)
            .or_default()
            .insert(r.stream.as_str());
    }
    for (app, streams) in &by_app {
        for chunk in streams
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .chunks(STREAMS_PER_QUERY)
        {
            let mut query: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT stream, MAX(stream_version) FROM events WHERE app_id = ");
            query.push_bind(*app).push(" AND stream IN (");
            let mut list = query.separated(", ");
            for stream in chunk {
                list.push_bind(*stream);
            }
            query.push(") GROUP BY stream");
            for row in query.build().fetch_all(&mut *conn).await? {
                snap.versions
                    .insert((*app, row.try_get(0)?), row.try_get(1)?);
            }
            for stream in chunk {
                snap.versions
                    .entry((*app, (*stream).to_owned()))
                    .or_insert(0);
            }
        }
    }
    let apps: BTreeSet<Uuid> = batch.iter().map(|r| r.app_id().0).collect();
    for app in apps {
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM events WHERE app_id = $1 ORDER BY position DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(hash) = hash {
            snap.chain_heads.insert(app, to_hash(&hash)?);
        }
    }
    if careful {
        let mut existing = HashMap::new();
        let ids: Vec<Uuid> = batch
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| e.event_id)
            .collect();
        for chunk in ids.chunks(STREAMS_PER_QUERY) {
            let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT event_id, app_id, stream, stream_version, position, recorded_at, hash \
                 FROM events WHERE event_id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(")");
            for row in query.build().fetch_all(&mut *conn).await? {
                existing.insert(
                    row.try_get(0)?,
                    StoredId {
                        app_id: row.try_get(1)?,
                        stream: row.try_get(2)?,
                        stream_version: row.try_get(3)?,
                        position: row.try_get(4)?,
                        recorded_at: row.try_get(5)?,
                        hash: row.try_get(6)?,
                    },
                );
            }
        }
        snap.existing = Some(existing);
    }
    Ok(snap)
}

async fn insert(conn: &mut SqliteConnection, rows: &[EventRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (position, event_id, app_id, stream, stream_version, event_type, \
             schema_version, data, metadata, recorded_at, hash) ",
        );
        query.push_values(chunk, |mut b, row| {
            b.push_bind(row.position)
                .push_bind(row.event_id)
                .push_bind(row.app_id)
                .push_bind(row.stream.as_str())
                .push_bind(row.stream_version)
                .push_bind(row.event_type.as_str())
                .push_bind(row.schema_version)
                .push_bind(row.data.as_str())
                .push_bind(row.metadata.as_str())
                .push_bind(row.recorded_at)
                .push_bind(row.hash.as_slice());
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) fn to_hash(raw: &[u8]) -> Result<Hash, StoreError> {
    raw.try_into()
        .map_err(|_| StoreError::Internal(format!("a stored hash has {} bytes, not 32", raw.len())))
}
