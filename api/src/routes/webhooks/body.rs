//! Request and response bodies of the webhook routes, and their parsing
//! into the domain's validated values (every bad field named in one 400).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::change_queue::EventTypes;
use domain::user::Change;
use domain::webhook::SettingsPatch;
use domain::webhook::settings::{
    self, EndpointUrl, Headers, HttpMethod, Settings, valid_header_name, valid_header_value,
};
use domain::webhook::template::Template;
use domain::{DomainError, FieldError};
use infra::reactors::webhooks::send::Credential;
use projections::webhooks::endpoints::EndpointRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::devices::present;
use crate::routes::schema;

/// How Herald authenticates to the receiver. Stored encrypted, never shown
/// again; the log and reads carry its kind and fingerprint.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthBody {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic { username: String, password: String },
    /// A header of your choice.
    Header { name: String, value: String },
}

impl AuthBody {
    fn parse(self) -> Result<Credential, DomainError> {
        let bad = |field: &str, m: &str| Err(DomainError::invalid(format!("auth.{field}"), m));
        match self {
            AuthBody::Bearer(token) => {
                if token.is_empty() || !valid_header_value(&format!("Bearer {token}")) {
                    return bad("bearer", "must be 1-1000 visible ASCII characters");
                }
                Ok(Credential::Bearer(token))
            }
            AuthBody::Basic { username, password } => {
                if username.contains(':') || username.chars().any(char::is_control) {
                    return bad(
                        "basic.username",
                        "must not contain ':' or control characters",
                    );
                }
                if password.chars().any(char::is_control) {
                    return bad("basic.password", "must not contain control characters");
                }
                Ok(Credential::Basic { username, password })
            }
            AuthBody::Header { name, value } => {
                let lower = name.to_ascii_lowercase();
                if !valid_header_name(&name)
                    || lower.starts_with("webhook-")
                    || ["content-type", "content-length", "host"].contains(&lower.as_str())
                {
                    return bad(
                        "header.name",
                        "must be a header name Herald does not set itself",
                    );
                }
                if value.is_empty() || !valid_header_value(&value) {
                    return bad(
                        "header.value",
                        "must be 1-1024 bytes of visible ASCII and spaces",
                    );
                }
                Ok(Credential::Header { name, value })
            }
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Absolute http(s) URL, at most 2048 bytes, without credentials or a
    /// fragment; its host must resolve to public addresses. Its path and
    /// query may hold `{{placeholder}}`s, rendered percent-encoded per
    /// message (see `docs/webhooks.md`).
    #[schema(max_length = 2048)]
    pub url: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Device, user or notification event types, `prefix.*`, or the
    /// aliases `create_user`, `delete_user`, `update_user_status`; at most
    /// 50; default all.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub event_types: Vec<String>,
    /// Default `POST`. `GET`, `HEAD` and `DELETE` send no body (and take
    /// no `payload_template`).
    #[schema(value_type = Option<schema::HttpMethod>)]
    pub method: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schema::webhook_headers)]
    pub headers: BTreeMap<String, String>,
    /// Any JSON (at most 16 KiB) whose strings may hold `{{placeholder}}`s
    /// (see `docs/webhooks.md`); the message body instead of the event.
    #[schema(value_type = Option<Value>)]
    pub payload_template: Option<Value>,
    pub auth: Option<AuthBody>,
    /// Messages per second, 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit_per_second: Option<i64>,
    /// Deliver strictly in log order.
    #[serde(default)]
    pub ordered: bool,
    /// Set a user's status to `webhook_error` when a message about them fails for good.
    #[serde(default)]
    pub set_user_status_on_failure: bool,
    /// The receiver's RSA public key (PEM `PUBLIC KEY`, 2048 to 8192 bits):
    /// each message body is then a JWE (RSA-OAEP-256, A256GCM) that only
    /// the receiver can read (see `docs/webhooks.md`).
    pub encryption_public_key: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
    #[schema(max_items = 50)]
    pub event_types: Option<Vec<String>>,
    #[schema(value_type = Option<schema::HttpMethod>)]
    pub method: Option<String>,
    #[schema(schema_with = schema::nullable_webhook_headers)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>)]
    pub payload_template: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthBody>)]
    pub auth: Option<Option<AuthBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub rate_limit_per_second: Option<Option<i64>>,
    pub ordered: Option<bool>,
    pub set_user_status_on_failure: Option<bool>,
    /// `null` stops encrypting.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub encryption_public_key: Option<Option<String>>,
}

/// Collects field errors so that one 400 names them all.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn keep<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(DomainError::Invalid(e)) => {
                self.0.extend(e);
                None
            }
            Err(other) => {
                self.0.push(FieldError::new("body", other.to_string()));
                None
            }
        }
    }

    fn done<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(ApiError::Validation(self.0)),
        }
    }
}

/// A receiver's public key, checked to be one Herald can encrypt to.
fn encryption_key(raw: &str) -> Result<String, DomainError> {
    infra::reactors::webhooks::jwe::ReceiverKey::parse(raw)
        .map(|_| raw.trim().to_owned())
        .map_err(|m| DomainError::invalid("encryption_public_key", m))
}

fn template(raw: Value) -> Result<Template, DomainError> {
    Template::parse(raw)
}

