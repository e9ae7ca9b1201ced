//! Feature flags: a named switch per app, on for the devices its condition
//! tree matches (the trees of device search: app version, platform,
//! properties, `random_bucket` for percentage rollouts), with free metadata
//! handed to the app with the answer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::Aggregate;
use crate::conditions::{Condition, Facts};
use crate::error::{DomainError, FieldError};
use crate::event::DomainEvent;

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The metadata's JSON text, at most.
pub const MAX_METADATA_BYTES: usize = 8192;

pub fn stream(name: &FlagName) -> String {
    format!("feature_flag:{}", name.0)
}

/// 1-64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlagName(String);

impl FlagName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        // `evaluate` is a route (`/v1/feature-flags/evaluate`).
        let ok = !raw.is_empty()
            && raw != "evaluate"
            && raw.chars().count() <= MAX_NAME_CHARS
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                "name",
                format!(
                    "must be 1-{MAX_NAME_CHARS} characters of A-Z, a-z, 0-9, _, . and - (and not \"evaluate\")"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A flag's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub description: Option<String>,
    pub enabled: bool,
    /// The tree as sent (validated); `None`: every device.
    pub conditions: Option<Value>,
    /// A JSON object.
    pub metadata: Map<String, Value>,
}

impl Settings {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        if let Some(d) = &self.description
            && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains('\0'))
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters, without NUL"),
            ));
        }
        if let Some(c) = &self.conditions
            && let Err(DomainError::Invalid(found)) = Condition::parse(c)
        {
            errors.extend(found);
        }
        if Value::Object(self.metadata.clone()).to_string().len() > MAX_METADATA_BYTES {
            errors.push(FieldError::new(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
        } else if let Some((path, why)) =
            crate::storable::find_unstorable(&Value::Object(self.metadata.clone()), "metadata")
        {
            errors.push(FieldError::new(path, why));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    /// The condition tree, parsed (it was validated when stored).
    pub fn condition(&self) -> Option<Condition> {
        self.conditions
            .as_ref()
            .and_then(|raw| Condition::parse(raw).ok())
    }

    /// Whether the flag is on for a device with these facts.
    pub fn is_active(&self, facts: &Facts<'_>) -> bool {
        is_active(self.enabled, self.condition().as_ref(), facts)
    }
}

/// An enabled flag is on for the devices its condition matches (all, with
/// no condition); a disabled one for none.
pub fn is_active(enabled: bool, condition: Option<&Condition>, facts: &Facts<'_>) -> bool {
    enabled && condition.is_none_or(|c| c.matches(facts))
}

/// What a change sets; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub conditions: Option<Option<Value>>,
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub enum FlagCommand {
    Create { name: FlagName, settings: Settings },
    Change { name: FlagName, change: Change },
    Delete { name: FlagName },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum FlagEvent {
    #[serde(rename = "feature_flag.created")]
    Created {
        name: FlagName,
        #[serde(flatten)]
        settings: Settings,
    },
    /// The settings after the change (whole: a reader needs no history).
    #[serde(rename = "feature_flag.updated")]
    Updated {
        name: FlagName,
        #[serde(flatten)]
        settings: Settings,
    },
    #[serde(rename = "feature_flag.deleted")]
    Deleted { name: FlagName },
}

impl DomainEvent for FlagEvent {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flag {
    pub settings: Option<Settings>,
}

impl Aggregate for Flag {
    type Command = FlagCommand;
    type Event = FlagEvent;

    fn decide(&self, command: FlagCommand) -> Result<Vec<FlagEvent>, DomainError> {
        match command {
            FlagCommand::Create { name, settings } => {
                if self.settings.is_some() {
                    return Err(DomainError::StateConflict(format!(
                        "a feature flag named {} exists; change it with PATCH",
                        name.as_str()
                    )));
                }
                settings.validate()?;
                Ok(vec![FlagEvent::Created { name, settings }])
            }
            FlagCommand::Change { name, change } => {
                let Some(current) = &self.settings else {
                    return Err(DomainError::NotFound("feature flag"));
                };
                let mut next = current.clone();
                if let Some(d) = change.description {
                    next.description = d;
                }
                if let Some(e) = change.enabled {
                    next.enabled = e;
                }
                if let Some(c) = change.conditions {
                    next.conditions = c;
                }
                if let Some(m) = change.metadata {
                    next.metadata = m;
                }
                next.validate()?;
                if &next == current {
                    return Ok(vec![]);
                }
                Ok(vec![FlagEvent::Updated {
                    name,
                    settings: next,
                }])
            }
            FlagCommand::Delete { name } => {
                if self.settings.is_none() {
                    return Err(DomainError::NotFound("feature flag"));
                }
                Ok(vec![FlagEvent::Deleted { name }])
            }
        }
    }

    fn evolve(&mut self, event: &FlagEvent) {
        match event {
            FlagEvent::Created { settings, .. } | FlagEvent::Updated { settings, .. } => {
                self.settings = Some(settings.clone());
            }
            FlagEvent::Deleted { .. } => self.settings = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::properties::Properties;

    fn settings(conditions: Option<Value>) -> Settings {
        Settings {
            description: Some("new checkout".into()),
            enabled: true,
            conditions,
            metadata: Map::new(),
        }
    }

    #[test]
    fn a_flag_is_created_changed_and_deleted_once() {
        let name = FlagName::parse("checkout.v2").unwrap_or_else(|e| panic!("{e}"));
        let mut flag = Flag::default();
        let created = flag
            .decide(FlagCommand::Create {
                name: name.clone(),
                settings: settings(None),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        flag.evolve(&created[0]);
        assert!(matches!(
            flag.decide(FlagCommand::Create {
                name: name.clone(),
                settings: settings(None)
            }),
            Err(DomainError::StateConflict(_))
        ));
        let same = flag.decide(FlagCommand::Change {
            name: name.clone(),
            change: Change {
                enabled: Some(true),
                ..Change::default()
            },
        });
        assert_eq!(same, Ok(vec![]));
        let bad = flag.decide(FlagCommand::Change {
            name: name.clone(),
            change: Change {
                conditions: Some(Some(json!({"key": "x", "operator": "nope"}))),
                ..Change::default()
            },
        });
        assert!(matches!(bad, Err(DomainError::Invalid(f)) if f[0].field == "conditions.operator"));
        let deleted = flag
            .decide(FlagCommand::Delete { name: name.clone() })
            .unwrap_or_else(|e| panic!("{e}"));
        flag.evolve(&deleted[0]);
        assert_eq!(
            flag.decide(FlagCommand::Delete { name }),
            Err(DomainError::NotFound("feature flag"))
        );
        assert!(FlagName::parse("no spaces").is_err());
    }

    #[test]
    fn a_disabled_flag_is_off_and_conditions_narrow_an_enabled_one() {
        let props = Properties::new();
        let facts = Facts {
            external_id: "d",
            properties: &props,
            device_platform: Some("ios"),
            send_platform: None,
            user_id: None,
            random_bucket: 500,
            has_permission: true,
        };
        let rollout = json!({"key": "random_bucket", "operator": "int_lte", "value": 1000});
        assert!(settings(Some(rollout.clone())).is_active(&facts));
        let mut off = settings(Some(rollout));
        off.enabled = false;
        assert!(!off.is_active(&facts));
        let android = json!({"key": "device_platform", "operator": "str_eq", "value": "android"});
        assert!(!settings(Some(android)).is_active(&facts));
    }
}
