//! The shape every aggregate has: a pure `decide` and a pure `evolve`.

use crate::error::DomainError;
use crate::event::DomainEvent;

pub trait Aggregate: Default + Send + Sync + 'static {
    type Command: Send;
    type Event: DomainEvent + Send + Sync;

    /// Decides which events a command produces, given the current state.
    /// An empty list means the command changes nothing.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// Applies one event to the state. Never fails, never does I/O.
    fn evolve(&mut self, event: &Self::Event);

    /// Folds a history into a state.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}
