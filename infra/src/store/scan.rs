//! The log read whole, fast: what rebuilds, verification and export walk.
//!
//! A scan reads events as stored ([`StoredEvent`]: the JSON as text,
//! nothing parsed) on a task of its own, a few pages ahead of its
//! consumer, so that reading and whatever is done with the events run side
//! by side. SQLite is read through rusqlite on a blocking thread: sqlx
//! hands each row from its worker thread over a channel, which caps a scan
//! near 170k rows/s. PostgreSQL through a binary `COPY … TO STDOUT` (see
//! `pg_copy`), a little under twice as fast as sqlx's row stream. The query
//! is re-issued every [`CHUNK`] events from the last event seen, so no read
//! transaction (and on SQLite no WAL snapshot) lasts the whole scan.

use std::path::Path;
use std::sync::Arc;

use domain::StoredEvent;
use domain::ids::AppId;
use futures::TryStreamExt;
use projections::db::Db;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::StoreError;
use super::pg_copy::{Malformed, Tuple, Tuples};

/// Events per page handed to the consumer.
pub const PAGE: usize = 4096;
/// Events per query.
const CHUNK: i64 = 200_000;
/// Pages read ahead of the consumer.
const AHEAD: usize = 4;

const COLUMNS: &str = "position, event_id, app_id, stream, stream_version, event_type, \
     schema_version, data, metadata, recorded_at, hash";

/// Which events a scan reads, and in which order.
#[derive(Debug, Clone)]
pub enum Range {
    /// Every app's events after a position, in position order.
    All { after: i64 },
    /// One app's events after a position, in position order.
    App { app: AppId, after: i64 },
    /// One app's events up to `upto` in the streams whose names start with
    /// `prefix`, stream after stream (in the database's text order), each
    /// stream's events in version order; only streams after `after_stream`
    /// when given.
    Streams {
        app: AppId,
        prefix: &'static str,
        after_stream: Option<String>,
        upto: i64,
    },
    /// The events of these types with `after < position <= upto` (one
    /// app's, or every app's), in position order.
    Types {
        app: Option<AppId>,
        types: Arc<[String]>,
        after: i64,
        upto: i64,
    },
}

/// Where a chunked query goes on from: the last event read.
#[derive(Debug, Clone)]
enum Cursor {
    Position(i64),
    Stream(String, i64),
}

impl Range {
    fn start(&self) -> Cursor {
        match self {
            Range::All { after } | Range::App { after, .. } | Range::Types { after, .. } => {
                Cursor::Position(*after)
            }
            Range::Streams {
                prefix,
                after_stream,
                ..
            } => match after_stream {
                Some(stream) => Cursor::Stream(stream.clone(), i64::MAX),
                None => Cursor::Stream((*prefix).to_owned(), i64::MIN),
            },
        }
    }

    fn cursor_after(&self, event: &StoredEvent) -> Cursor {
        match self {
            Range::Streams { .. } => Cursor::Stream(event.stream.clone(), event.stream_version),
            _ => Cursor::Position(event.position),
        }
    }

    /// The SQLite query for the chunk after `cursor`, and its parameters.
    fn sqlite(&self, cursor: &Cursor) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value as V;
        let position = |c: &Cursor| match c {
            Cursor::Position(p) => *p,
            Cursor::Stream(..) => 0,
        };
        match self {
            Range::All { .. } => (
                format!(
                    "SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT {CHUNK}"
                ),
                vec![V::Integer(position(cursor))],
            ),
            Range::App { app, .. } => (
                format!(
                    "SELECT {COLUMNS} FROM events WHERE app_id = ?1 AND position > ?2 \
                     ORDER BY position LIMIT {CHUNK}"
                ),
                vec![
                    V::Blob(app.0.as_bytes().to_vec()),
                    V::Integer(position(cursor)),
                ],
            ),
            Range::Streams {
                app, prefix, upto, ..
            } => {
                let (stream, version) = match cursor {
                    Cursor::Stream(s, v) => (s.clone(), *v),
                    Cursor::Position(_) => ((*prefix).to_owned(), i64::MIN),
                };
                (
                    format!(
                        "SELECT {COLUMNS} FROM events WHERE app_id = ?1 AND stream >= ?2 AND stream < ?3 \
                         AND position <= ?4 AND (stream, stream_version) > (?5, ?6) \
                         ORDER BY stream, stream_version LIMIT {CHUNK}"
                    ),
                    vec![
                        V::Blob(app.0.as_bytes().to_vec()),
                        V::Text((*prefix).to_owned()),
                        V::Text(successor(prefix)),
                        V::Integer(*upto),
                        V::Text(stream),
                        V::Integer(version),
                    ],
                )
            }
            Range::Types {
                app, types, upto, ..
            } => {
                let mut params = vec![V::Integer(position(cursor)), V::Integer(*upto)];
                let mut condition = "position > ?1 AND position <= ?2".to_owned();
                if let Some(app) = app {
                    params.push(V::Blob(app.0.as_bytes().to_vec()));
                    condition.push_str(&format!(" AND app_id = ?{}", params.len()));
                }
                let first = params.len() + 1;
                let list = (first..first + types.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                params.extend(types.iter().map(|t| V::Text(t.clone())));
                (
                    format!(
                        "SELECT {COLUMNS} FROM events WHERE {condition} AND event_type IN ({list}) \
                         ORDER BY position LIMIT {CHUNK}"
                    ),
                    params,
                )
            }
        }
    }

