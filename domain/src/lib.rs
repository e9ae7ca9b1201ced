//! Herald's pure model.
//!
//! Everything here is synchronous and free of I/O: identifiers and value
//! objects that cannot hold invalid values, the events each aggregate writes
//! to the log, and the aggregates themselves (`decide` / `evolve`). Anything
//! that needs the outside world (randomness, the clock, a database) happens
//! before a command is built and is carried in it.

pub mod aggregate;
pub mod app;
pub mod change_queue;
pub mod conditions;
pub mod device;
pub mod envelope;
pub mod error;
pub mod event;
pub mod flag;
pub mod ids;
pub mod notification;
pub mod personal;
pub mod platform;
pub mod properties;
pub mod role;
pub mod storable;
pub mod stored;
pub mod text;
pub mod user;
pub mod webhook;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod arbitrary;

pub use aggregate::Aggregate;
pub use envelope::{Metadata, RecordedEvent};
pub use error::{DomainError, FieldError};
pub use event::DomainEvent;
pub use stored::StoredEvent;
