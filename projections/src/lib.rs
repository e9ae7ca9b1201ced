//! Herald's read models. A projection is a named, versioned read model that
//! applies events to its own tables; the runner in `infra` feeds it batches
//! and commits its checkpoint in the same transaction as its writes.

pub mod apps;
pub mod change_queues;
pub mod db;
pub mod devices;
pub mod notifications;
mod time;
pub mod users;
pub mod webhooks;

use async_trait::async_trait;
use domain::RecordedEvent;

use crate::db::Tx;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} cannot be applied: {reason}")]
    Event { position: i64, reason: String },
}

impl ProjectionError {
    pub fn event(event: &RecordedEvent, reason: impl std::fmt::Display) -> Self {
        Self::Event {
            position: event.position,
            reason: reason.to_string(),
        }
    }
}

#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name; the checkpoint is stored under it.
    fn name(&self) -> &'static str;

    /// Bumped whenever `apply` or the tables change meaning; a stored
    /// checkpoint of another version means the model must be rebuilt.
    fn version(&self) -> i32;

    /// The tables this projection owns (all its state).
    fn tables(&self) -> &'static [&'static str];

    /// Whether the model can be rebuilt from the log alone. `false` for
    /// tables that also hold state written outside the projection (drained
    /// change queues): rebuilding them would redo what that state records.
    fn rebuildable(&self) -> bool {
        true
    }

    /// Whether this projection reads events of this type at all.
    fn handles(&self, event_type: &str) -> bool;

    /// Applies a batch of events in log order within the runner's transaction.
    /// Must be deterministic: the same events give the same rows.
    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError>;
}
