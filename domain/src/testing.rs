//! A given / when / then harness for aggregates:
//! `given([registered]).when(set_property).then([property_changed])`.

use std::fmt::Debug;

use crate::aggregate::Aggregate;
use crate::error::DomainError;

pub struct Given<A: Aggregate> {
    state: A,
}

pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let history: Vec<A::Event> = history.into_iter().collect();
    Given {
        state: A::replay(history.iter()),
    }
}

pub struct When<A: Aggregate> {
    outcome: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> When<A> {
        When {
            outcome: self.state.decide(command),
        }
    }
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq + Debug,
{
    /// Asserts the command produced exactly these events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => assert_eq!(events, expected),
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// Asserts the command was refused with this error.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.outcome {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    /// Asserts the command was refused, and returns the error for closer looks.
    #[track_caller]
    pub fn then_refused(self) -> DomainError {
        match self.outcome {
            Ok(events) => panic!("expected a refusal, got events {events:?}"),
            Err(e) => e,
        }
    }
}
