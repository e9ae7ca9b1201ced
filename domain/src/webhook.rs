//! The webhook endpoint aggregate: where an app's integration events are
//! delivered, how, and whether delivery is on.
//!
//! Secrets (the signing secret, the receiver's credentials) never enter the
//! log: events carry their fingerprints only. Delivery state (messages,
//! attempts, schedules) is operational and lives outside the log too; what
//! changes the endpoint itself (disabled after a 410, say) comes back as a
//! command, so it is an event like any other.

pub mod endpoint_url;
pub mod settings;
pub mod template;

use serde::{Deserialize, Serialize};

use self::settings::{AuthInfo, EndpointUrl, Headers, HttpMethod, Settings};
use self::template::Template;
use crate::aggregate::Aggregate;
use crate::change_queue::EventTypes;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::ids::WebhookId;
use crate::user::Change;

pub fn stream(id: WebhookId) -> String {
    format!("webhook:{id}")
}

pub const MAX_REASON_CHARS: usize = 500;

/// What `PATCH /v1/webhooks/{id}` asks to change.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub url: Option<EndpointUrl>,
    pub description: Change<String>,
    pub event_types: Option<EventTypes>,
    pub method: Option<HttpMethod>,
    pub headers: Option<Headers>,
    pub payload_template: Change<Template>,
    pub rate_limit_per_second: Change<u32>,
    pub ordered: Option<bool>,
    pub set_user_status_on_failure: Option<bool>,
    pub encryption_public_key: Change<String>,
    pub auth: Change<AuthInfo>,
}

fn apply<T>(current: Option<T>, change: Change<T>) -> Option<T> {
    match change {
        Change::Keep => current,
        Change::Clear => None,
        Change::Set(v) => Some(v),
    }
}

impl SettingsPatch {
    /// The field of the patch that asks for `{{callback.url}}`, if any.
    pub fn callback_field(&self) -> Option<&'static str> {
        let in_template = matches!(&self.payload_template, Change::Set(t)
            if t.placeholders().contains(template::CALLBACK_URL));
        if in_template {
            Some("payload_template")
        } else if self
            .url
            .as_ref()
            .is_some_and(|u| u.uses(template::CALLBACK_URL))
        {
            Some("url")
        } else {
            None
        }
    }

    fn applied_to(self, current: &Settings) -> Settings {
        let c = current.clone();
        Settings {
            url: self.url.unwrap_or(c.url),
            description: apply(c.description, self.description),
            event_types: self.event_types.unwrap_or(c.event_types),
            method: self.method.unwrap_or(c.method),
            headers: self.headers.unwrap_or(c.headers),
            payload_template: apply(c.payload_template, self.payload_template),
            rate_limit_per_second: apply(c.rate_limit_per_second, self.rate_limit_per_second),
            ordered: self.ordered.unwrap_or(c.ordered),
            set_user_status_on_failure: self
                .set_user_status_on_failure
                .unwrap_or(c.set_user_status_on_failure),
            encryption_public_key: apply(c.encryption_public_key, self.encryption_public_key),
        }
    }
}

