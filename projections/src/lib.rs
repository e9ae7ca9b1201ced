//! Herald's projections of the log. A projection is named and versioned and
//! applies events to its own tables; the runtime in `infra` runs each one on
//! its own, committing its checkpoint in the same transaction as its writes.
//!
//! Two kinds, told apart by type:
//! - a [`ReadModel`] holds derived data only: it can be dropped and rebuilt
//!   from the log to the same rows, and `herald projections rebuild` does;
//! - a [`ReactorFeed`] turns events into work for a reactor (webhook
//!   messages, push jobs, change-queue items) and shares its tables with
//!   that reactor, which records there what it handed out, attempted and
//!   sent. That is delivery state the log cannot give back: a feed is never
//!   dropped or rebuilt (rebuilding would deliver everything again).

pub mod apps;
pub mod bulk;
pub mod change_queues;
pub mod db;
pub mod devices;
pub mod flags;
mod forgotten;
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
    /// Something the projection needs besides its tables (a subject's
    /// data key) cannot be read now: try again later.
    #[error("{0}")]
    Unavailable(String),
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

    /// Whether this projection reads events of this type at all.
    fn handles(&self, event_type: &str) -> bool;

    /// Applies a batch of events in log order within the runner's transaction.
    /// Must be deterministic: the same events give the same rows.
    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError>;
}

/// Opens the sealed personal values of an event a projection reads from
/// the log's table itself (the events it is given are open already).
#[async_trait]
pub trait Unseal: Send + Sync + 'static {
    async fn open(
        &self,
        app_id: domain::ids::AppId,
        stream: &str,
        event_type: &str,
        data: &mut serde_json::Value,
    ) -> Result<(), ProjectionError>;
}

/// A projection of derived data only: dropped and rebuilt from the log, it
/// gives the same rows.
pub trait ReadModel: Projection {
    /// How to rebuild it stream by stream, if its rows are a fold of one
    /// stream at a time (see [`bulk`]); otherwise a rebuild applies its
    /// events in log order.
    fn stream_fold(&self) -> Option<std::sync::Arc<dyn bulk::StreamFold>> {
        None
    }
}

/// A projection whose tables a reactor shares and writes delivery state to:
/// never dropped, reset or rebuilt.
pub trait ReactorFeed: Projection {}
