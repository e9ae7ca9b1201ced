//! The app aggregate: one tenant, its name and its API keys.
//!
//! A key's token never reaches the log: the log keeps its SHA-256, which is
//! what authentication compares against. A token is 256 random bits, so its
//! hash reveals nothing usable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::ids::{ApiKeyId, AppId};
use crate::platform::SendPlatform;
use crate::role::Role;
use crate::text::Name;

pub fn stream(app_id: AppId) -> String {
    format!("app:{app_id}")
}

/// A key to be created; the token was generated and hashed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub key_id: ApiKeyId,
    pub name: Name,
    pub roles: Vec<Role>,
    pub token_sha256: String,
}

#[derive(Debug, Clone)]
pub enum AppCommand {
    Create {
        app_id: AppId,
        name: Name,
        first_key: NewApiKey,
    },
    CreateApiKey(NewApiKey),
    RevokeApiKey(ApiKeyId),
    /// Push messages per UTC day; `None` lifts the limit.
    SetDailyQuota(Option<u64>),
    /// API requests per second per key; `None`: the node's default.
    SetRateLimit(Option<u32>),
    /// Credentials were stored (outside the log): their fingerprint and
    /// the details that are not secret (project, key id, team, topic).
    SetPushCredentials {
        provider: SendPlatform,
        fingerprint: String,
        details: serde_json::Value,
    },
    RemovePushCredentials(SendPlatform),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AppEvent {
    #[serde(rename = "app.created")]
    Created { app_id: AppId, name: String },
    #[serde(rename = "api_key.created")]
    ApiKeyCreated {
        key_id: ApiKeyId,
        name: String,
        roles: Vec<Role>,
        token_sha256: String,
    },
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked { key_id: ApiKeyId },
    #[serde(rename = "app.daily_quota_set")]
    DailyQuotaSet { daily_quota: Option<u64> },
    #[serde(rename = "app.rate_limit_set")]
    RateLimitSet { rate_limit_per_second: Option<u32> },
    #[serde(rename = "app.push_credentials_set")]
    PushCredentialsSet {
        provider: SendPlatform,
        fingerprint: String,
        details: serde_json::Value,
    },
    #[serde(rename = "app.push_credentials_removed")]
    PushCredentialsRemoved { provider: SendPlatform },
}

impl DomainEvent for AppEvent {}

#[derive(Debug, Default)]
pub struct App {
    exists: bool,
    /// Key id -> revoked?
    keys: BTreeMap<ApiKeyId, bool>,
    daily_quota: Option<u64>,
    rate_limit: Option<u32>,
    /// Provider -> fingerprint of the stored credentials.
    credentials: BTreeMap<&'static str, String>,
}

impl App {
    pub fn exists(&self) -> bool {
        self.exists
    }
}

fn key_created(key: NewApiKey) -> AppEvent {
    let mut roles = key.roles;
    roles.sort();
    roles.dedup();
    AppEvent::ApiKeyCreated {
        key_id: key.key_id,
        name: key.name.as_str().to_owned(),
        roles,
        token_sha256: key.token_sha256,
    }
}

impl Aggregate for App {
    type Command = AppCommand;
    type Event = AppEvent;

    fn decide(&self, command: AppCommand) -> Result<Vec<AppEvent>, DomainError> {
        match command {
            AppCommand::Create {
                app_id,
                name,
                first_key,
            } => {
                if self.exists {
                    return Err(DomainError::StateConflict("the app already exists".into()));
                }
                Ok(vec![
                    AppEvent::Created {
                        app_id,
                        name: name.as_str().to_owned(),
                    },
                    key_created(first_key),
                ])
            }
            AppCommand::CreateApiKey(key) => {
                if !self.exists {
                    return Err(DomainError::NotFound("app"));
                }
                if key.roles.is_empty() {
                    return Err(DomainError::invalid("roles", "must name at least one role"));
                }
                if self.keys.contains_key(&key.key_id) {
                    return Err(DomainError::StateConflict("the key id is taken".into()));
                }
                Ok(vec![key_created(key)])
            }
            AppCommand::RevokeApiKey(key_id) => match self.keys.get(&key_id) {
                Some(false) => Ok(vec![AppEvent::ApiKeyRevoked { key_id }]),
                _ => Err(DomainError::NotFound("api key")),
            },
            AppCommand::SetDailyQuota(daily_quota) => {
                if !self.exists {
                    return Err(DomainError::NotFound("app"));
                }
                if self.daily_quota == daily_quota {
                    return Ok(vec![]);
                }
                Ok(vec![AppEvent::DailyQuotaSet { daily_quota }])
            }
            AppCommand::SetRateLimit(rate_limit_per_second) => {
                if !self.exists {
                    return Err(DomainError::NotFound("app"));
                }
                if self.rate_limit == rate_limit_per_second {
                    return Ok(vec![]);
                }
                Ok(vec![AppEvent::RateLimitSet {
                    rate_limit_per_second,
                }])
            }
            AppCommand::SetPushCredentials {
                provider,
                fingerprint,
                details,
            } => {
                if !self.exists {
                    return Err(DomainError::NotFound("app"));
                }
                Ok(vec![AppEvent::PushCredentialsSet {
                    provider,
                    fingerprint,
                    details,
                }])
            }
            AppCommand::RemovePushCredentials(provider) => {
                if !self.credentials.contains_key(provider.as_str()) {
                    return Err(DomainError::NotFound("push credentials"));
                }
                Ok(vec![AppEvent::PushCredentialsRemoved { provider }])
            }
        }
    }

