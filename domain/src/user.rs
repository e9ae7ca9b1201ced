//! The user aggregate: a profile, typed properties and a status. Devices
//! link to users (see `device`); a user's devices are a read-model concern.

use serde::{Deserialize, Deserializer, Serialize};

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::ids::UserId;
use crate::properties::{Properties, PropertyPatch};
use crate::text::Name;

pub fn stream(user_id: &UserId) -> String {
    format!("user:{user_id}")
}

pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Pending,
    Suspended,
    WebhookError,
}

impl UserStatus {
    pub const ALL: [UserStatus; 4] = [
        UserStatus::Active,
        UserStatus::Pending,
        UserStatus::Suspended,
        UserStatus::WebhookError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Suspended => "suspended",
            UserStatus::WebhookError => "webhook_error",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                DomainError::invalid(
                    "status",
                    "must be one of active, pending, suspended, webhook_error",
                )
            })
    }
}

/// An e-mail address: at most 254 bytes, one `@` with text on both sides,
/// no spaces or control characters. (Deliverability is not Herald's to judge.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        let valid = raw.len() <= 254
            && raw.split('@').count() == 2
            && raw.split('@').all(|p| !p.is_empty())
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid("email", "is not an e-mail address"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A change to an optional field: leave it, clear it, or set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: Change<Name>,
    pub email: Change<Email>,
    pub properties: PropertyPatch,
}

#[derive(Debug, Clone)]
pub enum UserCommand {
    /// `PUT /v1/users/{id}`: create, or change what differs.
    Upsert {
        user_id: UserId,
        profile: Profile,
    },
    SetStatus {
        user_id: UserId,
        status: UserStatus,
        reason: Option<String>,
    },
    Delete {
        user_id: UserId,
    },
    /// Forget the user's personal data (their key was destroyed): records
    /// `subject.forgotten`, unless nothing was written since the last time.
    /// `linked_devices`: some device was registered with their `user_id` or
    /// linked to them. The app knows them through it even if it never
    /// created them, so they can be forgotten with no stream of their own
    /// yet; the forget is recorded in a new one.
    Forget {
        user_id: UserId,
        linked_devices: bool,
    },
}

/// Tells a field sent as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    Created {
        user_id: UserId,
        name: Option<String>,
        email: Option<String>,
        status: UserStatus,
        properties: Properties,
    },
    /// Only what changed is present; `null` means cleared.
    #[serde(rename = "user.updated")]
    Updated {
        user_id: UserId,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        name: Option<Option<String>>,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        email: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Properties::is_empty")]
        properties_set: Properties,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        properties_removed: Vec<String>,
    },
    #[serde(rename = "user.status_updated")]
    StatusUpdated {
        user_id: UserId,
        from: UserStatus,
        to: UserStatus,
        reason: Option<String>,
    },
    #[serde(rename = "user.deleted")]
    Deleted { user_id: UserId },
    /// The user's personal data was forgotten (see `personal`): every
    /// earlier value of theirs reads as the placeholder.
    #[serde(rename = "subject.forgotten")]
    Forgotten { user_id: UserId },
}

impl DomainEvent for UserEvent {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub live: bool,
    /// The stream has events (the user may have been deleted since).
    pub recorded: bool,
    /// Nothing was written since the user was last forgotten.
    pub forgotten: bool,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: Option<UserStatus>,
    pub properties: Properties,
}

fn forget(value: &mut Option<String>) {
    if value.is_some() {
        *value = Some(crate::personal::PLACEHOLDER.to_owned());
    }
}

fn change(current: &Option<String>, wanted: Change<String>) -> Option<Option<String>> {
    match wanted {
        Change::Keep => None,
        Change::Clear => current.is_some().then_some(None),
        Change::Set(v) => (current.as_ref() != Some(&v)).then_some(Some(v)),
    }
}