#[derive(Debug, Clone)]
pub enum WebhookCommand {
    Create {
        webhook_id: WebhookId,
        settings: Settings,
        auth: Option<AuthInfo>,
        secret_fingerprint: String,
    },
    Update {
        webhook_id: WebhookId,
        patch: SettingsPatch,
    },
    Delete {
        webhook_id: WebhookId,
    },
    Enable {
        webhook_id: WebhookId,
    },
    /// By an admin, or by the delivery reactor (410 Gone, failing too long).
    Disable {
        webhook_id: WebhookId,
        reason: String,
    },
    RotateSecret {
        webhook_id: WebhookId,
        secret_fingerprint: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WebhookEvent {
    #[serde(rename = "webhook.endpoint_created")]
    Created {
        webhook_id: WebhookId,
        settings: Settings,
        auth: Option<AuthInfo>,
        secret_fingerprint: String,
    },
    /// The whole settings after the change, and which fields changed.
    #[serde(rename = "webhook.endpoint_updated")]
    Updated {
        webhook_id: WebhookId,
        settings: Settings,
        auth: Option<AuthInfo>,
        changed: Vec<String>,
    },
    #[serde(rename = "webhook.endpoint_disabled")]
    Disabled {
        webhook_id: WebhookId,
        reason: String,
    },
    #[serde(rename = "webhook.endpoint_enabled")]
    Enabled { webhook_id: WebhookId },
    #[serde(rename = "webhook.secret_rotated")]
    SecretRotated {
        webhook_id: WebhookId,
        secret_fingerprint: String,
    },
    #[serde(rename = "webhook.endpoint_deleted")]
    Deleted { webhook_id: WebhookId },
}

impl DomainEvent for WebhookEvent {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub live: bool,
    pub enabled: bool,
    pub settings: Option<Settings>,
    pub auth: Option<AuthInfo>,
}

impl Endpoint {
    fn settings(&self) -> Result<&Settings, DomainError> {
        match &self.settings {
            Some(s) if self.live => Ok(s),
            _ => Err(DomainError::NotFound("webhook")),
        }
    }
}

impl Aggregate for Endpoint {
    type Command = WebhookCommand;
    type Event = WebhookEvent;

    fn decide(&self, command: WebhookCommand) -> Result<Vec<WebhookEvent>, DomainError> {
        match command {
            WebhookCommand::Create {
                webhook_id,
                settings,
                auth,
                secret_fingerprint,
            } => {
                if self.live || self.settings.is_some() {
                    return Err(DomainError::StateConflict("the webhook id is taken".into()));
                }
                settings.check()?;
                Ok(vec![WebhookEvent::Created {
                    webhook_id,
                    settings,
                    auth,
                    secret_fingerprint,
                }])
            }
            WebhookCommand::Update { webhook_id, patch } => {
                let current = self.settings()?;
                let auth = apply(self.auth.clone(), patch.auth.clone());
                let settings = patch.applied_to(current);
                settings.check()?;
                let mut changed: Vec<String> = current
                    .differences(&settings)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                if auth != self.auth {
                    changed.push("auth".into());
                }
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Updated {
                    webhook_id,
                    settings,
                    auth,
                    changed,
                }])
            }
            WebhookCommand::Delete { webhook_id } => {
                self.settings()?;
                Ok(vec![WebhookEvent::Deleted { webhook_id }])
            }
            WebhookCommand::Enable { webhook_id } => {
                self.settings()?;
                if self.enabled {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Enabled { webhook_id }])
            }
            WebhookCommand::Disable { webhook_id, reason } => {
                self.settings()?;
                if reason.chars().count() > MAX_REASON_CHARS {
                    return Err(DomainError::invalid(
                        "reason",
                        format!("must be at most {MAX_REASON_CHARS} characters"),
                    ));
                }
                if !self.enabled {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Disabled { webhook_id, reason }])
            }
            WebhookCommand::RotateSecret {
                webhook_id,
                secret_fingerprint,
            } => {
                self.settings()?;
                Ok(vec![WebhookEvent::SecretRotated {
                    webhook_id,
                    secret_fingerprint,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &WebhookEvent) {
        match event {
            WebhookEvent::Created { settings, auth, .. } => {
                *self = Endpoint {
                    live: true,
                    enabled: true,
                    settings: Some(settings.clone()),
                    auth: auth.clone(),
                };
            }
            WebhookEvent::Updated { settings, auth, .. } => {
                self.settings = Some(settings.clone());
                self.auth = auth.clone();
            }
            WebhookEvent::Disabled { .. } => self.enabled = false,
            WebhookEvent::Enabled { .. } => self.enabled = true,
            WebhookEvent::SecretRotated { .. } => {}
            // The id stays taken: a deleted endpoint's stream is not reused.
            WebhookEvent::Deleted { .. } => {
                self.live = false;
                self.enabled = false;
            }
        }
    }
}

#[cfg(test)]
mod tests;
