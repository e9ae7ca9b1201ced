//! A subject forgotten, in the changes still queued about it.

use domain::RecordedEvent;
use domain::personal;

use super::subject;
use crate::db::Tx;
use crate::{ProjectionError, on_tx};

/// The subject of `event` (a `subject.forgotten`) was forgotten: every
/// change about it still queued shows the placeholder for its personal
/// values; of a device whose former owner alone was forgotten, every
/// change written while it was theirs (see `crate::forgotten`).
pub(super) async fn forget(tx: &mut Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
    let reach = crate::forgotten::reach(tx, event).await?;
    let (kind, id) = subject(&event.stream);
    let queued: Vec<(String, i64, String, String)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT queue, position, event_type, data FROM changes \
             WHERE app_id = $1 AND subject_kind = $2 AND subject_id = $3",
        )
        .bind(event.app_id.0)
        .bind(kind)
        .bind(id)
        .fetch_all(&mut *c)
        .await?
    });
    for (queue, position, event_type, data) in queued {
        if reach.as_ref().is_some_and(|r| !r.contains(&position)) {
            continue;
        }
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        personal::forget_in(&event_type, &mut value);
        let forgotten = value.to_string();
        if forgotten == data {
            continue;
        }
        on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE changes SET data = $4 WHERE app_id = $1 AND queue = $2 AND position = $3",
            )
            .bind(event.app_id.0)
            .bind(&queue)
            .bind(position)
            .bind(forgotten)
            .execute(&mut *c)
            .await?;
        });
    }
    Ok(())
}
