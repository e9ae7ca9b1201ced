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

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    CreatedAsc,
    CreatedDesc,
    /// Scheduled ones first, by time; then the rest.
    ScheduledAsc,
}

/// Where a page starts: after this sort key and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub key: i64,
    pub id: Uuid,
}

/// Notifications without a schedule sort after every scheduled one.
const UNSCHEDULED: i64 = i64::MAX;

pub async fn list(
    db: &Db,
    app_id: Uuid,
    status: Option<Status>,
    order: Order,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<(i64, NotificationRecord)>, sqlx::Error> {
    let (key, cmp, dir) = match order {
        Order::CreatedAsc => ("created_at".to_owned(), ">", "ASC"),
        Order::CreatedDesc => ("created_at".to_owned(), "<", "DESC"),
        Order::ScheduledAsc => (format!("COALESCE(scheduled_at, {UNSCHEDULED})"), ">", "ASC"),
    };
    let after_clause = if after.is_some() {
        format!("AND ({key} {cmp} $3 OR ({key} = $3 AND notification_id {cmp} $4))")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {key}, {COLUMNS} FROM notifications WHERE app_id = $1 AND ($2 IS NULL OR status = $2) \
         {after_clause} ORDER BY {key} {dir}, notification_id {dir} LIMIT $5"
    );
    type Keyed = (
        i64,
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
    let rows: Vec<Keyed> = on_db!(db, |p| {
        sqlx::query_as(&sql)
            .bind(app_id)
            .bind(status.map(Status::as_str))
            .bind(after.map_or(0, |a| a.key))
            .bind(after.map_or(Uuid::nil(), |a| a.id))
            .bind(limit)
            .fetch_all(p)
            .await?
    });
    rows.into_iter()
        .map(|(k, a, b, c, d, e, f, g, h, i, j)| Ok((k, record((a, b, c, d, e, f, g, h, i, j))?)))
        .collect()
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
