//! The events this process appended last, kept in memory so that the
//! projections following the log read them without a database round trip.
//!
//! The cache holds one contiguous run of positions. The appender pushes each
//! committed batch *before* it moves the head, so a follower woken by the
//! head finds the events here. A batch that does not continue the run (on
//! PostgreSQL another node appended in between) starts a new run; whoever
//! needs the events in the gap reads them from the database.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use domain::RecordedEvent;

/// Events kept at most.
const CAPACITY: usize = 16 * 1024;

#[derive(Default)]
pub(crate) struct Recent {
    run: Mutex<VecDeque<Arc<RecordedEvent>>>,
}

impl Recent {
    pub fn push(&self, events: Vec<RecordedEvent>) {
        let Some(first) = events.first().map(|e| e.position) else {
            return;
        };
        let Ok(mut run) = self.run.lock() else {
            return;
        };
        if run.back().is_some_and(|last| last.position + 1 != first) {
            run.clear();
        }
        run.extend(events.into_iter().map(Arc::new));
        while run.len() > CAPACITY {
            run.pop_front();
        }
    }

    /// The cached events after `position`, at most `limit`, if the cache
    /// holds the one right after it; `None` sends the reader to the database
    /// (the cache cannot know of other processes' events past its end).
    pub fn after(&self, position: i64, limit: usize) -> Option<Vec<Arc<RecordedEvent>>> {
        let run = self.run.lock().ok()?;
        let first = run.front()?.position;
        let last = run.back()?.position;
        if position + 1 < first || position >= last {
            return None;
        }
        let start = usize::try_from(position + 1 - first).ok()?;
        Some(run.iter().skip(start).take(limit).cloned().collect())
    }

    /// The first cached position, if any.
    pub fn first(&self) -> Option<i64> {
        self.run.lock().ok()?.front().map(|e| e.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(positions: std::ops::RangeInclusive<i64>) -> Vec<RecordedEvent> {
        positions
            .map(|position| RecordedEvent {
                position,
                event_id: uuid::Uuid::now_v7(),
                app_id: domain::ids::AppId(uuid::Uuid::nil()),
                stream: "s".into(),
                stream_version: position,
                event_type: "test.happened".into(),
                schema_version: 1,
                data: serde_json::json!({}),
                metadata: serde_json::json!({}),
                recorded_at: chrono::Utc::now(),
                hash: String::new(),
            })
            .collect()
    }

    fn positions(found: Option<Vec<Arc<RecordedEvent>>>) -> Option<Vec<i64>> {
        found.map(|events| events.iter().map(|e| e.position).collect())
    }

    #[test]
    fn serves_what_follows_a_position_it_holds() {
        let recent = Recent::default();
        assert_eq!(positions(recent.after(0, 10)), None);
        recent.push(events(1..=5));
        assert_eq!(positions(recent.after(0, 10)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(positions(recent.after(3, 1)), Some(vec![4]));
        // Caught up: only the database knows whether more exist.
        assert_eq!(positions(recent.after(5, 10)), None);
        // A gap (another node's batch): a new run.
        recent.push(events(9..=10));
        assert_eq!(recent.first(), Some(9));
        assert_eq!(positions(recent.after(6, 10)), None);
        assert_eq!(positions(recent.after(8, 10)), Some(vec![9, 10]));
    }
}
