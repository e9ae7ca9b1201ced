//! What an endpoint is configured with: where, how, and which events.
//! Every value here is validated once, at the edge, and cannot be invalid
//! past it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::template::{CALLBACK_URL, Template};
use crate::change_queue::EventTypes;
use crate::error::{DomainError, FieldError};

pub use super::endpoint_url::MAX_URL_BYTES;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;
pub const MAX_RATE_PER_SECOND: u32 = 10_000;

/// Headers Herald sets itself, which an endpoint may not override.
const RESERVED_HEADERS: [&str; 10] = [
    "authorization",
    "content-length",
    "content-type",
    "connection",
    "host",
    "transfer-encoding",
    "user-agent",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
];

/// The names a user-management system uses for its webhook actions, and the
/// event types they stand for.
pub const EVENT_ALIASES: [(&str, &str); 3] = [
    ("create_user", "user.created"),
    ("delete_user", "user.deleted"),
    ("update_user_status", "user.status_updated"),
];

pub use super::endpoint_url::EndpointUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
    /// No body: what the receiver needs goes in the URL's placeholders.
    Get,
    Head,
    Delete,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 6] = [
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Get,
        Self::Head,
        Self::Delete,
    ];

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == raw)
            .ok_or_else(|| {
                DomainError::invalid(
                    "method",
                    "must be one of POST, PUT, PATCH, GET, HEAD, DELETE",
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Delete => "DELETE",
        }
    }

    /// Whether a message goes in the request's body (else the body is
    /// empty, and so is what the signature covers).
    pub fn has_body(self) -> bool {
        matches!(self, Self::Post | Self::Put | Self::Patch)
    }
}

/// Extra headers sent with every message. Names are lower-cased tokens;
/// values are visible ASCII and spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn valid_header_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE_BYTES
        && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

impl Headers {
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        if raw.len() > MAX_HEADERS {
            errors.push(FieldError::new(
                "headers",
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        let mut headers = BTreeMap::new();
        for (name, value) in raw {
            let lower = name.to_ascii_lowercase();
            if !valid_header_name(name) {
                errors.push(FieldError::new(
                    format!("headers.{name}"),
                    "is not a valid header name",
                ));
            } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                errors.push(FieldError::new(
                    format!("headers.{name}"),
                    "is set by Herald and cannot be overridden",
                ));
            } else if !valid_header_value(value) {
                errors.push(FieldError::new(
                    format!("headers.{name}"),
                    "must be at most 1024 bytes of visible ASCII and spaces",
                ));
            } else {
                headers.insert(lower, value.clone());
            }
        }
        if errors.is_empty() {
            Ok(Self(headers))
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which events an endpoint receives: the change-queue selection language
/// (exact types or `prefix.*`, device / user / notification events; empty
/// means all), plus the user-management aliases, stored as the types they
/// stand for.
pub fn event_types(raw: &[String]) -> Result<EventTypes, DomainError> {
    let mapped: Vec<String> = raw
        .iter()
        .map(|t| {
            EVENT_ALIASES
                .iter()
                .find(|(alias, _)| alias == t)
                .map_or_else(|| t.clone(), |(_, real)| (*real).to_owned())
        })
        .collect();
    EventTypes::parse(&mapped)
}

/// Requests per second, 1 to 10,000.
pub fn rate_limit(raw: i64) -> Result<u32, DomainError> {
    u32::try_from(raw)
        .ok()
        .filter(|r| (1..=MAX_RATE_PER_SECOND).contains(r))
        .ok_or_else(|| {
            DomainError::invalid(
                "rate_limit_per_second",
                format!("must be 1 to {MAX_RATE_PER_SECOND}"),
            )
        })
}

pub fn description(raw: &str) -> Result<String, DomainError> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// How Herald authenticates to the receiver. Only the kind (and a custom
/// header's name) reaches the log; the credential itself is kept encrypted
/// outside it, with its fingerprint here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// `bearer`, `basic` or `header`.
    pub kind: String,
    /// For `header`: the header's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    pub fingerprint: String,
}

/// Everything about an endpoint except its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub url: EndpointUrl,
    pub description: Option<String>,
    pub event_types: EventTypes,
    pub method: HttpMethod,
    pub headers: Headers,
    pub payload_template: Option<Template>,
    pub rate_limit_per_second: Option<u32>,
    pub ordered: bool,
    pub set_user_status_on_failure: bool,
    /// A receiver's RSA public key (PEM): messages go as JWE encrypted to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_public_key: Option<String>,
}

impl Settings {
    /// The rules between fields: a method without a body has no use for a
    /// payload template.
    pub fn check(&self) -> Result<(), DomainError> {
        if !self.method.has_body() && self.payload_template.is_some() {
            return Err(DomainError::invalid(
                "payload_template",
                format!(
                    "a {} endpoint is sent no body; put what the receiver needs in the URL's \
                     placeholders, or clear the template",
                    self.method.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// Whether messages carry a callback URL (`{{callback.url}}` in the
    /// template or the URL): the field that asks for it, if any.
    pub fn callback_field(&self) -> Option<&'static str> {
        if self
            .payload_template
            .as_ref()
            .is_some_and(|t| t.placeholders().contains(CALLBACK_URL))
        {
            Some("payload_template")
        } else if self.url.uses(CALLBACK_URL) {
            Some("url")
        } else {
            None
        }
    }

    /// The field names whose values differ between `self` and `other`.
    pub fn differences(&self, other: &Settings) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                changed.push(name);
            }
        };
        check("url", self.url == other.url);
        check("description", self.description == other.description);
        check("event_types", self.event_types == other.event_types);
        check("method", self.method == other.method);
        check("headers", self.headers == other.headers);
        check(
            "payload_template",
            self.payload_template == other.payload_template,
        );
        check(
            "rate_limit_per_second",
            self.rate_limit_per_second == other.rate_limit_per_second,
        );
        check("ordered", self.ordered == other.ordered);
        check(
            "set_user_status_on_failure",
            self.set_user_status_on_failure == other.set_user_status_on_failure,
        );
        check(
            "encryption_public_key",
            self.encryption_public_key == other.encryption_public_key,
        );
        changed
    }
}
