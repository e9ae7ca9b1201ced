//! The log read whole, fast: what rebuilds, verification and export walk.
//!
//! A scan reads events in position order as stored ([`StoredEvent`]: the
//! JSON as text, nothing parsed) on a task of its own, a page ahead of its
//! consumer, so that reading and whatever is done with the events run side
//! by side. SQLite is read through rusqlite on a blocking thread: sqlx hands
//! each row from its worker thread over a channel, which caps a scan near
//! 170k rows/s; PostgreSQL through a binary `COPY … TO STDOUT` (see
//! `pg_copy`), a little under twice as fast as sqlx's row stream. The query is re-issued
//! every [`CHUNK`] events from the last position seen, so no read
//! transaction (and on SQLite no WAL snapshot) lasts the whole scan.

use std::path::PathBuf;

use domain::StoredEvent;
use domain::ids::AppId;
use futures::TryStreamExt;
use projections::db::Db;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::StoreError;
use super::pg_copy::{Malformed, Tuples};

/// Events per page handed to the consumer.
pub const PAGE: usize = 4096;
/// Events per query.
const CHUNK: i64 = 200_000;
/// Pages read ahead of the consumer.
const AHEAD: usize = 4;

/// Which events a scan reads.
#[derive(Debug, Clone, Copy)]
pub enum Range {
    /// Every app's events after a position.
    All { after: i64 },
    /// One app's events after a position.
    App { app: AppId, after: i64 },
}

impl Range {
    fn after(&self) -> i64 {
        match self {
            Range::All { after } | Range::App { after, .. } => *after,
        }
    }

    fn sql(&self) -> &'static str {
        match self {
            Range::All { .. } => concat!(
                "SELECT position, event_id, app_id, stream, stream_version, event_type, ",
                "schema_version, data, metadata, recorded_at, hash FROM events ",
                "WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            Range::App { .. } => concat!(
                "SELECT position, event_id, app_id, stream, stream_version, event_type, ",
                "schema_version, data, metadata, recorded_at, hash FROM events ",
                "WHERE app_id = $3 AND position > $1 ORDER BY position LIMIT $2"
            ),
        }
    }

    fn app(&self) -> Option<AppId> {
        match self {
            Range::All { .. } => None,
            Range::App { app, .. } => Some(*app),
        }
    }
}

/// Pages of events in position order, read ahead.
pub struct Scan {
    pages: mpsc::Receiver<Result<Vec<StoredEvent>, StoreError>>,
}

impl Scan {
    /// The next page; `None` at the end of the range (as it was when each
    /// chunk was read: a scan sees events committed while it runs).
    pub async fn next(&mut self) -> Option<Result<Vec<StoredEvent>, StoreError>> {
        self.pages.recv().await
    }
}

