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
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::appender::{BatchWriter, advance};
use super::batch::{Committed, Snapshot, StoredId, plan};
use super::rows::EventRow;
use super::sqlite::to_hash;
use super::{AppendRequest, StoreError};
use crate::clock::Clock;

pub(crate) struct PgWriter {
    pool: PgPool,
    lock_key: i64,
    channel: String,
    /// The appender's own connection, kept between batches (no pool
    /// round trip per batch); dropped after any error.
    connection: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
    /// Stamps each batch's `recorded_at`.
    clock: Arc<dyn Clock>,
}

impl PgWriter {
    pub fn new(pool: PgPool, lock_key: i64, channel: String, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            lock_key,
            channel,
            connection: tokio::sync::Mutex::new(None),
            clock,
        }
    }

    async fn transaction(
        &self,
        conn: &mut PgConnection,
        batch: &[&AppendRequest],
        careful: bool,
    ) -> Result<Committed, StoreError> {
        // BEGIN and the lock in one round trip (the key is our own integer).
        let begin = format!("BEGIN; SELECT pg_advisory_xact_lock({})", self.lock_key);
        let mut tx = conn.begin_with(begin).await?;
        let mut snapshot = snapshot(&mut tx, batch, careful).await?;
        let refused = super::keys::store_postgres(&mut tx, batch).await?;
        let plan = plan(
            batch,
            &mut snapshot,
            self.clock.now().timestamp_micros(),
            refused,
        );
        if !plan.rows.is_empty() {
            insert(&mut tx, &plan.rows, &self.channel, snapshot.head).await?;
        }
        tx.commit().await?;
        Ok(Committed {
            outcomes: plan.outcomes,
            head: snapshot.head,
            events: plan.events,
        })
    }
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
    ) -> Result<Committed, StoreError> {
        let mut slot = self.connection.lock().await;
        let (mut conn, kept) = match slot.take() {
            Some(conn) => (conn, true),
            None => (self.pool.acquire().await?, false),
        };
        let mut result = self.transaction(&mut conn, batch, careful).await;
        if kept && matches!(result, Err(StoreError::Unavailable(_))) {
            // The kept connection may have died while idle (the database
            // restarted, say): try once more on a fresh one. Repeating the
            // batch is safe: its event ids make a second write fail, not
            // duplicate.
            let _ = conn.close().await;
            conn = self.pool.acquire().await?;
            result = self.transaction(&mut conn, batch, careful).await;
        }
        if result.is_ok() {
            *slot = Some(conn);
        } else {
            // Its state is unknown (mid-transaction, or broken): replace it.
            let _ = conn.close().await;
        }
        result
    }
}

/// Reads the snapshot in one round trip: the head (`h`), the version of
/// each stream (`v`), the last hash of each app (`c`) and, on the careful
/// path, the stored copies of the batch's event ids (`e`).
const SNAPSHOT: &str = "\
    SELECT 'h'::text AS kind, NULL::uuid AS id, NULL::uuid AS app_id, NULL::text AS stream, \
           h.position AS n1, h.recorded_at AS n2, NULL::bigint AS n3, NULL::bytea AS hash \
      FROM (SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1) h \
    UNION ALL \
    SELECT 'v', NULL, s.app_id, s.stream, \
           (SELECT MAX(e.stream_version) FROM events e WHERE e.app_id = s.app_id AND e.stream = s.stream), \
           NULL, NULL, NULL \
      FROM UNNEST($1::uuid[], $2::text[]) AS s(app_id, stream) \
    UNION ALL \
    SELECT 'c', NULL, a.app_id, NULL, NULL, NULL, NULL, \
           (SELECT e.hash FROM events e WHERE e.app_id = a.app_id ORDER BY e.position DESC LIMIT 1) \
      FROM UNNEST($3::uuid[]) AS a(app_id) \
";

