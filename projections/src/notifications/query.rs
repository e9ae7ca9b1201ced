//! Reading notifications, a device's notification history, and usage.

use chrono::{DateTime, Utc};
use domain::notification::message::Message;
use domain::notification::{PerPlatform, Status};
use uuid::Uuid;

use crate::db::Db;
use crate::on_db;
use crate::time::from_micros;

#[derive(Debug, Clone)]
pub struct NotificationRecord {
    pub notification_id: Uuid,
    pub app_id: Uuid,
    pub status: Status,
    pub message: Message,
    pub audience: Option<serde_json::Value>,
    pub sent: PerPlatform,
    pub failed: PerPlatform,
    pub error_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type Stored = (
    Uuid,
    Uuid,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

const COLUMNS: &str = "notification_id, app_id, status, message, audience, sent, failed, \
                       error_reason, created_at, updated_at";

fn record(row: Stored) -> Result<NotificationRecord, sqlx::Error> {
    let (id, app_id, status, message, audience, sent, failed, error_reason, created, updated) = row;
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    Ok(NotificationRecord {
        notification_id: id,
        app_id,
        status: Status::parse(&status).unwrap_or(Status::Draft),
        message: serde_json::from_str(&message).map_err(decode)?,
        audience: audience.and_then(|a| serde_json::from_str(&a).ok()),
        sent: serde_json::from_str(&sent).map_err(decode)?,
        failed: serde_json::from_str(&failed).map_err(decode)?,
        error_reason,
        created_at: from_micros(created),
        updated_at: from_micros(updated),
    })
}

pub async fn get(
    db: &Db,
    app_id: Uuid,
    id: Uuid,
) -> Result<Option<NotificationRecord>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM notifications WHERE app_id = $1 AND notification_id = $2");
    let row: Option<Stored> = on_db!(db, |p| {
        sqlx::query_as(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_optional(p)
            .await?
    });
    row.map(record).transpose()
}

/// A field notifications can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    CreatedAt,
    UpdatedAt,
    /// Scheduled ones by time, then (ascending) the unscheduled ones.
    ScheduledAt,
    Status,
}

impl Field {
    pub const ALL: [Field; 4] = [
        Field::CreatedAt,
        Field::UpdatedAt,
        Field::ScheduledAt,
        Field::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
            Field::ScheduledAt => "scheduled_at",
            Field::Status => "status",
        }
    }

    fn column(self) -> String {
        match self {
            Field::CreatedAt => "created_at".into(),
            Field::UpdatedAt => "updated_at".into(),
            Field::ScheduledAt => format!("COALESCE(scheduled_at, {UNSCHEDULED})"),
            Field::Status => "status".into(),
        }
    }

    pub fn is_text(self) -> bool {
        matches!(self, Field::Status)
    }
}

/// One sort key: a field, descending or not.
pub type SortKey = (Field, bool);

/// A value of a sort key, as a page's last row had it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    Int(i64),
    Text(String),
}

/// Where a page starts: after these key values (one per sort key) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub keys: Vec<KeyValue>,
    pub id: Uuid,
}

/// Notifications without a schedule sort after every scheduled one.
const UNSCHEDULED: i64 = i64::MAX;

/// The app's notifications ordered by `order` (then by id, in the last
/// key's direction), after `after`; each with its key values.
pub async fn list(
    db: &Db,
    app_id: Uuid,
    status: Option<Status>,
    order: &[SortKey],
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<(Vec<KeyValue>, NotificationRecord)>, sqlx::Error> {
    let last_desc = order.last().is_some_and(|k| k.1);
    let id_dir = if last_desc { "DESC" } else { "ASC" };
    let mut keys: Vec<(String, &str, &str)> = order
        .iter()
        .map(|(f, desc)| {
            let (cmp, dir) = if *desc { ("<", "DESC") } else { (">", "ASC") };
            (f.column(), cmp, dir)
        })
        .collect();
    // Key values bind from $3 on; the id after them; the limit last.
    let mut after_clause = String::new();
    if after.is_some() {
        let n = keys.len();
        let mut ors = Vec::new();
        for i in 0..=n {
            let mut ands: Vec<String> = (0..i)
                .map(|j| format!("{} = ${}", keys[j].0, j + 3))
                .collect();
            if i < n {
                ands.push(format!("{} {} ${}", keys[i].0, keys[i].1, i + 3));
            } else {
                let cmp = if last_desc { "<" } else { ">" };
                ands.push(format!("notification_id {cmp} ${}", n + 3));
            }
            ors.push(format!("({})", ands.join(" AND ")));
        }
        after_clause = format!("AND ({})", ors.join(" OR "));
    }
    let selected: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS k{i}", k.0))
        .collect();
    let ordering: Vec<String> = keys
        .drain(..)
        .map(|(column, _, dir)| format!("{column} {dir}"))
        .collect();
    let limit_at = if after.is_some() { order.len() + 4 } else { 3 };
    let sql = format!(
        "SELECT {COLUMNS}, {} FROM notifications WHERE app_id = $1 AND ($2 IS NULL OR status = $2) \
         {after_clause} ORDER BY {}, notification_id {id_dir} LIMIT ${limit_at}",
        selected.join(", "),
        ordering.join(", ")
    );
    macro_rules! run {
        ($p:expr, $row:ty) => {{
            let mut query = sqlx::query(&sql)
                .bind(app_id)
                .bind(status.map(Status::as_str));
            for value in after.map(|a| a.keys.as_slice()).unwrap_or(&[]) {
                query = match value {
                    KeyValue::Int(i) => query.bind(*i),
                    KeyValue::Text(t) => query.bind(t.as_str()),
                };
            }
            if let Some(a) = after {
                query = query.bind(a.id);
            }
            let rows = query.bind(limit).fetch_all($p).await?;
            rows.iter()
                .map(|row: &$row| {
                    use sqlx::Row;
                    let stored: Stored = (
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                        row.try_get(7)?,
                        row.try_get(8)?,
                        row.try_get(9)?,
                    );
                    let keys = order
                        .iter()
                        .enumerate()
                        .map(|(i, (f, _))| {
                            Ok(if f.is_text() {
                                KeyValue::Text(row.try_get(10 + i)?)
                            } else {
                                KeyValue::Int(row.try_get(10 + i)?)
                            })
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    Ok((keys, record(stored)?))
                })
                .collect()
        }};
    }
    match db {
        Db::Sqlite(s) => run!(&s.reader, sqlx::sqlite::SqliteRow),
        Db::Postgres(p) => run!(&p.pool, sqlx::postgres::PgRow),
    }
}

/// Push messages per UTC day (`YYYY-MM-DD`) in `[from, to]`.
pub async fn usage(
    db: &Db,
    app_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
            "SELECT day, messages FROM push_usage WHERE app_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(app_id)
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await?
    }))
}

/// Push messages of one UTC day.
pub async fn usage_on(db: &Db, app_id: Uuid, day: &str) -> Result<i64, sqlx::Error> {
    let found: Option<i64> = on_db!(db, |p| {
        sqlx::query_scalar("SELECT messages FROM push_usage WHERE app_id = $1 AND day = $2")
            .bind(app_id)
            .bind(day)
            .fetch_optional(p)
            .await?
    });
    Ok(found.unwrap_or(0))
}
