//! Each device's notifications and their outcomes, from the recorded
//! batches (`notification.batch_sent` names every device of the batch).

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::event::DomainEvent;
use domain::notification::NotificationEvent;
use uuid::Uuid;

use crate::db::{Tx, insert_chunks, values_list};
use crate::time::micros;
use crate::{Projection, ProjectionError, on_tx};

pub const NAME: &str = "device_notifications";

pub struct DeviceNotificationsProjection;

struct Row<'a> {
    app_id: Uuid,
    external_id: &'a str,
    position: i64,
    notification_id: Uuid,
    outcome: &'static str,
    reason: Option<&'a str>,
    at: i64,
}

impl crate::ReadModel for DeviceNotificationsProjection {}

#[async_trait]
impl Projection for DeviceNotificationsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["device_notifications"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "notification.batch_sent"
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let NotificationEvent::BatchSent {
                notification_id,
                outcome,
            } = NotificationEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?
            else {
                continue;
            };
            decoded.push((event, notification_id, outcome));
        }
        let mut rows = Vec::new();
        for (event, notification_id, outcome) in &decoded {
            for (kind, items) in [
                (
                    "delivered",
                    outcome
                        .delivered
                        .iter()
                        .map(|d| (d.as_str(), None))
                        .collect::<Vec<_>>(),
                ),
                (
                    "failed",
                    outcome
                        .failed
                        .iter()
                        .map(|m| (m.external_id.as_str(), Some(m.reason.as_str())))
                        .collect(),
                ),
                (
                    "invalid_token",
                    outcome
                        .invalid
                        .iter()
                        .map(|m| (m.external_id.as_str(), Some(m.reason.as_str())))
                        .collect(),
                ),
            ] {
                for (external_id, reason) in items {
                    rows.push(Row {
                        app_id: event.app_id.0,
                        external_id,
                        position: event.position,
                        notification_id: *notification_id,
                        outcome: kind,
                        reason,
                        at: micros(event.recorded_at),
                    });
                }
            }
        }
        insert(tx, &rows).await
    }
}

async fn insert(tx: &mut Tx, rows: &[Row<'_>]) -> Result<(), ProjectionError> {
    const COLUMNS: usize = 7;
    let size = |r: &Row| 120 + r.external_id.len() + r.reason.map_or(0, str::len);
    let backend = tx.backend();
    for chunk in insert_chunks(backend, rows, COLUMNS, size) {
        let sql = format!(
            "INSERT INTO device_notifications (app_id, external_id, position, notification_id, outcome, \
             reason, at) VALUES {} ON CONFLICT (app_id, external_id, position) DO NOTHING",
            values_list(backend, chunk.len(), COLUMNS, "")
        );
        on_tx!(tx, |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for r in chunk {
                query = query
                    .bind(r.app_id)
                    .bind(r.external_id)
                    .bind(r.position)
                    .bind(r.notification_id)
                    .bind(r.outcome)
                    .bind(r.reason)
                    .bind(r.at);
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}
