//! Change queues: named, drain-on-fetch feeds of an app's integration
//! events (device, user and notification events). Every app has `default`,
//! which takes all of them; more queues choose their event types and may
//! start at an earlier log position (backfill).

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::error::{DomainError, FieldError};
use crate::event::DomainEvent;

pub const DEFAULT: &str = "default";
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_EVENT_TYPES: usize = 50;

/// The event families that reach change queues.
pub const INTEGRATION_PREFIXES: [&str; 5] = [
    "device.",
    "user.",
    "notification.",
    "subject.",
    "feature_flag.",
];

pub fn stream(name: &QueueName) -> String {
    format!("change_queue:{}", name.0)
}

/// 1-64 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.chars().count() <= MAX_NAME_CHARS
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                field,
                format!("must be 1-{MAX_NAME_CHARS} characters of a-z, 0-9, _ and -"),
            ))
        }
    }

    pub fn default_queue() -> Self {
        Self(DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which event types a queue takes: exact names, or `prefix.*`. Empty:
/// every integration event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTypes(Vec<String>);

impl EventTypes {
    pub fn parse(raw: &[String]) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        if raw.len() > MAX_EVENT_TYPES {
            errors.push(FieldError::new(
                "event_types",
                format!("at most {MAX_EVENT_TYPES} entries"),
            ));
        }
        for (i, t) in raw.iter().enumerate() {
            let base = t.strip_suffix('*').unwrap_or(t);
            let integration = is_integration(base);
            let well_formed = !base.is_empty()
                && base.len() <= 128
                && base
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                && (!t.ends_with('*') || base.ends_with('.'));
            if !well_formed || !integration {
                errors.push(FieldError::new(
                    format!("event_types[{i}]"),
                    "must be a device, user or notification event type, or a prefix such as `device.*`",
                ));
            }
        }
        if errors.is_empty() {
            let mut types: Vec<String> = raw.to_vec();
            types.sort();
            types.dedup();
            Ok(Self(types))
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether an event of this type enters the queue.
    pub fn admits(&self, event_type: &str) -> bool {
        is_integration(event_type)
            && (self.0.is_empty()
                || self.0.iter().any(|t| match t.strip_suffix('*') {
                    Some(prefix) => event_type.starts_with(prefix),
                    None => t == event_type,
                }))
    }
}

pub fn is_integration(event_type: &str) -> bool {
    INTEGRATION_PREFIXES
        .iter()
        .any(|p| event_type.starts_with(p))
}

/// The longest `max_age_seconds` a queue may be created with: ten years.
pub const MAX_AGE_SECONDS: i64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Clone)]
pub enum ChangeQueueCommand {
    Create {
        name: QueueName,
        event_types: EventTypes,
        /// Backfill: start after this log position instead of the head.
        from_position: Option<i64>,
        max_age_seconds: Option<i64>,
    },
    Delete {
        name: QueueName,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ChangeQueueEvent {
    #[serde(rename = "change_queue.created")]
    Created {
        name: QueueName,
        event_types: EventTypes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_position: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_age_seconds: Option<i64>,
    },
    #[serde(rename = "change_queue.deleted")]
    Deleted { name: QueueName },
}

impl DomainEvent for ChangeQueueEvent {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeQueue {
    pub live: bool,
}

impl Aggregate for ChangeQueue {
    type Command = ChangeQueueCommand;
    type Event = ChangeQueueEvent;

    fn decide(&self, command: ChangeQueueCommand) -> Result<Vec<ChangeQueueEvent>, DomainError> {
        match command {
            ChangeQueueCommand::Create {
                name,
                event_types,
                from_position,
                max_age_seconds,
            } => {
                if name.as_str() == DEFAULT || self.live {
                    return Err(DomainError::StateConflict(format!(
                        "a change queue named {} already exists",
                        name.as_str()
                    )));
                }
                if from_position.is_some_and(|p| p < 0) {
                    return Err(DomainError::invalid(
                        "from_position",
                        "must not be negative",
                    ));
                }
                if max_age_seconds.is_some_and(|s| !(1..=MAX_AGE_SECONDS).contains(&s)) {
                    return Err(DomainError::invalid(
                        "max_age_seconds",
                        format!(
                            "must be between 1 and {MAX_AGE_SECONDS} (ten years); leave it out \
                             to keep changes until they are drained"
                        ),
                    ));
                }
                Ok(vec![ChangeQueueEvent::Created {
                    name,
                    event_types,
                    from_position,
                    max_age_seconds,
                }])
            }
            ChangeQueueCommand::Delete { name } => {
                if name.as_str() == DEFAULT {
                    return Err(DomainError::StateConflict(
                        "the default change queue cannot be deleted".into(),
                    ));
                }
                if !self.live {
                    return Err(DomainError::NotFound("change queue"));
                }
                Ok(vec![ChangeQueueEvent::Deleted { name }])
            }
        }
    }

    fn evolve(&mut self, event: &ChangeQueueEvent) {
        self.live = matches!(event, ChangeQueueEvent::Created { .. });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> QueueName {
        QueueName::parse("name", raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_and_types_are_checked() {
        assert!(QueueName::parse("name", "crm-sync_2").is_ok());
        for bad in ["", "Upper", "a b", &"x".repeat(65)] {
            assert!(QueueName::parse("name", bad).is_err(), "{bad:?}");
        }
        let types = EventTypes::parse(&["device.*".into(), "user.status_updated".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(types.admits("device.registered"));
        assert!(types.admits("user.status_updated"));
        assert!(!types.admits("user.created"));
        assert!(!EventTypes::default().admits("app.created"));
        assert!(EventTypes::default().admits("notification.sent"));
        let bad = EventTypes::parse(&["app.created".into(), "device*".into(), "user.ok".into()]);
        let Err(DomainError::Invalid(errors)) = bad else {
            panic!("accepted")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event_types[0]", "event_types[1]"]);
    }

    #[test]
    fn the_default_queue_is_fixed_and_names_are_unique() {
        let create = |n: &str| ChangeQueueCommand::Create {
            name: name(n),
            event_types: EventTypes::default(),
            from_position: None,
            max_age_seconds: None,
        };
        let fresh = ChangeQueue::default();
        assert!(matches!(
            fresh.decide(create("default")),
            Err(DomainError::StateConflict(_))
        ));
        assert!(matches!(
            fresh.decide(ChangeQueueCommand::Delete {
                name: name("default")
            }),
            Err(DomainError::StateConflict(_))
        ));
        assert!(matches!(
            fresh.decide(ChangeQueueCommand::Delete { name: name("crm") }),
            Err(DomainError::NotFound(_))
        ));
        let events = fresh.decide(create("crm")).unwrap_or_default();
        let live = ChangeQueue::replay(&events);
        assert!(matches!(
            live.decide(create("crm")),
            Err(DomainError::StateConflict(_))
        ));
        let gone = live
            .decide(ChangeQueueCommand::Delete { name: name("crm") })
            .unwrap_or_default();
        let mut state = live;
        state.evolve(&gone[0]);
        assert!(
            state.decide(create("crm")).is_ok(),
            "a deleted name can be reused"
        );
    }

    #[test]
    fn a_maximum_age_is_between_a_second_and_ten_years() {
        let create = |age: i64| ChangeQueueCommand::Create {
            name: name("crm"),
            event_types: EventTypes::default(),
            from_position: None,
            max_age_seconds: Some(age),
        };
        let fresh = ChangeQueue::default();
        for good in [1, MAX_AGE_SECONDS] {
            assert!(fresh.decide(create(good)).is_ok(), "{good}");
        }
        for bad in [
            0,
            -1,
            MAX_AGE_SECONDS + 1,
            i64::MAX / 1_000_000 + 1,
            i64::MAX,
        ] {
            let Err(DomainError::Invalid(errors)) = fresh.decide(create(bad)) else {
                panic!("accepted {bad}")
            };
            assert_eq!(errors[0].field, "max_age_seconds");
        }
    }
}
