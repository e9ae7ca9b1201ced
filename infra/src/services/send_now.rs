//! A synchronous send: a campaign to a few named devices or users, launched
//! at once, answered when every device has its outcome (or the timeout
//! passes). It is a campaign like any other: recorded in the log, counted
//! against the quota, delivered by the same sender.

use std::time::Duration;

use domain::ids::AppId;
use domain::notification::message::Message;
use projections::notifications::query::NotificationRecord;
use projections::notifications::timeline;
use tokio::time::Instant;
use uuid::Uuid;

use super::notifications::Notifications;
use super::{Created, RequestContext};
use crate::runtime::commands::CommandError;
use crate::runtime::names;
use crate::store::StoreError;

/// One device's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub external_id: String,
    /// `delivered`, `failed`, `invalid_token`.
    pub outcome: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub notification: NotificationRecord,
    pub outcomes: Vec<Outcome>,
    /// Delivery is over (sent, or an error) and every outcome is here.
    pub complete: bool,
}

impl Notifications {
    pub async fn send_now(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        message: Message,
        timeout: Duration,
    ) -> Result<Created<Uuid, Sent>, CommandError> {
        let deadline = Instant::now() + timeout;
        let id = self.create(ctx, app_id, message, true).await?.id;
        if !ctx.wait_for_read_models {
            // The client waits neither for the read models nor, so, for
            // the outcomes they record: delivery goes on.
            return Ok(Created { id, record: None });
        }
        let mut moved = self.reads().watch(names::NOTIFICATIONS);
        let mut complete = false;
        let notification = loop {
            if let Some(rx) = moved.as_mut() {
                rx.borrow_and_update();
            }
            let notification = self.get(app_id, id).await?;
            if notification.status.finished() {
                // Every outcome was written before the event that ended the
                // delivery, which is committed: at or before the head.
                let head = self.reads().head().await?;
                let left = deadline.saturating_duration_since(Instant::now());
                complete = self
                    .reads()
                    .wait_for(names::DEVICE_NOTIFICATIONS, head, left)
                    .await;
                break notification;
            }
            let Some(rx) = moved.as_mut() else {
                break notification;
            };
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break notification;
            }
        };
        let outcomes = timeline::outcomes_of(self.db(), app_id.0, id)
            .await
            .map_err(StoreError::from)?
            .into_iter()
            .map(|(external_id, outcome, reason)| Outcome {
                external_id,
                outcome,
                reason,
            })
            .collect();
        Ok(Created {
            id,
            record: Some(Sent {
                notification,
                outcomes,
                complete,
            }),
        })
    }
}
