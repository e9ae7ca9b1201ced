//! What a `subject.forgotten` reaches, for the feeds that keep copies of
//! a subject's events (webhook messages, queued changes).

use std::collections::HashSet;

use domain::RecordedEvent;
use domain::personal::{self, Owners};
use serde_json::Value;

use crate::db::Tx;
use crate::{ProjectionError, on_tx};

/// The positions of the events of `forgotten`'s stream, before it, whose
/// personal values it forgets: `None` for every one (the whole subject was
/// forgotten). A device's former owner forgotten (the device had passed to
/// someone else since it was theirs) reaches only the events written while
/// it was theirs, followed from the log as the forget destroyed their keys
/// (`personal::Owners`): the others are someone else's, and stay as they
/// are.
pub async fn reach(
    tx: &mut Tx,
    forgotten: &RecordedEvent,
) -> Result<Option<HashSet<i64>>, ProjectionError> {
    let Some(user) = personal::former_owner(&forgotten.data) else {
        return Ok(None);
    };
    let history: Vec<(i64, String, String)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT position, event_type, data FROM events \
             WHERE app_id = $1 AND stream = $2 AND position < $3 ORDER BY position",
        )
        .bind(forgotten.app_id.0)
        .bind(&forgotten.stream)
        .bind(forgotten.position)
        .fetch_all(c)
        .await?
    });
    let mut owners = Owners::default();
    let mut theirs = HashSet::new();
    for (position, event_type, data) in history {
        // Only an owner's change needs its body (its `user_id`, in clear).
        let data = if personal::passes_on(&event_type) {
            serde_json::from_str(&data).map_err(|e| ProjectionError::event(forgotten, e))?
        } else {
            Value::Null
        };
        if owners.follow(&event_type, &data) == Some(user) {
            theirs.insert(position);
        }
    }
    Ok(Some(theirs))
}
