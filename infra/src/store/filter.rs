//! Filtered reads of one app's log, for auditors.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use domain::RecordedEvent;
use domain::ids::AppId;
use projections::db::Db;
use projections::on_db;

use super::{StoreError, rows};

/// An event type to match: exact, or every type under a prefix
/// (`device.*` matches `device.registered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    Exact(String),
    Prefix(String),
}

impl TypePattern {
    /// `device.*` is a prefix pattern; anything else is exact.
    pub fn parse(raw: &str) -> Self {
        match raw.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(raw.to_owned()),
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(t) => t == event_type,
            Self::Prefix(p) => event_type.starts_with(p.as_str()),
        }
    }
}

/// Which of an app's events to read. Every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with a position above this.
    pub after: i64,
    pub stream: Option<String>,
    /// Any of these types (empty: every type).
    pub types: Vec<TypePattern>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded strictly before.
    pub until: Option<DateTime<Utc>>,
    /// `metadata.actor`, e.g. `key:<uuid>` or `system:webhooks`.
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
}

enum Bind {
    Uuid(Uuid),
    Str(String),
    Int(i64),
}

/// `query` with `binds` bound in order (any query kind, either backend).
macro_rules! bound {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Uuid(u) => query.bind(*u),
                Bind::Str(s) => query.bind(s.as_str()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }};
}

