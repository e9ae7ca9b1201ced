//! Notification histories: what became of each notification on a device,
//! or on every device of a user, filtered, ordered, counted, and with the
//! notification's name and title beside each entry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::notification::message::Message;
use uuid::Uuid;

use crate::db::Db;
use crate::on_db;
use crate::time::from_micros;

/// Which entries, in which order.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// One device, or a user's devices.
    pub external_ids: Vec<String>,
    /// `delivered`, `failed`, `invalid_token` (empty: every outcome).
    pub outcomes: Vec<String>,
    /// Only notifications with one of these names (empty: any).
    pub names: Vec<String>,
    /// Recorded at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub oldest_first: bool,
    /// The previous page's last entry: its position and device.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// One notification as a device saw it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub position: i64,
    pub external_id: String,
    pub notification_id: Uuid,
    pub outcome: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// `None` once the notification was deleted.
    pub name: Option<String>,
    pub title: Option<String>,
}

/// A page of a history and the number of entries the filter matches.
#[derive(Debug, Clone)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    pub total: i64,
}

/// `$n, $n+1, …` for `count` values after `used` placeholders.
fn placeholders(used: &mut usize, count: usize) -> String {
    let list = (0..count)
        .map(|i| format!("${}", *used + i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    *used += count;
    list
}

enum Bind {
    Uuid(Uuid),
    Str(String),
    Int(i64),
}

/// The notifications' name and title, by id (deleted ones are missing).
async fn contents(
    db: &Db,
    app_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (Option<String>, String)>, sqlx::Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut used = 1;
        let sql = format!(
            "SELECT notification_id, message FROM notifications WHERE app_id = $1 AND notification_id IN ({})",
            placeholders(&mut used, chunk.len())
        );
        let rows: Vec<(Uuid, String)> = on_db!(db, |p| {
            let mut query = sqlx::query_as(&sql).bind(app_id);
            for id in chunk {
                query = query.bind(*id);
            }
            query.fetch_all(p).await?
        });
        for (id, message) in rows {
            if let Ok(m) = serde_json::from_str::<Message>(&message) {
                found.insert(id, (m.content.name, m.content.title));
            }
        }
    }
    Ok(found)
}

/// The app's notifications with one of these names.
async fn named(db: &Db, app_id: Uuid, names: &[String]) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = on_db!(db, |p| {
        sqlx::query_as("SELECT notification_id, message FROM notifications WHERE app_id = $1")
            .bind(app_id)
            .fetch_all(p)
            .await?
    });
    Ok(rows
        .into_iter()
        .filter(|(_, message)| {
            serde_json::from_str::<Message>(message)
                .ok()
                .and_then(|m| m.content.name)
                .is_some_and(|n| names.contains(&n))
        })
        .map(|(id, _)| id)
        .collect())
}

pub async fn history(
    db: &Db,
    app_id: Uuid,
    filter: &HistoryFilter,
) -> Result<History, sqlx::Error> {
    if filter.external_ids.is_empty() {
        return Ok(History {
            entries: vec![],
            total: 0,
        });
    }
    let mut binds = vec![Bind::Uuid(app_id)];
    let mut used = 1;
    let mut clauses = vec![format!(
        "app_id = $1 AND external_id IN ({})",
        placeholders(&mut used, filter.external_ids.len())
    )];
    binds.extend(filter.external_ids.iter().cloned().map(Bind::Str));
    if !filter.outcomes.is_empty() {
        clauses.push(format!(
            "outcome IN ({})",
            placeholders(&mut used, filter.outcomes.len())
        ));
        binds.extend(filter.outcomes.iter().cloned().map(Bind::Str));
    }
    if !filter.names.is_empty() {
        let ids = named(db, app_id, &filter.names).await?;
        if ids.is_empty() {
            return Ok(History {
                entries: vec![],
                total: 0,
            });
        }
        clauses.push(format!(
            "notification_id IN ({})",
            placeholders(&mut used, ids.len())
        ));
        binds.extend(ids.into_iter().map(Bind::Uuid));
    }
    if let Some(since) = filter.since {
        used += 1;
        clauses.push(format!("at >= ${used}"));
        binds.push(Bind::Int(since.timestamp_micros()));
    }
    let filtered = clauses.join(" AND ");
    let count_sql = format!("SELECT COUNT(*) FROM device_notifications WHERE {filtered}");
    let (compare, order) = if filter.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    let mut page_clause = filtered.clone();
    let mut page_binds = 0;
    if filter.after.is_some() {
        // Entries of one batch share its position: the device breaks ties.
        let (p, e) = (used + 1, used + 2);
        page_binds = 2;
        page_clause.push_str(&format!(
            " AND (position {compare} ${p} OR (position = ${p} AND external_id > ${e}))"
        ));
    }
    let page_sql = format!(
        "SELECT position, external_id, notification_id, outcome, reason, at FROM device_notifications \
         WHERE {page_clause} ORDER BY position {order}, external_id LIMIT ${}",
        used + page_binds + 1
    );
    macro_rules! bound {
        ($query:expr) => {{
            let mut query = $query;
            for bind in &binds {
                query = match bind {
                    Bind::Uuid(u) => query.bind(*u),
                    Bind::Str(s) => query.bind(s.as_str()),
                    Bind::Int(i) => query.bind(*i),
                };
            }
            query
        }};
    }
    let total: i64 = on_db!(db, |p| {
        bound!(sqlx::query_scalar(&count_sql)).fetch_one(p).await?
    });
    type Row = (i64, String, Uuid, String, Option<String>, i64);
    let rows: Vec<Row> = on_db!(db, |p| {
        let mut query = bound!(sqlx::query_as(&page_sql));
        if let Some((position, external_id)) = &filter.after {
            query = query.bind(*position).bind(external_id.as_str());
        }
        query.bind(filter.limit).fetch_all(p).await?
    });
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.2).collect();
    ids.sort();
    ids.dedup();
    let contents = contents(db, app_id, &ids).await?;
    let entries = rows
        .into_iter()
        .map(
            |(position, external_id, notification_id, outcome, reason, at)| {
                let content = contents.get(&notification_id);
                HistoryEntry {
                    position,
                    external_id,
                    notification_id,
                    outcome,
                    reason,
                    at: from_micros(at),
                    name: content.and_then(|c| c.0.clone()),
                    title: content.map(|c| c.1.clone()),
                }
            },
        )
        .collect();
    Ok(History { entries, total })
}

/// What became of one notification on each device it reached so far, by
/// device.
pub async fn outcomes_of(
    db: &Db,
    app_id: Uuid,
    notification_id: Uuid,
) -> Result<Vec<(String, String, Option<String>)>, sqlx::Error> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
            "SELECT external_id, outcome, reason FROM device_notifications \
             WHERE app_id = $1 AND notification_id = $2 ORDER BY external_id, position",
        )
        .bind(app_id)
        .bind(notification_id)
        .fetch_all(p)
        .await?
    }))
}