    fn evolve(&mut self, event: &AppEvent) {
        match event {
            AppEvent::Created { .. } => self.exists = true,
            AppEvent::ApiKeyCreated { key_id, .. } => {
                self.keys.insert(*key_id, false);
            }
            AppEvent::ApiKeyRevoked { key_id } => {
                self.keys.insert(*key_id, true);
            }
            AppEvent::DailyQuotaSet { daily_quota } => self.daily_quota = *daily_quota,
            AppEvent::RateLimitSet {
                rate_limit_per_second,
            } => self.rate_limit = *rate_limit_per_second,
            AppEvent::PushCredentialsSet {
                provider,
                fingerprint,
                ..
            } => {
                self.credentials
                    .insert(provider.as_str(), fingerprint.clone());
            }
            AppEvent::PushCredentialsRemoved { provider } => {
                self.credentials.remove(provider.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn key(id: u128, roles: &[Role]) -> NewApiKey {
        NewApiKey {
            key_id: ApiKeyId(uuid::Uuid::from_u128(id)),
            name: Name::parse("name", "k").unwrap_or_else(|e| panic!("{e}")),
            roles: roles.to_vec(),
            token_sha256: "ab".into(),
        }
    }

    fn created() -> Vec<AppEvent> {
        vec![
            AppEvent::Created {
                app_id: AppId(uuid::Uuid::nil()),
                name: "a".into(),
            },
            key_created(key(1, &Role::SERVER)),
        ]
    }

    #[test]
    fn creating_an_app_records_its_first_key() {
        given::<App>([])
            .when(AppCommand::Create {
                app_id: AppId(uuid::Uuid::nil()),
                name: Name::parse("name", "a").unwrap_or_else(|e| panic!("{e}")),
                first_key: key(
                    1,
                    &[
                        Role::Read,
                        Role::Admin,
                        Role::Write,
                        Role::Audit,
                        Role::Read,
                    ],
                ),
            })
            .then(created());
    }

    #[test]
    fn a_key_needs_a_role() {
        let err = given::<App>(created())
            .when(AppCommand::CreateApiKey(key(2, &[])))
            .then_refused();
        assert!(matches!(err, DomainError::Invalid(ref f) if f[0].field == "roles"));
    }

    #[test]
    fn a_key_is_revoked_once() {
        let mut history = created();
        given::<App>(history.clone())
            .when(AppCommand::RevokeApiKey(ApiKeyId(uuid::Uuid::from_u128(1))))
            .then([AppEvent::ApiKeyRevoked {
                key_id: ApiKeyId(uuid::Uuid::from_u128(1)),
            }]);
        history.push(AppEvent::ApiKeyRevoked {
            key_id: ApiKeyId(uuid::Uuid::from_u128(1)),
        });
        given::<App>(history)
            .when(AppCommand::RevokeApiKey(ApiKeyId(uuid::Uuid::from_u128(1))))
            .then_error(DomainError::NotFound("api key"));
    }

    #[test]
    fn events_round_trip_through_the_log_form() {
        for event in created() {
            let (event_type, data) = event.encode();
            assert!(event_type.contains('.'));
            assert_eq!(AppEvent::decode(&event_type, 1, &data), Ok(event));
        }
    }
}