impl CreateWebhook {
    pub fn parse(self) -> Result<(Settings, Option<Credential>), ApiError> {
        let mut e = Errors::default();
        let url = e.keep(EndpointUrl::parse(&self.url));
        let description = e.keep(
            self.description
                .as_deref()
                .map(settings::description)
                .transpose(),
        );
        let event_types = e.keep(settings::event_types(&self.event_types));
        let method = e.keep(self.method.as_deref().map(HttpMethod::parse).transpose());
        let headers = e.keep(Headers::parse(&self.headers));
        let payload_template = e.keep(
            self.payload_template
                .filter(|v| !v.is_null())
                .map(template)
                .transpose(),
        );
        let rate = e.keep(
            self.rate_limit_per_second
                .map(settings::rate_limit)
                .transpose(),
        );
        let auth = e.keep(self.auth.map(AuthBody::parse).transpose());
        let encryption = e.keep(
            self.encryption_public_key
                .as_deref()
                .map(encryption_key)
                .transpose(),
        );
        let parsed = (|| {
            Some((
                Settings {
                    url: url?,
                    description: description?,
                    event_types: event_types?,
                    method: method?.unwrap_or_default(),
                    headers: headers?,
                    payload_template: payload_template?,
                    rate_limit_per_second: rate?,
                    ordered: self.ordered,
                    set_user_status_on_failure: self.set_user_status_on_failure,
                    encryption_public_key: encryption?,
                },
                auth?,
            ))
        })();
        e.done(parsed)
    }
}

fn change<T>(raw: Option<Option<T>>) -> Change<T> {
    match raw {
        None => Change::Keep,
        Some(None) => Change::Clear,
        Some(Some(v)) => Change::Set(v),
    }
}

fn change_of<T, U>(
    e: &mut Errors,
    raw: Option<Option<T>>,
    parse: impl FnOnce(T) -> Result<U, DomainError>,
) -> Option<Change<U>> {
    match change(raw) {
        Change::Keep => Some(Change::Keep),
        Change::Clear => Some(Change::Clear),
        Change::Set(v) => e.keep(parse(v)).map(Change::Set),
    }
}

impl PatchWebhook {
    pub fn parse(self) -> Result<(SettingsPatch, Change<Credential>), ApiError> {
        let mut e = Errors::default();
        let url = e.keep(self.url.as_deref().map(EndpointUrl::parse).transpose());
        let description = change_of(&mut e, self.description, |d: String| {
            settings::description(&d)
        });
        let event_types: Option<Option<EventTypes>> = e.keep(
            self.event_types
                .as_deref()
                .map(settings::event_types)
                .transpose(),
        );
        let method = e.keep(self.method.as_deref().map(HttpMethod::parse).transpose());
        let headers = e.keep(self.headers.as_ref().map(Headers::parse).transpose());
        let payload_template = change_of(
            &mut e,
            self.payload_template.map(|t| t.filter(|v| !v.is_null())),
            template,
        );
        let rate = change_of(&mut e, self.rate_limit_per_second, settings::rate_limit);
        let credential = change_of(&mut e, self.auth, AuthBody::parse);
        let encryption = change_of(&mut e, self.encryption_public_key, |k: String| {
            encryption_key(&k)
        });
        let parsed = (|| {
            Some((
                SettingsPatch {
                    url: url?,
                    description: description?,
                    event_types: event_types?,
                    method: method?,
                    headers: headers?,
                    payload_template: payload_template?,
                    rate_limit_per_second: rate?,
                    ordered: self.ordered,
                    set_user_status_on_failure: self.set_user_status_on_failure,
                    encryption_public_key: encryption?,
                    auth: Change::Keep,
                },
                credential?,
            ))
        })();
        e.done(parsed)
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuthView {
    #[schema(value_type = schema::AuthKind)]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_name: Option<String>,
    fingerprint: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookBody {
    id: Uuid,
    url: String,
    description: Option<String>,
    event_types: Vec<String>,
    #[schema(value_type = schema::HttpMethod)]
    method: String,
    #[schema(schema_with = schema::webhook_headers)]
    headers: BTreeMap<String, String>,
    #[schema(value_type = Option<Value>)]
    payload_template: Option<Value>,
    auth: Option<AuthView>,
    #[schema(minimum = 1, maximum = 10000)]
    rate_limit_per_second: Option<u32>,
    ordered: bool,
    set_user_status_on_failure: bool,
    /// The receiver's public key messages are encrypted to, if any.
    encryption_public_key: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    /// Fingerprint of the newest signing secret.
    secret_fingerprint: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EndpointRecord> for WebhookBody {
    fn from(r: EndpointRecord) -> Self {
        let s = r.settings;
        Self {
            id: r.webhook_id.0,
            url: s.url.as_str().to_owned(),
            description: s.description,
            event_types: s.event_types.as_slice().to_vec(),
            method: s.method.as_str().to_owned(),
            headers: s
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            payload_template: s.payload_template.map(|t| t.as_value().clone()),
            auth: r.auth.map(|a| AuthView {
                kind: a.kind,
                header_name: a.header_name,
                fingerprint: a.fingerprint,
            }),
            rate_limit_per_second: s.rate_limit_per_second,
            ordered: s.ordered,
            set_user_status_on_failure: s.set_user_status_on_failure,
            encryption_public_key: s.encryption_public_key,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            secret_fingerprint: r.secret_fingerprint,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown once (creation, rotation).
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookBody,
    /// `whsec_` + base64: verify signatures with it.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookBody>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
