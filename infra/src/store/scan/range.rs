//! Which events a scan reads, in which order, and the queries that read
//! them chunk by chunk on each backend (or count them).

use std::sync::Arc;

use domain::StoredEvent;
use domain::ids::AppId;
use projections::db::Db;
use uuid::Uuid;

use crate::store::StoreError;

/// Events per query.
pub(super) const CHUNK: i64 = 200_000;

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
pub(super) enum Cursor {
    Position(i64),
    Stream(String, i64),
}

impl Range {
    pub(super) fn start(&self) -> Cursor {
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

    pub(super) fn cursor_after(&self, event: &StoredEvent) -> Cursor {
        match self {
            Range::Streams { .. } => Cursor::Stream(event.stream.clone(), event.stream_version),
            _ => Cursor::Position(event.position),
        }
    }

    /// The SQLite query for the chunk after `cursor`, and its parameters.
    pub(super) fn sqlite(&self, cursor: &Cursor) -> (String, Vec<rusqlite::types::Value>) {
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
    pub(super) fn postgres_settings(&self) -> &'static [&'static str] {
        match self {
            Range::Streams { .. } => &["SET LOCAL enable_sort = off"],
            _ => &[],
        }
    }

    /// The PostgreSQL `COPY` for the chunk after `cursor` (COPY takes no
    /// parameters: every value is written in as a literal by this code).
    pub(super) fn postgres(&self, cursor: &Cursor) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_literals() {
        assert_eq!(successor("device:"), "device;");
        assert_eq!(literal(r"it's a \ test"), r"E'it''s a \\ test'");
    }
}
