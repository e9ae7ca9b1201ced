//! How notification events change a notification: the read model and
//! reads "as of" an instant use this one fold.

use domain::RecordedEvent;
use domain::event::DomainEvent;
use domain::notification::message::Message;
use domain::notification::{NotificationEvent, PerPlatform, Status};
use uuid::Uuid;

use super::query::NotificationRecord;
use crate::time::{from_micros, micros};

/// A notification being changed by a batch of events.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub app_id: Uuid,
    pub status: Status,
    /// The message, as JSON.
    pub message: String,
    pub scheduled_at: Option<i64>,
    pub audience: Option<serde_json::Value>,
    pub sent: PerPlatform,
    pub failed: PerPlatform,
    pub error_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    /// Not in the table yet.
    pub new: bool,
    pub deleted: bool,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The notification a `notification.created` event starts.
pub(crate) fn created(event: &RecordedEvent, message: &Message) -> Row {
    let at = micros(event.recorded_at);
    Row {
        app_id: event.app_id.0,
        status: Status::Draft,
        message: json(message),
        scheduled_at: message.scheduled_at.map(|t| t.timestamp_micros()),
        audience: None,
        sent: PerPlatform::default(),
        failed: PerPlatform::default(),
        error_reason: None,
        created_at: at,
        updated_at: at,
        version: event.stream_version,
        new: true,
        deleted: false,
    }
}

/// Applies any other event; returns the push messages it records as sent
/// or failed (for the app's daily usage).
pub(crate) fn change(row: &mut Row, event: &RecordedEvent, decoded: NotificationEvent) -> i64 {
    row.updated_at = micros(event.recorded_at);
    row.version = event.stream_version;
    match decoded {
        NotificationEvent::Created { .. } => {}
        NotificationEvent::Updated { message, .. } => {
            row.scheduled_at = message.scheduled_at.map(|t| t.timestamp_micros());
            row.message = json(&message);
        }
        NotificationEvent::Queued { scheduled_at, .. } => {
            row.status = Status::Queued;
            row.scheduled_at = Some(scheduled_at.timestamp_micros());
        }
        NotificationEvent::Unscheduled { .. } => row.status = Status::Draft,
        NotificationEvent::Launched { .. } => row.status = Status::Launched,
        NotificationEvent::AudienceResolved {
            total, by_platform, ..
        } => {
            row.status = Status::Sending;
            row.audience = Some(serde_json::json!({
                "total": total,
                "android": by_platform.android,
                "ios": by_platform.ios,
                "web": by_platform.web,
            }));
        }
        NotificationEvent::BatchSent { outcome, .. } => {
            row.sent.add(&outcome.sent);
            row.failed.add(&outcome.failures);
            let messages = outcome.sent.total() + outcome.failures.total();
            return i64::try_from(messages).unwrap_or(i64::MAX);
        }
        NotificationEvent::Sent { sent, failed, .. } => {
            row.status = Status::Sent;
            row.sent = sent;
            row.failed = failed;
        }
        NotificationEvent::Errored {
            reason,
            sent,
            failed,
            ..
        } => {
            row.status = Status::Error;
            row.error_reason = Some(reason);
            row.sent = sent;
            row.failed = failed;
        }
        NotificationEvent::Canceled { .. } => row.status = Status::Canceled,
        NotificationEvent::Deleted { .. } => row.deleted = true,
    }
    0
}

/// The notification after `history` (its stream from the first event, up
/// to an instant): `None` if it did not exist or was deleted.
pub fn as_of(history: &[RecordedEvent]) -> Result<Option<NotificationRecord>, String> {
    let mut row: Option<(Uuid, Row)> = None;
    for event in history {
        let decoded =
            NotificationEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| e.to_string())?;
        let id = super::notification_id(&decoded);
        match (&decoded, row.as_mut()) {
            (NotificationEvent::Created { message, .. }, _) => {
                row = Some((id, created(event, message)));
            }
            (_, Some((_, r))) => {
                change(r, event, decoded);
                if r.deleted {
                    row = None;
                }
            }
            (_, None) => {}
        }
    }
    let Some((id, r)) = row else {
        return Ok(None);
    };
    Ok(Some(NotificationRecord {
        notification_id: id,
        app_id: r.app_id,
        status: r.status,
        message: serde_json::from_str(&r.message).map_err(|e| e.to_string())?,
        audience: r.audience,
        sent: r.sent,
        failed: r.failed,
        error_reason: r.error_reason,
        created_at: from_micros(r.created_at),
        updated_at: from_micros(r.updated_at),
    }))
}
