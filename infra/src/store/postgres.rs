//! The PostgreSQL batch writer and the cross-process wake-up.
//!
//! Ordering: every batch transaction first takes a transaction-level
//! advisory lock (one key per Herald schema), then reads the head and writes.
//! The lock is released only when the transaction has committed, so
//! transactions that assign positions commit strictly one after another, in
//! position order: a reader can never see position N+1 before N, and no
//! sequence hole can appear. This is simpler to prove than transaction-id
//! visibility tricks, and with group commit one lock round-trip and one WAL
//! flush serve a whole batch of writers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::appender::{BatchWriter, advance};
use super::batch::{Planned, Snapshot, StoredId, plan};
use super::rows::EventRow;
use super::sqlite::to_hash;
use super::{AppendRequest, StoreError};

pub(crate) struct PgWriter {
    pub pool: PgPool,
    pub lock_key: i64,
    pub channel: String,
}

/// The advisory lock key and notification channel of a Herald schema.
pub(crate) fn names(schema: &str) -> (i64, String) {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("herald.append.{schema}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (
        i64::from_ne_bytes(h.to_ne_bytes()),
        format!("herald_events_{schema}"),
    )
}

#[async_trait]
impl BatchWriter for PgWriter {
    async fn write(
        &self,
        batch: &[&AppendRequest],
        careful: bool,
    ) -> Result<(Vec<Planned>, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key)
            .execute(&mut *tx)
            .await?;
        let mut snapshot = snapshot(&mut tx, batch, careful).await?;
        let (rows, outcomes) = plan(batch, &mut snapshot, chrono::Utc::now().timestamp_micros());
        if !rows.is_empty() {
            insert(&mut tx, &rows).await?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.channel)
                .bind(snapshot.head.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((outcomes, snapshot.head))
    }
}

async fn snapshot(
    conn: &mut PgConnection,
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
    let (apps, names): (Vec<Uuid>, Vec<&str>) = streams.into_iter().unzip();
    let rows = sqlx::query(
        "SELECT s.app_id, s.stream, (SELECT MAX(e.stream_version) FROM events e \
           WHERE e.app_id = s.app_id AND e.stream = s.stream) \
         FROM UNNEST($1::uuid[], $2::text[]) AS s(app_id, stream)",
    )
    .bind(&apps)
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let version: Option<i64> = row.try_get(2)?;
        snap.versions
            .insert((row.try_get(0)?, row.try_get(1)?), version.unwrap_or(0));
    }
    let apps: Vec<Uuid> = batch
        .iter()
        .map(|r| r.app_id().0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = sqlx::query(
        "SELECT a.app_id, (SELECT e.hash FROM events e WHERE e.app_id = a.app_id \
           ORDER BY e.position DESC LIMIT 1) \
         FROM UNNEST($1::uuid[]) AS a(app_id)",
    )
    .bind(&apps)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let hash: Option<Vec<u8>> = row.try_get(1)?;
        if let Some(hash) = hash {
            snap.chain_heads.insert(row.try_get(0)?, to_hash(&hash)?);
        }
    }
    if careful {
        let ids: Vec<Uuid> = batch
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| e.event_id)
            .collect();
        let rows = sqlx::query(
            "SELECT event_id, app_id, stream, stream_version, position, recorded_at \
             FROM events WHERE event_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let mut existing = HashMap::new();
        for row in rows {
            existing.insert(
                row.try_get(0)?,
                StoredId {
                    app_id: row.try_get(1)?,
                    stream: row.try_get(2)?,
                    stream_version: row.try_get(3)?,
                    position: row.try_get(4)?,
                    recorded_at: row.try_get(5)?,
                },
            );
        }
        snap.existing = Some(existing);
    }
    Ok(snap)
}

async fn insert(conn: &mut PgConnection, rows: &[EventRow]) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (position, event_id, app_id, stream, stream_version, event_type, \
           schema_version, data, metadata, recorded_at, hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], \
           $6::text[], $7::int[], $8::text[], $9::text[], $10::bigint[], $11::bytea[])",
    )
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.app_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.stream.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.stream_version).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.schema_version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.data.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.hash.as_slice()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Follows other processes' appends through LISTEN/NOTIFY, reconnecting after
/// failures. (A slow poll in `sql.rs` backs this up.)
pub(crate) async fn listen(pool: PgPool, channel: String, head: watch::Sender<i64>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(&channel).await.is_ok() {
                    backoff = Duration::from_millis(200);
                    while let Ok(n) = listener.recv().await {
                        if let Ok(position) = n.payload().parse::<i64>() {
                            advance(&head, position);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "event listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
