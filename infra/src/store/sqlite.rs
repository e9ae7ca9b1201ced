//! The SQLite batch writer. `BEGIN IMMEDIATE` takes SQLite's database-wide
//! write lock, which serialises appenders in every process that opens the
//! file; WAL lets readers go on meanwhile.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::appender::BatchWriter;
use super::batch::{Planned, Snapshot, StoredId, plan};
use super::chain::Hash;
use super::rows::EventRow;
use super::{AppendRequest, StoreError};

/// Rows per INSERT statement (11 parameters each; SQLite allows 32766).
const ROWS_PER_INSERT: usize = 500;

pub(crate) struct SqliteWriter {
    pub pool: SqlitePool,
    /// Shared with the read models' transactions (see `SqliteDb`).
    pub write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

#[async_trait]
impl BatchWriter for SqliteWriter {
    async fn write(
        &self,
        batch: &[&AppendRequest],
        careful: bool,
    ) -> Result<(Vec<Planned>, i64), StoreError> {
        let _write = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut snapshot = snapshot(&mut tx, batch, careful).await?;
        let (rows, outcomes) = plan(batch, &mut snapshot, chrono::Utc::now().timestamp_micros());
        insert(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok((outcomes, snapshot.head))
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
    let streams: BTreeSet<(Uuid, &str)> = batch
        .iter()
        .map(|r| (r.app_id().0, r.stream.as_str()))
        .collect();
    for (app, stream) in streams {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(stream_version) FROM events WHERE app_id = $1 AND stream = $2",
        )
        .bind(app)
        .bind(stream)
        .fetch_one(&mut *conn)
        .await?;
        snap.versions
            .insert((app, stream.to_owned()), version.unwrap_or(0));
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
        for event in batch.iter().flat_map(|r| &r.events) {
            let row = sqlx::query(
                "SELECT app_id, stream, stream_version, position, recorded_at \
                 FROM events WHERE event_id = $1",
            )
            .bind(event.event_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                existing.insert(
                    event.event_id,
                    StoredId {
                        app_id: row.try_get(0)?,
                        stream: row.try_get(1)?,
                        stream_version: row.try_get(2)?,
                        position: row.try_get(3)?,
                        recorded_at: row.try_get(4)?,
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
