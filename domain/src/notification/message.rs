//! What a notification says and whom it is for, validated once at the edge:
//! lengths, URLs, string-only data, and a payload that fits the providers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::conditions::Condition;
use crate::error::{DomainError, FieldError};
use crate::ids::{ExternalId, UserId};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 2000;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_DATA_KEYS: usize = 100;
pub const MAX_USER_IDS: usize = 1000;
pub const MAX_EXTERNAL_IDS: usize = 10_000;
/// FCM's largest TTL (28 days).
pub const MAX_TTL_SECONDS: u32 = 2_419_200;
/// FCM and APNs both accept 4096-byte payloads; Web Push's encryption
/// overhead leaves a little less, so Herald holds every payload to this.
pub const MAX_PAYLOAD_BYTES: usize = 3900;
/// Web Push's `Topic` is at most 32 base64url characters; the same bound
/// suits APNs' `apns-collapse-id` (64 bytes) and FCM's collapse key.
pub const MAX_COLLAPSE_KEY_CHARS: usize = 32;

/// Data keys FCM reserves.
fn reserved_data_key(key: &str) -> bool {
    matches!(
        key,
        "from" | "notification" | "message_type" | "collapse_key"
    ) || key.starts_with("google.")
        || key.starts_with("gcm.")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    High,
    Normal,
}

impl Priority {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "high" => Ok(Self::High),
            "normal" => Ok(Self::Normal),
            _ => Err(DomainError::invalid("priority", "must be high or normal")),
        }
    }
}

/// What the notification shows and carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The campaign's own name (for lists and histories; never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub title: String,
    pub body: String,
    pub deep_link: Option<String>,
    pub image_url: Option<String>,
    pub icon_url: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    pub ttl_seconds: Option<u32>,
    #[serde(default)]
    pub priority: Priority,
    pub collapse_key: Option<String>,
}

/// Whom it is for: the union of every device matching the conditions,
/// every device of the users, and the named devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// The condition tree as sent (validated; see `conditions`).
    pub conditions: Option<Value>,
    #[serde(default)]
    pub user_ids: Vec<UserId>,
    #[serde(default)]
    pub external_ids: Vec<ExternalId>,
}

impl Targets {
    pub fn condition(&self) -> Option<Condition> {
        self.conditions
            .as_ref()
            .and_then(|c| Condition::parse(c).ok())
    }
}

/// A notification's content, targets and schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub content: Content,
    pub targets: Targets,
    pub scheduled_at: Option<DateTime<Utc>>,
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    let chars = value.chars().count();
    if chars == 0 {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if chars > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value.chars().any(|c| c.is_control() && c != '\n') {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

/// An absolute URL: http(s) only, or (deep links) any scheme.
fn check_url(errors: &mut Vec<FieldError>, field: &str, value: &str, any_scheme: bool) {
    if value.len() > MAX_URL_BYTES {
        errors.push(FieldError::new(field, "must be at most 2048 bytes"));
        return;
    }
    match url::Url::parse(value) {
        Ok(u) if any_scheme || (matches!(u.scheme(), "http" | "https") && u.host().is_some()) => {}
        _ if any_scheme => errors.push(FieldError::new(field, "must be an absolute URL")),
        _ => errors.push(FieldError::new(field, "must be an absolute http(s) URL")),
    }
}

impl Content {
    /// Checks every field; errors name them.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name {
            check_text(&mut errors, "name", name, MAX_TITLE_CHARS);
        }
        check_text(&mut errors, "title", &self.title, MAX_TITLE_CHARS);
        check_text(&mut errors, "body", &self.body, MAX_BODY_CHARS);
        if let Some(link) = &self.deep_link {
            check_url(&mut errors, "deep_link", link, true);
        }
        if let Some(image) = &self.image_url {
            check_url(&mut errors, "image_url", image, false);
        }
        if let Some(icon) = &self.icon_url {
            check_url(&mut errors, "icon_url", icon, false);
        }
        if self.data.len() > MAX_DATA_KEYS {
            errors.push(FieldError::new(
                "data",
                format!("at most {MAX_DATA_KEYS} keys"),
            ));
        }
        for key in self.data.keys() {
            if key.is_empty() || reserved_data_key(key) {
                errors.push(FieldError::new(
                    format!("data.{key}"),
                    "is a key the push providers reserve",
                ));
            }
        }
        if self.ttl_seconds.is_some_and(|t| t > MAX_TTL_SECONDS) {
            errors.push(FieldError::new(
                "ttl_seconds",
                format!("must be at most {MAX_TTL_SECONDS} (28 days)"),
            ));
        }
        if let Some(key) = &self.collapse_key
            && (key.is_empty()
                || key.len() > MAX_COLLAPSE_KEY_CHARS
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            errors.push(FieldError::new(
                "collapse_key",
                "must be 1-32 characters of A-Z, a-z, 0-9, - and _",
            ));
        }
        if errors.is_empty() {
            self.check_size()
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    /// The payload every provider gets, as JSON (what Web Push encrypts).
    pub fn payload(&self) -> Value {
        json!({
            "title": self.title,
            "body": self.body,
            "deep_link": self.deep_link,
            "image_url": self.image_url,
            "icon_url": self.icon_url,
            "data": self.data,
        })
    }

    /// Refuses a payload over the providers' limit, naming the largest
    /// part (the one to shorten).
    fn check_size(&self) -> Result<(), DomainError> {
        let size = self.payload().to_string().len();
        if size <= MAX_PAYLOAD_BYTES {
            return Ok(());
        }
        let data: usize = self.data.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        let parts = [
            ("data", data),
            ("body", self.body.len()),
            ("title", self.title.len()),
            ("deep_link", self.deep_link.as_ref().map_or(0, String::len)),
            ("image_url", self.image_url.as_ref().map_or(0, String::len)),
        ];
        let field = parts
            .iter()
            .max_by_key(|(_, n)| *n)
            .map_or("body", |(f, _)| *f);
        Err(DomainError::invalid(
            field,
            format!(
                "makes the push payload {size} bytes; providers accept at most {MAX_PAYLOAD_BYTES}"
            ),
        ))
    }
}

impl Targets {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        if self.conditions.is_none() && self.user_ids.is_empty() && self.external_ids.is_empty() {
            errors.push(FieldError::new(
                "conditions",
                "name a target: conditions, user_ids or external_ids",
            ));
        }
        if let Some(c) = &self.conditions
            && let Err(DomainError::Invalid(e)) = Condition::parse(c)
        {
            errors.extend(e);
        }
        if self.user_ids.len() > MAX_USER_IDS {
            errors.push(FieldError::new(
                "user_ids",
                format!("at most {MAX_USER_IDS}"),
            ));
        }
        if self.external_ids.len() > MAX_EXTERNAL_IDS {
            errors.push(FieldError::new(
                "external_ids",
                format!("at most {MAX_EXTERNAL_IDS}"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(errors))
        }
    }
}

impl Message {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        for result in [self.content.validate(), self.targets.validate()] {
            if let Err(DomainError::Invalid(e)) = result {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(errors))
        }
    }
}
