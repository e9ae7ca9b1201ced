//! The event log: one async trait, two adapters (SQLite, PostgreSQL).
//!
//! Guarantees (proven by the conformance suite in `tests/it/store`):
//! optimistic concurrency per stream, atomic multi-event appends, idempotent
//! event ids, dense gap-free positions that commit in order, and a per-app
//! SHA-256 hash chain (see `domain::envelope` for the canonical form).
//!
//! Both adapters assign positions in one place: a group-commit appender (see
//! [`appender`]) that takes the database's write lock for each batch (the
//! SQLite write lock, or a PostgreSQL transaction-level advisory lock), reads
//! the head, and writes the batch in one transaction. Because positions are
//! assigned under a lock held until commit, commit order is position order and
//! no reader can see N+1 before N, whatever the number of processes.

mod appender;
mod batch;
pub mod chain;
mod error;
pub(crate) mod filter;
mod keys;
mod loader;
mod pg_copy;
mod postgres;
mod recent;
pub(crate) mod rows;
pub mod scan;
mod sql;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ids::AppId;
use domain::{Metadata, RecordedEvent};
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

pub use error::{StoreError, is_transient};
pub use filter::{EventFilter, TypePattern};
pub use sql::SqlEventStore;

/// An event to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Chosen by the writer (UUID v7); re-sending the same ids is a no-op.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

/// What the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    /// The stream has no events yet.
    NoStream,
    /// The stream's last event has this version.
    Exactly(i64),
}

impl ExpectedVersion {
    /// The expectation for a stream loaded at `version` (0 = empty).
    pub fn from_loaded(version: i64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exactly(version)
        }
    }

    fn admits(self, current: i64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::Exactly(v) => current == v,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// Stored with every event of the append; `metadata.app_id` names the
    /// app (and so the hash chain) the events belong to.
    pub metadata: Metadata,
    /// A data key created for this append's sealed values (`privacy`):
    /// stored in the append's own transaction, so the key and the first
    /// values sealed under it commit together. If the subject already has
    /// another key of that generation the append is refused with
    /// [`StoreError::KeyTaken`] and nothing is written.
    pub new_key: Option<NewSubjectKey>,
}

/// A subject's data key, sealed with Herald's secret key, to be stored with
/// an append (see [`AppendRequest::new_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubjectKey {
    pub subject: String,
    pub generation: i64,
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

impl AppendRequest {
    pub fn app_id(&self) -> AppId {
        self.metadata.app_id
    }
}

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub first_position: i64,
    pub last_position: i64,
    /// The stream's version after the append.
    pub stream_version: i64,
    pub recorded_at: DateTime<Utc>,
    /// Each event's hash (lower-case hex), in order.
    pub hashes: Vec<String>,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically, or returns `Conflict` and writes nothing.
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError>;

    /// Events of one stream with `stream_version >= from_version`, in order.
    async fn read_stream(
        &self,
        app_id: AppId,
        stream: &str,
        from_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// All events with `position > after`, in order, at most `limit`.
    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// [`read_all`](Self::read_all) for followers of the log: served from
    /// memory when this process appended the events (shared, not copied,
    /// by every follower), from the database otherwise.
    async fn read_recent(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<std::sync::Arc<RecordedEvent>>, StoreError> {
        Ok(self
            .read_all(after, limit)
            .await?
            .into_iter()
            .map(std::sync::Arc::new)
            .collect())
    }

    /// One app's events with `position > after`, in order, at most `limit`.
    async fn read_app(
        &self,
        app_id: AppId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// One app's events matching `filter`, in position order, at most `limit`.
    async fn read_filtered(
        &self,
        app_id: AppId,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Opens the personal values of events read straight from the log's
    /// table (as stored, sealed) the way every read of this store does. The
    /// bare SQL store reads them as stored.
    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let _ = events;
        Ok(())
    }

    /// Reads `range` of the log as stored, in pages, read ahead: for
    /// walking much of the log (rebuilds, verification, export).
    fn scan(&self, range: scan::Range) -> scan::Scan;

    /// The last committed position (0 for an empty log).
    async fn head(&self) -> Result<i64, StoreError>;

    /// A receiver that changes whenever new events may have been committed,
    /// by this process or (within a poll interval) by another one.
    fn subscribe(&self) -> watch::Receiver<i64>;

    /// Reads a whole stream.
    async fn load_stream(
        &self,
        app_id: AppId,
        stream: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        const PAGE: usize = 1000;
        let mut events = Vec::new();
        loop {
            let from = events
                .last()
                .map_or(1, |e: &RecordedEvent| e.stream_version + 1);
            let page = self.read_stream(app_id, stream, from, PAGE).await?;
            let done = page.len() < PAGE;
            events.extend(page);
            if done {
                return Ok(events);
            }
        }
    }
}