/// Starts reading `range` of the log in `db`.
pub fn scan(db: &Db, range: Range) -> Scan {
    let (tx, pages) = mpsc::channel(AHEAD);
    match db {
        Db::Sqlite(s) => {
            let path = s.reader.connect_options().get_filename().to_path_buf();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = scan_sqlite(&path, range, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        }
        Db::Postgres(p) => {
            let pool = p.pool.clone();
            tokio::spawn(async move {
                if let Err(e) = scan_postgres(&pool, range, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
    }
    Scan { pages }
}

type Pages = mpsc::Sender<Result<Vec<StoredEvent>, StoreError>>;

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("reading the log: {e}"))
}

fn uuid_of(bytes: &[u8], position: i64, what: &str) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|e| {
        StoreError::Internal(format!(
            "the stored event at position {position} has an unreadable {what}: {e}"
        ))
    })
}

fn scan_sqlite(path: &PathBuf, range: Range, pages: &Pages) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite_error)?;
    // Numbered `?n` parameters: `$n` would be numbered by first appearance.
    let mut statement = conn
        .prepare(&range.sql().replace('$', "?"))
        .map_err(sqlite_error)?;
    let app = range.app().map(|a| a.0.as_bytes().to_vec());
    let mut after = range.after();
    loop {
        let mut rows = match &app {
            None => statement.query(rusqlite::params![after, CHUNK]),
            Some(app) => statement.query(rusqlite::params![after, CHUNK, app]),
        }
        .map_err(sqlite_error)?;
        let mut page = Vec::with_capacity(PAGE);
        let mut read = 0;
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let position: i64 = row.get(0).map_err(sqlite_error)?;
            let text = |i: usize| -> Result<String, StoreError> {
                row.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map(str::to_owned)
                    .map_err(sqlite_error)
            };
            let blob = |i: usize| -> Result<&[u8], StoreError> {
                row.get_ref(i)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sqlite_error)
            };
            page.push(StoredEvent {
                position,
                event_id: uuid_of(blob(1)?, position, "event id")?,
                app_id: AppId(uuid_of(blob(2)?, position, "app id")?),
                stream: text(3)?,
                stream_version: row.get(4).map_err(sqlite_error)?,
                event_type: text(5)?,
                schema_version: row.get(6).map_err(sqlite_error)?,
                data: text(7)?,
                metadata: text(8)?,
                recorded_at: row.get(9).map_err(sqlite_error)?,
                hash: blob(10)?.to_vec(),
            });
            after = position;
            read += 1;
            if page.len() == PAGE {
                let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE));
                if pages.blocking_send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !page.is_empty() && pages.blocking_send(Ok(page)).is_err() {
            return Ok(());
        }
        if read < CHUNK {
            return Ok(());
        }
    }
}

async fn scan_postgres(pool: &sqlx::PgPool, range: Range, pages: &Pages) -> Result<(), StoreError> {
    use sqlx::postgres::PgPoolCopyExt;
    let malformed = |e: Malformed| StoreError::Internal(format!("reading the log: {e}"));
    let mut after = range.after();
    loop {
        // COPY takes no parameters: the bounds are integers and a UUID,
        // written into the statement by this code.
        let condition = match range.app() {
            None => format!("position > {after}"),
            Some(app) => format!("app_id = '{}' AND position > {after}", app.0),
        };
        let statement = format!(
            "COPY (SELECT position, event_id, app_id, stream, stream_version, event_type, \
             schema_version, data, metadata, recorded_at, hash FROM events WHERE {condition} \
             ORDER BY position LIMIT {CHUNK}) TO STDOUT WITH (FORMAT binary)"
        );
        let mut chunks = pool.copy_out_raw(&statement).await?;
        let mut tuples = Tuples::default();
        let mut page = Vec::with_capacity(PAGE);
        let mut read = 0;
        while let Some(chunk) = chunks.try_next().await? {
            tuples.push(&chunk);
            while let Some(t) = tuples.next().map_err(malformed)? {
                let position = t.int8(0).map_err(malformed)?;
                page.push(StoredEvent {
                    position,
                    event_id: uuid_of(t.bytes(1).map_err(malformed)?, position, "event id")?,
                    app_id: AppId(uuid_of(t.bytes(2).map_err(malformed)?, position, "app id")?),
                    stream: t.text(3).map_err(malformed)?,
                    stream_version: t.int8(4).map_err(malformed)?,
                    event_type: t.text(5).map_err(malformed)?,
                    schema_version: t.int4(6).map_err(malformed)?,
                    data: t.text(7).map_err(malformed)?,
                    metadata: t.text(8).map_err(malformed)?,
                    recorded_at: t.int8(9).map_err(malformed)?,
                    hash: t.bytes(10).map_err(malformed)?.to_vec(),
                });
                after = position;
                read += 1;
                if page.len() == PAGE {
                    let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE));
                    if pages.send(Ok(full)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        if !tuples.ended() {
            return Err(StoreError::Unavailable(
                "reading the log: the COPY stream ended early".into(),
            ));
        }
        if !page.is_empty() && pages.send(Ok(page)).await.is_err() {
            return Ok(());
        }
        if read < CHUNK {
            return Ok(());
        }
    }
}
