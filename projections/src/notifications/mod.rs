//! Notifications as last seen, with their counters, and push messages per
//! app and UTC day. Counters are the sum of the recorded batches; the
//! final `notification.sent` / `notification.errored` states them again.

pub mod fold;
pub mod history;
pub mod jobs;
pub mod query;
pub mod timeline;

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::event::DomainEvent;
use domain::notification::{NotificationEvent, Status};
use uuid::Uuid;

use crate::db::Tx;
use crate::{Projection, ProjectionError, on_tx};

pub const NAME: &str = "notifications";

pub struct NotificationsProjection;

use self::fold::Row;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

type Stored = (
    Uuid,
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);

async fn load(tx: &mut Tx, id: Uuid) -> Result<Option<Row>, sqlx::Error> {
    let row: Option<Stored> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT app_id, status, message, scheduled_at, audience, sent, failed, error_reason, \
             created_at, updated_at, version FROM notifications WHERE notification_id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    Ok(row.map(
        |(
            app_id,
            status,
            message,
            scheduled_at,
            audience,
            sent,
            failed,
            error_reason,
            created_at,
            updated_at,
            version,
        )| Row {
            app_id,
            status: Status::parse(&status).unwrap_or(Status::Draft),
            message,
            scheduled_at,
            audience: audience.and_then(|a| serde_json::from_str(&a).ok()),
            sent: serde_json::from_str(&sent).unwrap_or_default(),
            failed: serde_json::from_str(&failed).unwrap_or_default(),
            error_reason,
            created_at,
            updated_at,
            version,
            new: false,
            deleted: false,
        },
    ))
}

async fn save(tx: &mut Tx, id: Uuid, row: &Row) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        if row.deleted {
            sqlx::query("DELETE FROM notifications WHERE notification_id = $1")
                .bind(id)
                .execute(c)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO notifications (notification_id, app_id, status, message, scheduled_at, audience, \
                 sent, failed, error_reason, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (notification_id) DO UPDATE SET status = excluded.status, \
                 message = excluded.message, scheduled_at = excluded.scheduled_at, \
                 audience = excluded.audience, sent = excluded.sent, failed = excluded.failed, \
                 error_reason = excluded.error_reason, updated_at = excluded.updated_at, \
                 version = excluded.version",
            )
            .bind(id)
            .bind(row.app_id)
            .bind(row.status.as_str())
            .bind(&row.message)
            .bind(row.scheduled_at)
            .bind(row.audience.as_ref().map(json))
            .bind(json(&row.sent))
            .bind(json(&row.failed))
            .bind(row.error_reason.as_deref())
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.version)
            .execute(c)
            .await?;
        }
    });
    Ok(())
}

/// `YYYY-MM-DD` of an instant, UTC.
pub fn day_of(event: &RecordedEvent) -> String {
    event.recorded_at.format("%Y-%m-%d").to_string()
}

impl crate::ReadModel for NotificationsProjection {}

#[async_trait]
impl Projection for NotificationsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notifications", "push_usage"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("notification.")
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut rows: HashMap<Uuid, Row> = HashMap::new();
        let mut usage: HashMap<(Uuid, String), i64> = HashMap::new();
        for event in events {
            let decoded =
                NotificationEvent::decode(&event.event_type, event.schema_version, &event.data)
                    .map_err(|e| ProjectionError::event(event, e))?;
            let id = notification_id(&decoded);
            if let NotificationEvent::Created { message, .. } = &decoded {
                rows.insert(id, fold::created(event, message));
                continue;
            }
            if let Entry::Vacant(slot) = rows.entry(id) {
                match load(tx, id).await? {
                    Some(row) => {
                        slot.insert(row);
                    }
                    None => continue,
                }
            }
            let Some(row) = rows.get_mut(&id) else {
                continue;
            };
            let messages = fold::change(row, event, decoded);
            if messages > 0 {
                *usage.entry((row.app_id, day_of(event))).or_default() += messages;
            }
        }
        for (id, row) in &rows {
            if row.new && row.deleted {
                continue;
            }
            save(tx, *id, row).await?;
        }
        for ((app_id, day), messages) in usage {
            on_tx!(tx, |c| {
                sqlx::query(
                    "INSERT INTO push_usage (app_id, day, messages) VALUES ($1, $2, $3) \
                     ON CONFLICT (app_id, day) DO UPDATE SET messages = push_usage.messages + excluded.messages",
                )
                .bind(app_id)
                .bind(day)
                .bind(messages)
                .execute(c)
                .await?;
            });
        }
        Ok(())
    }
}

pub fn notification_id(event: &NotificationEvent) -> Uuid {
    use NotificationEvent as E;
    match event {
        E::Created {
            notification_id, ..
        }
        | E::Updated {
            notification_id, ..
        }
        | E::Queued {
            notification_id, ..
        }
        | E::Unscheduled { notification_id }
        | E::Launched { notification_id }
        | E::AudienceResolved {
            notification_id, ..
        }
        | E::BatchSent {
            notification_id, ..
        }
        | E::Sent {
            notification_id, ..
        }
        | E::Errored {
            notification_id, ..
        }
        | E::Canceled { notification_id }
        | E::Deleted { notification_id } => *notification_id,
    }
}
