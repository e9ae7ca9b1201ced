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
        let mut any = Vec::new();
        for pattern in &filter.types {
            any.push(match pattern {
                TypePattern::Exact(t) => {
                    format!("event_type = {}", push(&mut binds, Bind::Str(t.clone())))
                }
                TypePattern::Prefix(p) => {
                    let p = push(&mut binds, Bind::Str(p.clone()));
                    format!("substr(event_type, 1, length({p})) = {p}")
                }
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
    let p = push(
        &mut binds,
        Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
    );
    sql.push_str(&format!(" ORDER BY position LIMIT {p}"));
    on_db!(db, |pool| {
        let mut query = sqlx::query(sql.as_str());
        for bind in &binds {
            query = match bind {
                Bind::Uuid(u) => query.bind(*u),
                Bind::Str(s) => query.bind(s.as_str()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        let found = query.fetch_all(pool).await?;
        found.iter().map(rows::decode).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_suffix_is_a_prefix() {
        assert!(TypePattern::parse("device.*").matches("device.registered"));
        assert!(!TypePattern::parse("device.*").matches("user.created"));
        assert!(TypePattern::parse("user.created").matches("user.created"));
        assert!(!TypePattern::parse("user.created").matches("user.created.x"));
    }
}
