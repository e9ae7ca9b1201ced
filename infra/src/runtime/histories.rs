//! The histories of the streams this node's commands used lately, kept in
//! memory so that a command on a stream it touched before decides without
//! reading the log first.
//!
//! A kept history may be stale: another node, or another writer of this
//! one, may have appended to the stream since. That is safe because every
//! command appends with the version its history ends at, so a stale
//! history makes the append conflict; the command then drops it, reads the
//! log and decides again. Only two outcomes escape that check, and the
//! command bus reads the log for both: a command that decides to change
//! nothing (there is no append to check), and an append whose outcome is
//! unknown (the history is dropped).
//!
//! Histories hold personal values opened. Forgetting a subject appends
//! `subject.forgotten` to its stream through the command bus, which drops
//! that stream's history here; another node's stale copy is never served,
//! since the version moved, and leaves memory when it is next used or
//! pushed out.

use std::sync::{Arc, Mutex};

use domain::RecordedEvent;
use domain::ids::AppId;

use crate::kept::Kept;

/// Events kept at most, all histories together (those used least lately
/// go first): some tens of megabytes.
const EVENTS: usize = 131_072;

/// Histories longer than this are not kept: they would crowd the memory.
pub(crate) const LONGEST: usize = 64;

/// One stream's events, in order, as a read of the log returns them.
pub type History = Arc<Vec<RecordedEvent>>;

pub(crate) struct Histories {
    kept: Mutex<Kept<(AppId, String), History>>,
}

impl Histories {
    pub fn new() -> Self {
        Self {
            kept: Mutex::new(Kept::weighed(EVENTS, |history| history.len())),
        }
    }

    pub fn get(&self, app_id: AppId, stream: &str) -> Option<History> {
        self.lock().get(&(app_id, stream.to_owned()))
    }

    /// Keeps `history` unless it is too long or a newer one is kept.
    pub fn put(&self, app_id: AppId, stream: &str, history: History) {
        let key = (app_id, stream.to_owned());
        let mut kept = self.lock();
        if history.len() > LONGEST {
            kept.remove(&key);
            return;
        }
        let version = |h: &History| h.last().map_or(0, |e| e.stream_version);
        if kept
            .get(&key)
            .is_some_and(|k| version(&k) > version(&history))
        {
            return;
        }
        kept.put(key, history);
    }

    pub fn forget(&self, app_id: AppId, stream: &str) {
        self.lock().remove(&(app_id, stream.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<(AppId, String), History>> {
        // A panic while holding the lock leaves a consistent map.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(app_id: AppId, versions: i64) -> History {
        Arc::new(
            (1..=versions)
                .map(|v| RecordedEvent {
                    position: v,
                    event_id: uuid::Uuid::now_v7(),
                    app_id,
                    stream: "s".into(),
                    stream_version: v,
                    event_type: "t".into(),
                    schema_version: 1,
                    data: serde_json::Value::Null,
                    metadata: serde_json::Value::Null,
                    recorded_at: chrono::DateTime::UNIX_EPOCH,
                    hash: String::new(),
                })
                .collect(),
        )
    }

    fn version(histories: &Histories, app_id: AppId) -> Option<i64> {
        histories
            .get(app_id, "s")
            .map(|h| h.last().map_or(0, |e| e.stream_version))
    }

    #[test]
    fn an_older_history_never_replaces_a_newer_one() {
        let histories = Histories::new();
        let app = AppId::generate();
        histories.put(app, "s", history(app, 3));
        // A slower writer that appended version 2 answers after it.
        histories.put(app, "s", history(app, 2));
        assert_eq!(version(&histories, app), Some(3));
        histories.put(app, "s", history(app, 4));
        assert_eq!(version(&histories, app), Some(4));
        // Another app's stream of the same name is another stream.
        assert_eq!(version(&histories, AppId::generate()), None);
    }

    #[test]
    fn a_history_too_long_to_keep_drops_the_kept_one() {
        let histories = Histories::new();
        let app = AppId::generate();
        histories.put(app, "s", history(app, 2));
        histories.put(app, "s", history(app, LONGEST as i64 + 1));
        assert_eq!(version(&histories, app), None);
        histories.put(app, "s", history(app, 1));
        histories.forget(app, "s");
        assert_eq!(version(&histories, app), None);
    }
}