/// The careful path also reads the stored copies of the batch's event ids.
/// Every lookup joins an `UNNEST`ed array, so that even a generic plan
/// (prepared statements switch to one) probes the indexes instead of
/// scanning the log.
const CAREFUL_SNAPSHOT_TAIL: &str = " \
    UNION ALL \
    SELECT 'e', e.event_id, e.app_id, e.stream, e.stream_version, e.position, e.recorded_at, e.hash \
      FROM UNNEST($4::uuid[]) AS i(id) JOIN events e ON e.event_id = i.id";

async fn snapshot(
    conn: &mut PgConnection,
    batch: &[&AppendRequest],
    careful: bool,
) -> Result<Snapshot, StoreError> {
    let streams: BTreeSet<(Uuid, &str)> = batch
        .iter()
        .map(|r| (r.app_id().0, r.stream.as_str()))
        .collect();
    let (stream_apps, stream_names): (Vec<Uuid>, Vec<&str>) = streams.into_iter().unzip();
    let apps: Vec<Uuid> = batch
        .iter()
        .map(|r| r.app_id().0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ids: Vec<Uuid> = if careful {
        batch
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| e.event_id)
            .collect()
    } else {
        Vec::new()
    };
    let rows = if careful {
        sqlx::query(&format!("{SNAPSHOT}{CAREFUL_SNAPSHOT_TAIL}"))
            .bind(&stream_apps)
            .bind(&stream_names)
            .bind(&apps)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?
    } else {
        sqlx::query(SNAPSHOT)
            .bind(&stream_apps)
            .bind(&stream_names)
            .bind(&apps)
            .fetch_all(&mut *conn)
            .await?
    };
    let mut snap = Snapshot::default();
    let mut existing = HashMap::new();
    for row in rows {
        let kind: String = row.try_get(0)?;
        match kind.as_str() {
            "h" => {
                snap.head = row.try_get(4)?;
                snap.last_recorded_at = row.try_get(5)?;
            }
            "v" => {
                let version: Option<i64> = row.try_get(4)?;
                snap.versions
                    .insert((row.try_get(2)?, row.try_get(3)?), version.unwrap_or(0));
            }
            "c" => {
                let hash: Option<Vec<u8>> = row.try_get(7)?;
                if let Some(hash) = hash {
                    snap.chain_heads.insert(row.try_get(2)?, to_hash(&hash)?);
                }
            }
            _ => {
                existing.insert(
                    row.try_get(1)?,
                    StoredId {
                        app_id: row.try_get(2)?,
                        stream: row.try_get(3)?,
                        stream_version: row.try_get(4)?,
                        position: row.try_get(5)?,
                        recorded_at: row.try_get(6)?,
                        hash: row.try_get(7)?,
                    },
                );
            }
        }
    }
    if careful {
        snap.existing = Some(existing);
    }
    Ok(snap)
}

/// Inserts the rows, and notifies listeners of the new head with the last
/// statement (one `UNNEST` statement per batch: its arrays are parameters,
/// so no row count limits it).
async fn insert(
    conn: &mut PgConnection,
    rows: &[EventRow],
    channel: &str,
    head: i64,
) -> Result<(), StoreError> {
    let chunks = [rows];
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let sql = if i == last {
            "WITH written AS (INSERT INTO events (position, event_id, app_id, stream, stream_version, \
               event_type, schema_version, data, metadata, recorded_at, hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], \
               $6::text[], $7::int[], $8::text[], $9::text[], $10::bigint[], $11::bytea[]) RETURNING 1) \
             SELECT pg_notify($12, $13) FROM (SELECT count(*) FROM written) AS w"
        } else {
            "INSERT INTO events (position, event_id, app_id, stream, stream_version, \
               event_type, schema_version, data, metadata, recorded_at, hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], \
               $6::text[], $7::int[], $8::text[], $9::text[], $10::bigint[], $11::bytea[])"
        };
        let mut query = sqlx::query(sql)
            .bind(chunk.iter().map(|r| r.position).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.event_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.app_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.stream.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.stream_version).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.schema_version).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.data.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.metadata.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.hash.as_slice()).collect::<Vec<_>>());
        if i == last {
            query = query.bind(channel).bind(head.to_string());
        }
        query.execute(&mut *conn).await?;
    }
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