fn names(c: Change<Name>) -> Change<String> {
    match c {
        Change::Keep => Change::Keep,
        Change::Clear => Change::Clear,
        Change::Set(n) => Change::Set(n.as_str().to_owned()),
    }
}

fn emails(c: Change<Email>) -> Change<String> {
    match c {
        Change::Keep => Change::Keep,
        Change::Clear => Change::Clear,
        Change::Set(e) => Change::Set(e.as_str().to_owned()),
    }
}

impl User {
    fn upsert(&self, user_id: UserId, profile: Profile) -> Result<Vec<UserEvent>, DomainError> {
        if !self.live {
            let properties = match profile
                .properties
                .against("properties", &Properties::new())?
            {
                Some(diff) => diff.set,
                None => Properties::new(),
            };
            let set = |c: Change<String>| {
                if let Change::Set(v) = c {
                    Some(v)
                } else {
                    None
                }
            };
            return Ok(vec![UserEvent::Created {
                user_id,
                name: set(names(profile.name)),
                email: set(emails(profile.email)),
                status: UserStatus::Active,
                properties,
            }]);
        }
        let name = change(&self.name, names(profile.name));
        let email = change(&self.email, emails(profile.email));
        let diff = profile
            .properties
            .against("properties", &self.properties)?
            .unwrap_or_default();
        if name.is_none() && email.is_none() && diff.set.is_empty() && diff.remove.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![UserEvent::Updated {
            user_id,
            name,
            email,
            properties_set: diff.set,
            properties_removed: diff.remove.into_iter().collect(),
        }])
    }
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        match command {
            UserCommand::Upsert { user_id, profile } => self.upsert(user_id, profile),
            UserCommand::SetStatus {
                user_id,
                status,
                reason,
            } => {
                let Some(from) = self.status.filter(|_| self.live) else {
                    return Err(DomainError::NotFound("user"));
                };
                if let Some(r) = &reason
                    && r.chars().count() > MAX_REASON_CHARS
                {
                    return Err(DomainError::invalid(
                        "reason",
                        format!("must be at most {MAX_REASON_CHARS} characters"),
                    ));
                }
                if from == status {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::StatusUpdated {
                    user_id,
                    from,
                    to: status,
                    reason,
                }])
            }
            UserCommand::Delete { user_id } => {
                if !self.live {
                    return Err(DomainError::NotFound("user"));
                }
                Ok(vec![UserEvent::Deleted { user_id }])
            }
            UserCommand::Forget {
                user_id,
                linked_devices,
            } => {
                if !self.recorded && !linked_devices {
                    return Err(DomainError::NotFound("user"));
                }
                if self.forgotten {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::Forgotten { user_id }])
            }
        }
    }

    fn evolve(&mut self, event: &UserEvent) {
        self.recorded = true;
        self.forgotten = matches!(event, UserEvent::Forgotten { .. });
        match event {
            UserEvent::Created {
                name,
                email,
                status,
                properties,
                ..
            } => {
                *self = User {
                    live: true,
                    recorded: true,
                    forgotten: false,
                    name: name.clone(),
                    email: email.clone(),
                    status: Some(*status),
                    properties: properties.clone(),
                };
            }
            UserEvent::Updated {
                name,
                email,
                properties_set,
                properties_removed,
                ..
            } => {
                if let Some(n) = name {
                    self.name = n.clone();
                }
                if let Some(e) = email {
                    self.email = e.clone();
                }
                for key in properties_removed {
                    self.properties.remove(key);
                }
                self.properties
                    .extend(properties_set.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            UserEvent::StatusUpdated { to, .. } => self.status = Some(*to),
            UserEvent::Deleted { .. } => {
                *self = User {
                    recorded: true,
                    ..User::default()
                }
            }
            UserEvent::Forgotten { .. } => {
                forget(&mut self.name);
                forget(&mut self.email);
                crate::personal::forget_properties(&mut self.properties);
            }
        }
    }
}

#[cfg(test)]
mod tests;