    /// What the PostgreSQL chunk's transaction sets first. Streams are
    /// read in the order of the log's unique index on `(app_id, stream,
    /// stream_version)`: each chunk then walks the index from its cursor.
    /// The planner, guessing how many events a prefix matches, may prefer
    /// to sort the app's remaining events for every chunk (a whole-log
    /// sort per chunk: quadratic over a big log).
    fn postgres_settings(&self) -> &'static [&'static str] {
        match self {
            Range::Streams { .. } => &["SET LOCAL enable_sort = off"],
            _ => &[],
        }
    }

    /// The PostgreSQL `COPY` for the chunk after `cursor` (COPY takes no
    /// parameters: every value is written in as a literal by this code).
    fn postgres(&self, cursor: &Cursor) -> String {
        let position = |c: &Cursor| match c {
            Cursor::Position(p) => *p,
            Cursor::Stream(..) => 0,
        };
        let condition = match self {
            Range::All { .. } => format!("position > {}", position(cursor)),
            Range::App { app, .. } => {
                format!("app_id = '{}' AND position > {}", app.0, position(cursor))
            }
            Range::Streams {
                app, prefix, upto, ..
            } => {
                let after = match cursor {
                    Cursor::Stream(s, v) if s.as_str() != *prefix || *v != i64::MIN => {
                        format!(" AND (stream, stream_version) > ({}, {v})", literal(s))
                    }
                    _ => String::new(),
                };
                format!(
                    "app_id = '{}' AND starts_with(stream, {}) AND position <= {upto}{after}",
                    app.0,
                    literal(prefix)
                )
            }
            Range::Types {
                app, types, upto, ..
            } => format!(
                "{}position > {} AND position <= {upto} AND event_type IN ({})",
                app.map(|a| format!("app_id = '{}' AND ", a.0))
                    .unwrap_or_default(),
                position(cursor),
                types
                    .iter()
                    .map(|t| literal(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let order = match self {
            Range::Streams { .. } => "stream, stream_version",
            _ => "position",
        };
        format!(
            "COPY (SELECT {COLUMNS} FROM events WHERE {condition} ORDER BY {order} LIMIT {CHUNK}) \
             TO STDOUT WITH (FORMAT binary)"
        )
    }
}

impl Range {
    /// How many events the range holds now: what a scan of it reads, but
    /// for events committed meanwhile (a progress bar's total).
    pub async fn count(&self, db: &Db) -> Result<u64, StoreError> {
        // Each backend's condition, with its parameters in order: SQLite
        // compares stream names bytewise, so a prefix is a range of its
        // index; PostgreSQL's collation may not, so it asks `starts_with`.
        enum P<'a> {
            Int(i64),
            Text(&'a str),
            Owned(String),
            App(Uuid),
        }
        let sqlite = matches!(db, Db::Sqlite(_));
        let mut params: Vec<P> = Vec::new();
        fn next<'a>(p: P<'a>, params: &mut Vec<P<'a>>) -> String {
            params.push(p);
            format!("${}", params.len())
        }
        let condition = match self {
            Range::All { after } => format!("position > {}", next(P::Int(*after), &mut params)),
            Range::App { app, after } => format!(
                "app_id = {} AND position > {}",
                next(P::App(app.0), &mut params),
                next(P::Int(*after), &mut params)
            ),
            Range::Streams {
                app,
                prefix,
                after_stream,
                upto,
            } => {
                let mut c = format!("app_id = {}", next(P::App(app.0), &mut params));
                if sqlite {
                    c += &format!(
                        " AND stream >= {} AND stream < {}",
                        next(P::Text(prefix), &mut params),
                        next(P::Owned(successor(prefix)), &mut params)
                    );
                } else {
                    c += &format!(
                        " AND starts_with(stream, {})",
                        next(P::Text(prefix), &mut params)
                    );
                }
                c += &format!(" AND position <= {}", next(P::Int(*upto), &mut params));
                if let Some(after) = after_stream {
                    c += &format!(" AND stream > {}", next(P::Text(after), &mut params));
                }
                c
            }
            Range::Types {
                app,
                types,
                after,
                upto,
            } => {
                let mut c = format!(
                    "position > {} AND position <= {}",
                    next(P::Int(*after), &mut params),
                    next(P::Int(*upto), &mut params)
                );
                if let Some(app) = app {
                    c += &format!(" AND app_id = {}", next(P::App(app.0), &mut params));
                }
                let list: Vec<String> = types
                    .iter()
                    .map(|t| next(P::Text(t), &mut params))
                    .collect();
                c += &format!(" AND event_type IN ({})", list.join(", "));
                c
            }
        };
        if let Range::Types { types, .. } = self
            && types.is_empty()
        {
            return Ok(0);
        }
        let sql = format!("SELECT COUNT(*) FROM events WHERE {condition}");
        let n: i64 = projections::on_db!(db, |pool| {
            let mut query = sqlx::query_scalar(&sql);
            for p in &params {
                query = match p {
                    P::Int(i) => query.bind(*i),
                    P::Text(t) => query.bind(*t),
                    P::Owned(t) => query.bind(t.as_str()),
                    P::App(a) => query.bind(*a),
                };
            }
            query.fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The first string after every string that starts with `prefix` (its
/// last character moved one on: `device:` -> `device;`).
fn successor(prefix: &str) -> String {
    let mut chars: Vec<char> = prefix.chars().collect();
    if let Some(last) = chars.pop() {
        chars.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
    }
    chars.into_iter().collect()
}

/// A PostgreSQL string literal, safe whatever `standard_conforming_strings`
/// says (an escape string: backslashes and quotes doubled).
fn literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Pages of events, read ahead.
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
                if let Err(e) = scan_sqlite(&path, &range, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        }
        Db::Postgres(p) => {
            let pool = p.pool.clone();
            tokio::spawn(async move {
                if let Err(e) = scan_postgres(&pool, &range, &tx).await {
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

fn scan_sqlite(path: &Path, range: &Range, pages: &Pages) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite_error)?;
    let mut cursor = range.start();
    loop {
        let (sql, params) = range.sqlite(&cursor);
        let mut statement = conn.prepare_cached(&sql).map_err(sqlite_error)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;
        let mut page = Vec::with_capacity(PAGE);
        let mut read = 0;
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let event = sqlite_event(row)?;
            cursor = range.cursor_after(&event);
            page.push(event);
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

fn sqlite_event(row: &rusqlite::Row<'_>) -> Result<StoredEvent, StoreError> {
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
    Ok(StoredEvent {
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
    })
}

async fn scan_postgres(
    pool: &sqlx::PgPool,
    range: &Range,
    pages: &Pages,
) -> Result<(), StoreError> {
    let malformed = |e: Malformed| StoreError::Internal(format!("reading the log: {e}"));
    let mut cursor = range.start();
    loop {
        let mut tx = pool.begin().await?;
        for setting in range.postgres_settings() {
            sqlx::query(setting).execute(&mut *tx).await?;
        }
        let mut chunks = tx.copy_out_raw(&range.postgres(&cursor)).await?;
        let mut tuples = Tuples::default();
        let mut page = Vec::with_capacity(PAGE);
        let mut read = 0;
        while let Some(chunk) = chunks.try_next().await? {
            tuples.push(&chunk);
            while let Some(t) = tuples.next().map_err(malformed)? {
                let event = postgres_event(&t).map_err(malformed)?;
                cursor = range.cursor_after(&event);
                page.push(event);
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
        drop(chunks);
        tx.commit().await?;
        if !page.is_empty() && pages.send(Ok(page)).await.is_err() {
            return Ok(());
        }
        if read < CHUNK {
            return Ok(());
        }
    }
}

fn postgres_event(t: &Tuple) -> Result<StoredEvent, Malformed> {
    let uuid = |i: usize| -> Result<Uuid, Malformed> {
        Uuid::from_slice(t.bytes(i)?).map_err(|_| Malformed("a UUID of another size"))
    };
    Ok(StoredEvent {
        position: t.int8(0)?,
        event_id: uuid(1)?,
        app_id: AppId(uuid(2)?),
        stream: t.text(3)?,
        stream_version: t.int8(4)?,
        event_type: t.text(5)?,
        schema_version: t.int4(6)?,
        data: t.text(7)?,
        metadata: t.text(8)?,
        recorded_at: t.int8(9)?,
        hash: t.bytes(10)?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_literals() {
        assert_eq!(successor("device:"), "device;");
        assert_eq!(literal(r"it's a \ test"), r"E'it''s a \\ test'");
    }
}
