//! What the sender still has to do: launch a queued notification when its
//! time comes, send a launched one. Fed by the notification events in the
//! checkpoint's transaction, so a launch is never lost; not rebuildable (it
//! is delivery state: rebuilding would send finished campaigns again).

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::event::DomainEvent;
use domain::notification::NotificationEvent;
use uuid::Uuid;

use super::notification_id;
use crate::db::Tx;
use crate::{Projection, ProjectionError, on_tx};

pub const NAME: &str = "notification_jobs";
/// Launch when `due_at` comes.
pub const LAUNCH: &str = "launch";
/// Resolve the audience (once) and send.
pub const SEND: &str = "send";

pub struct NotificationJobsProjection;

impl crate::ReactorFeed for NotificationJobsProjection {}

#[async_trait]
impl Projection for NotificationJobsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notification_jobs", "notification_audience"]
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "notification.queued"
                | "notification.unscheduled"
                | "notification.launched"
                | "notification.sent"
                | "notification.errored"
                | "notification.canceled"
                | "notification.deleted"
        )
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        for event in events {
            let decoded =
                NotificationEvent::decode(&event.event_type, event.schema_version, &event.data)
                    .map_err(|e| ProjectionError::event(event, e))?;
            let id = notification_id(&decoded);
            match decoded {
                NotificationEvent::Queued { scheduled_at, .. } => {
                    upsert(
                        tx,
                        id,
                        event.app_id.0,
                        LAUNCH,
                        scheduled_at.timestamp_micros(),
                    )
                    .await?;
                }
                NotificationEvent::Launched { .. } => {
                    upsert(tx, id, event.app_id.0, SEND, 0).await?;
                }
                _ => finish(tx, id).await?,
            }
        }
        Ok(())
    }
}

async fn upsert(
    tx: &mut Tx,
    id: Uuid,
    app_id: Uuid,
    stage: &str,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO notification_jobs (notification_id, app_id, stage, due_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (notification_id) DO UPDATE SET stage = excluded.stage, due_at = excluded.due_at, \
             lease_until = NULL, lease_token = NULL",
        )
        .bind(id)
        .bind(app_id)
        .bind(stage)
        .bind(due_at)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Nothing more to do: the job and the resolved audience go.
async fn finish(tx: &mut Tx, id: Uuid) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM notification_jobs WHERE notification_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM notification_audience WHERE notification_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}