/// Reads the app's events matching `filter`, in position order.
pub(crate) async fn read(
    db: &Db,
    app_id: AppId,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let postgres = matches!(db, Db::Postgres(_));
    let mut binds = vec![Bind::Uuid(app_id.0), Bind::Int(filter.after)];
    let mut sql = String::from(concat!(
        rows::select_events!(),
        "WHERE app_id = $1 AND position > $2"
    ));
    let push = |binds: &mut Vec<Bind>, bind: Bind| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    if let Some(stream) = &filter.stream {
        let p = push(&mut binds, Bind::Str(stream.clone()));
        sql.push_str(&format!(" AND stream = {p}"));
    }
    if !filter.types.is_empty() {
        // Byte order on both backends ("C" on PostgreSQL, as the index
        // `events_app_type` is built), so a prefix is a range of the index.
        let column = if postgres {
            "event_type COLLATE \"C\""
        } else {
            "event_type"
        };
        let mut any = Vec::new();
        for pattern in &filter.types {
            any.push(match pattern {
                TypePattern::Exact(t) => {
                    format!("{column} = {}", push(&mut binds, Bind::Str(t.clone())))
                }
                TypePattern::Prefix(p) => match successor(p) {
                    Some(end) => {
                        let from = push(&mut binds, Bind::Str(p.clone()));
                        let to = push(&mut binds, Bind::Str(end));
                        format!("({column} >= {from} AND {column} < {to})")
                    }
                    None => {
                        let from = push(&mut binds, Bind::Str(p.clone()));
                        format!("{column} >= {from}")
                    }
                },
            });
        }
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    if let Some(since) = filter.since {
        let p = push(&mut binds, Bind::Int(since.timestamp_micros()));
        sql.push_str(&format!(" AND recorded_at >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = push(&mut binds, Bind::Int(until.timestamp_micros()));
        sql.push_str(&format!(" AND recorded_at < {p}"));
    }
    for (field, value) in [
        ("actor", &filter.actor),
        ("correlation_id", &filter.correlation_id),
    ] {
        if let Some(value) = value {
            let p = push(&mut binds, Bind::Str(value.clone()));
            if postgres {
                sql.push_str(&format!(" AND (metadata::jsonb ->> '{field}') = {p}"));
            } else {
                sql.push_str(&format!(" AND json_extract(metadata, '$.{field}') = {p}"));
            }
        }
    }
    if !postgres
        && let Some(index) = narrowing_index(filter)
        && narrow(db, &sql, &binds, index).await?
    {
        // Few events match: read them from the index that narrows (and
        // sort them), rather than walk the app's log in position order.
        sql = sql.replacen(
            "FROM events ",
            &format!("FROM events INDEXED BY {index} "),
            1,
        );
    }
    let p = push(
        &mut binds,
        Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
    );
    sql.push_str(&format!(" ORDER BY position LIMIT {p}"));
    on_db!(db, |pool| {
        let found = bound!(sqlx::query(sql.as_str()), &binds)
            .fetch_all(pool)
            .await?;
        found.iter().map(rows::decode).collect()
    })
}

/// Matches at most this many, a filter reads them from its own index.
const NARROW: i64 = 5_000;

/// On SQLite, the index that narrows a filter whose matches are not in
/// position order within it (a stream, a type prefix or several types, a
/// time range). Exact type, actor and correlation id need none: their
/// indexes end with the position, so SQLite reads them in order already.
/// PostgreSQL's planner weighs this from its statistics.
fn narrowing_index(filter: &EventFilter) -> Option<&'static str> {
    let ordered = filter.actor.is_some()
        || filter.correlation_id.is_some()
        || matches!(filter.types.as_slice(), [TypePattern::Exact(_)]);
    if ordered {
        return None;
    }
    if filter.stream.is_some() {
        // The index of UNIQUE (app_id, stream, stream_version).
        Some("sqlite_autoindex_events_2")
    } else if !filter.types.is_empty() {
        Some("events_app_type")
    } else if filter.since.is_some() || filter.until.is_some() {
        Some("events_app_time")
    } else {
        None
    }
}

/// Whether at most [`NARROW`] events match `sql` (a filter's query before
/// its order and limit), counted on `index`: at most that many index
/// entries are read.
async fn narrow(db: &Db, sql: &str, binds: &[Bind], index: &str) -> Result<bool, StoreError> {
    let Some((_, conditions)) = sql.split_once(" WHERE ") else {
        return Ok(false);
    };
    let probe = format!(
        "SELECT count(*) FROM (SELECT 1 FROM events INDEXED BY {index} WHERE {conditions} LIMIT {})",
        NARROW + 1
    );
    let found: i64 = on_db!(db, |pool| {
        bound!(sqlx::query_scalar(probe.as_str()), binds)
            .fetch_one(pool)
            .await?
    });
    Ok(found <= NARROW)
}

/// The device streams of an app whose registration or a link named
/// `user_id`, among events recorded at or before `until` (index
/// `events_device_user`): the devices a user may have had then.
pub(crate) async fn device_streams_of_user(
    db: &Db,
    app_id: AppId,
    user_id: &str,
    until: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let sql = if matches!(db, Db::Postgres(_)) {
        "SELECT DISTINCT stream FROM events WHERE app_id = $1 \
         AND event_type IN ('device.registered', 'device.user_linked') \
         AND (data::jsonb ->> 'user_id') = $2 AND recorded_at <= $3 ORDER BY stream"
    } else {
        "SELECT DISTINCT stream FROM events WHERE app_id = $1 \
         AND event_type IN ('device.registered', 'device.user_linked') \
         AND json_extract(data, '$.user_id') = $2 AND recorded_at <= $3 ORDER BY stream"
    };
    Ok(on_db!(db, |pool| {
        sqlx::query_scalar(sql)
            .bind(app_id.0)
            .bind(user_id)
            .bind(until.timestamp_micros())
            .fetch_all(pool)
            .await?
    }))
}

/// The least string greater than every string that starts with `prefix`
/// (its last character that can be, moved on by one), if there is one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_its_successor() {
        assert_eq!(successor("device.").as_deref(), Some("device/"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor(""), None);
        for t in ["device.", "device.registered", "device.z\u{10FFFF}"] {
            let end = successor("device.").unwrap_or_default();
            assert!(t >= "device." && t < end.as_str(), "{t}");
        }
        assert!("device/" >= successor("device.").unwrap_or_default().as_str());
    }

    #[test]
    fn star_suffix_is_a_prefix() {
        assert!(TypePattern::parse("device.*").matches("device.registered"));
        assert!(!TypePattern::parse("device.*").matches("user.created"));
        assert!(TypePattern::parse("user.created").matches("user.created"));
        assert!(!TypePattern::parse("user.created").matches("user.created.x"));
    }
}
