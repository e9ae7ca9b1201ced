//! Rebuilding a read model in bulk: each of its streams folded whole, in
//! one pass over the log in stream order, its rows handed to a writer as
//! they come (a prepared statement on SQLite, `COPY` on PostgreSQL).
//!
//! A model whose rows are a pure fold of one stream at a time (a device's
//! rows of its `device:` stream, a user's of `user:`) offers a
//! [`StreamFold`]. A rebuild then needs neither to look rows up nor to
//! update them: every stream is read once, folded once, written once. The
//! rows must be exactly those the model's `apply` gives, event by event —
//! the rebuild tests compare the two row for row.

use domain::{DomainEvent, StoredEvent};
use uuid::Uuid;

use crate::ProjectionError;

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Uuid(Uuid),
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Cell::Null, Cell::Text)
    }
}

/// A table a fold writes, and the columns of its rows, in order.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// Where rows go: `table` is an index into [`StreamFold::tables`], the
/// cells are in that table's column order.
pub trait Rows {
    fn row(&mut self, table: usize, cells: &[Cell<'_>]);
}

/// A read model rebuilt stream by stream.
pub trait StreamFold: Send + Sync {
    /// The streams it folds: those whose name starts with this.
    fn prefix(&self) -> &'static str;

    /// The tables it writes (all of the model's tables).
    fn tables(&self) -> &'static [Table];

    /// A fold for one rebuild (it may add up figures across streams).
    fn start(&self) -> Box<dyn Folding>;
}

/// One rebuild's fold.
pub trait Folding: Send {
    /// Folds one stream's events — those of the model's types, in version
    /// order, their sealed values open — and writes the rows it ends with.
    fn stream(
        &mut self,
        events: &[StoredEvent],
        rows: &mut dyn Rows,
    ) -> Result<(), ProjectionError>;

    /// Writes what adds up across streams, once every stream is folded.
    fn finish(&mut self, rows: &mut dyn Rows) {
        let _ = rows;
    }
}

/// The event, decoded from its stored text.
pub fn decode<E: DomainEvent>(event: &StoredEvent) -> Result<E, ProjectionError> {
    E::decode_text(&event.event_type, event.schema_version, &event.data).map_err(|e| {
        ProjectionError::Event {
            position: event.position,
            reason: e.to_string(),
        }
    })
}
