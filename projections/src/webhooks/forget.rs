//! A subject forgotten, in the messages kept about it.

use domain::RecordedEvent;
use domain::change_queue::EventTypes;
use domain::personal;
use uuid::Uuid;

use super::{Target, WebhooksProjection, callbacks, context, render};
use crate::db::Tx;
use crate::{ProjectionError, on_tx};

impl WebhooksProjection {
    /// The subject of `event` (a `subject.forgotten`) was forgotten: every
    /// message about it, sent or not, is rendered again from its event, so
    /// that a re-send shows the placeholder for its personal values. (The
    /// subject's keys are destroyed before the event is written.) Of a
    /// device whose former owner alone was forgotten, only the messages
    /// about what was written while it was theirs (see `crate::forgotten`):
    /// the others are someone else's. A forgotten user's callback URLs are
    /// withdrawn: the messages are rendered again without them.
    pub(super) async fn forget(
        &self,
        tx: &mut Tx,
        event: &RecordedEvent,
        targets: &[Target],
    ) -> Result<(), ProjectionError> {
        if let ("user", user_id) = context::subject(&event.stream) {
            callbacks::forget_user(tx, event.app_id.0, user_id).await?;
        }
        let reach = crate::forgotten::reach(tx, event).await?;
        type Found = (Uuid, i64, Uuid, i64, String, i32, String, i64);
        let found: Vec<Found> = on_tx!(tx, |c| {
            sqlx::query_as(
                "SELECT m.endpoint_id, e.position, e.event_id, e.stream_version, e.event_type, \
                   e.schema_version, e.data, e.recorded_at \
                 FROM events e JOIN webhook_messages m ON m.app_id = e.app_id AND m.message_id = e.event_id \
                 WHERE e.app_id = $1 AND e.stream = $2 AND e.position < $3",
            )
            .bind(event.app_id.0)
            .bind(&event.stream)
            .bind(event.position)
            .fetch_all(&mut *c)
            .await?
        });
        for (endpoint, position, event_id, stream_version, event_type, schema_version, data, at) in
            found
        {
            if reach.as_ref().is_some_and(|r| !r.contains(&position)) {
                continue;
            }
            let mut data: serde_json::Value =
                serde_json::from_str(&data).map_err(|e| ProjectionError::event(event, e))?;
            self.unseal
                .open(event.app_id, &event.stream, &event_type, &mut data)
                .await?;
            personal::forget_in(&event_type, &mut data);
            let original = RecordedEvent {
                position,
                event_id,
                app_id: event.app_id,
                stream: event.stream.clone(),
                stream_version,
                event_type,
                schema_version,
                data,
                metadata: serde_json::Value::Null,
                recorded_at: chrono::DateTime::from_timestamp_micros(at).unwrap_or_default(),
                hash: String::new(),
            };
            let fallback = Target {
                id: endpoint,
                enabled: true,
                types: EventTypes::default(),
                template: None,
                url: None,
                has_body: true,
                uses_callback: false,
            };
            let target = targets
                .iter()
                .find(|t| t.id == endpoint)
                .unwrap_or(&fallback);
            let context = if target.needs_context() {
                Some(context::load(tx, self.unseal.as_ref(), &original).await?)
            } else {
                None
            };
            let (body, url) = render(target, &original, context.as_ref(), None);
            on_tx!(tx, |c| {
                sqlx::query(
                    "UPDATE webhook_messages SET body = $3, url = COALESCE($4, url) \
                     WHERE endpoint_id = $1 AND message_id = $2",
                )
                .bind(endpoint)
                .bind(event_id)
                .bind(body)
                .bind(url)
                .execute(&mut *c)
                .await?;
            });
        }
        Ok(())
    }
}
