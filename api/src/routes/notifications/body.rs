//! Notification request and response bodies, and their parsing into the
//! domain's message (every bad field named in one 400).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::ids::{ExternalId, UserId};
use domain::notification::PerPlatform;
use domain::notification::message::{Content, Message, Priority, Targets};
use domain::{DomainError, FieldError};
use projections::notifications::query::NotificationRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::devices::present;
use crate::routes::schema::{self, ClientId};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotification {
    /// The campaign's name (1-200 characters), shown in lists and device
    /// histories; never sent to devices.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// 1-200 characters, no control characters but newlines.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// 1-2000 characters, no control characters but newlines.
    #[schema(min_length = 1, max_length = 2000)]
    pub body: String,
    /// An absolute URL (any scheme, e.g. `myapp://inbox`), at most 2048 bytes.
    #[schema(max_length = 2048)]
    pub deep_link: Option<String>,
    /// An absolute http(s) URL, at most 2048 bytes.
    #[schema(max_length = 2048)]
    pub image_url: Option<String>,
    /// An absolute http(s) URL, at most 2048 bytes.
    #[schema(max_length = 2048)]
    pub icon_url: Option<String>,
    /// String values only; at most 100 keys, none that the providers
    /// reserve (`from`, `notification`, `message_type`, `collapse_key`,
    /// `google.*`, `gcm.*`). The whole payload is at most 3900 bytes.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub data: BTreeMap<String, Value>,
    /// A condition tree, as in device search.
    #[schema(schema_with = schema::nullable_condition)]
    pub conditions: Option<Value>,
    /// Every permitted device of these users (at most 1000).
    #[serde(default)]
    #[schema(value_type = Vec<ClientId>, max_items = 1000)]
    pub user_ids: Vec<String>,
    /// These devices (at most 10000).
    #[serde(default)]
    #[schema(value_type = Vec<ClientId>, max_items = 10000)]
    pub external_ids: Vec<String>,
    /// Launch at this instant instead of at once.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// How long providers keep it for an offline device.
    #[schema(minimum = 0, maximum = 2419200)]
    pub ttl_seconds: Option<i64>,
    /// Default `high`.
    #[schema(value_type = Option<schema::Priority>)]
    pub priority: Option<String>,
    /// Newer notifications with the same key replace older ones.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub collapse_key: Option<String>,
    /// Launch now (or queue it until `scheduled_at`).
    #[serde(default)]
    pub launch: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNotification {
    /// `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub name: Option<Option<String>>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(min_length = 1, max_length = 2000)]
    pub body: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub deep_link: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub image_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub icon_url: Option<Option<String>>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub data: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schema::nullable_condition)]
    pub conditions: Option<Option<Value>>,
    #[schema(value_type = Option<Vec<ClientId>>, max_items = 1000)]
    pub user_ids: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<ClientId>>, max_items = 10000)]
    pub external_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub scheduled_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 2419200)]
    pub ttl_seconds: Option<Option<i64>>,
    #[schema(value_type = Option<schema::Priority>)]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub collapse_key: Option<Option<String>>,
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn keep<T>(&mut self, r: Result<T, DomainError>) -> Option<T> {
        match r {
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
}

fn data(raw: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, DomainError> {
    let mut errors = Vec::new();
    let mut data = BTreeMap::new();
    for (k, v) in raw {
        match v {
            Value::String(s) => {
                data.insert(k, s);
            }
            _ => errors.push(FieldError::new(format!("data.{k}"), "must be a string")),
        }
    }
    if errors.is_empty() {
        Ok(data)
    } else {
        Err(DomainError::Invalid(errors))
    }
}

fn ttl(raw: i64) -> Result<u32, DomainError> {
    u32::try_from(raw).map_err(|_| DomainError::invalid("ttl_seconds", "must be 0 to 2419200"))
}

fn ids<T>(
    field: &str,
    raw: Vec<String>,
    parse: impl Fn(String) -> Result<T, DomainError>,
) -> Result<Vec<T>, DomainError> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        match parse(r) {
            Ok(v) => out.push(v),
            Err(_) => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                "must be 1 to 255 bytes",
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(DomainError::Invalid(errors))
    }
}

impl CreateNotification {
    /// Parses every field; one 400 names all the bad ones.
    pub fn parse(self) -> Result<(Message, bool), ApiError> {
        let mut e = Errors::default();
        let data = e.keep(data(self.data)).unwrap_or_default();
        let ttl = e.keep(self.ttl_seconds.map(ttl).transpose()).flatten();
        let priority = e
            .keep(self.priority.as_deref().map(Priority::parse).transpose())
            .flatten()
            .unwrap_or_default();
        let user_ids = e
            .keep(ids("user_ids", self.user_ids, UserId::parse))
            .unwrap_or_default();
        let external_ids = e
            .keep(ids("external_ids", self.external_ids, ExternalId::parse))
            .unwrap_or_default();
        let parsed_targets = !user_ids.is_empty() || !external_ids.is_empty();
        let message = Message {
            content: Content {
                name: self.name,
                title: self.title,
                body: self.body,
                deep_link: self.deep_link,
                image_url: self.image_url,
                icon_url: self.icon_url,
                data,
                ttl_seconds: ttl,
                priority,
                collapse_key: self.collapse_key,
            },
            targets: Targets {
                conditions: self.conditions,
                user_ids,
                external_ids,
            },
            scheduled_at: self.scheduled_at,
        };
        if let Err(DomainError::Invalid(found)) = message.validate() {
            // "name a target" is noise when the targets given were malformed.
            let had_errors = !e.0.is_empty();
            let noise = |f: &FieldError| {
                !parsed_targets
                    && had_errors
                    && f.field == "conditions"
                    && f.message.starts_with("name a target")
            };
            e.0.extend(found.into_iter().filter(|f| !noise(f)));
        }
        if e.0.is_empty() {
            Ok((message, self.launch))
        } else {
            Err(ApiError::Validation(e.0))
        }
    }
}

fn merge<T>(current: Option<T>, change: Option<Option<T>>) -> Option<T> {
    match change {
        None => current,
        Some(v) => v,
    }
}

impl PatchNotification {
    /// The message after this change.
    pub fn apply(self, current: Message) -> Result<Message, ApiError> {
        let mut e = Errors::default();
        let c = current.content;
        let t = current.targets;
        let data = match self.data {
            Some(d) => e.keep(data(d)),
            None => Some(c.data),
        };
        let ttl = match self.ttl_seconds {
            None => Some(c.ttl_seconds),
            Some(None) => Some(None),
            Some(Some(v)) => e.keep(ttl(v)).map(Some),
        };
        let priority = match self.priority.as_deref() {
            Some(p) => e.keep(Priority::parse(p)),
            None => Some(c.priority),
        };
        let user_ids = match self.user_ids {
            Some(u) => e.keep(ids("user_ids", u, UserId::parse)),
            None => Some(t.user_ids),
        };
        let external_ids = match self.external_ids {
            Some(x) => e.keep(ids("external_ids", x, ExternalId::parse)),
            None => Some(t.external_ids),
        };
        let message = (|| {
            Some(Message {
                content: Content {
                    name: merge(c.name, self.name),
                    title: self.title.unwrap_or(c.title),
                    body: self.body.unwrap_or(c.body),
                    deep_link: merge(c.deep_link, self.deep_link),
                    image_url: merge(c.image_url, self.image_url),
                    icon_url: merge(c.icon_url, self.icon_url),
                    data: data?,
                    ttl_seconds: ttl?,
                    priority: priority?,
                    collapse_key: merge(c.collapse_key, self.collapse_key),
                },
                targets: Targets {
                    conditions: merge(t.conditions, self.conditions),
                    user_ids: user_ids?,
                    external_ids: external_ids?,
                },
                scheduled_at: merge(current.scheduled_at, self.scheduled_at),
            })
        })();
        if let Some(m) = &message {
            e.keep(m.validate());
        }
        match message {
            Some(m) if e.0.is_empty() => Ok(m),
            _ => Err(ApiError::Validation(e.0)),
        }
    }
}

/// The devices a notification was resolved to.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Audience {
    total: u64,
    android: u64,
    ios: u64,
    web: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Counts {
    android: u64,
    ios: u64,
    web: u64,
}

impl From<PerPlatform> for Counts {
    fn from(p: PerPlatform) -> Self {
        Self {
            android: p.android,
            ios: p.ios,
            web: p.web,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NotificationBody {
    id: Uuid,
    #[schema(value_type = schema::NotificationStatus)]
    status: String,
    name: Option<String>,
    title: String,
    body: String,
    deep_link: Option<String>,
    image_url: Option<String>,
    icon_url: Option<String>,
    data: BTreeMap<String, String>,
    #[schema(schema_with = schema::nullable_condition)]
    conditions: Option<Value>,
    #[schema(value_type = Vec<ClientId>)]
    user_ids: Vec<String>,
    #[schema(value_type = Vec<ClientId>)]
    external_ids: Vec<String>,
    scheduled_at: Option<DateTime<Utc>>,
    #[schema(maximum = 2419200)]
    ttl_seconds: Option<u32>,
    #[schema(value_type = schema::Priority)]
    priority: String,
    collapse_key: Option<String>,
    /// Once resolved: the devices targeted, in all and per platform.
    #[schema(value_type = Option<Audience>)]
    audience: Option<Value>,
    /// Delivered, per device platform.
    sent: Counts,
    /// Not delivered (failed or dead token), per device platform.
    failed: Counts,
    error_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<NotificationRecord> for NotificationBody {
    fn from(r: NotificationRecord) -> Self {
        let c = r.message.content;
        let t = r.message.targets;
        Self {
            id: r.notification_id,
            status: r.status.as_str().to_owned(),
            name: c.name,
            title: c.title,
            body: c.body,
            deep_link: c.deep_link,
            image_url: c.image_url,
            icon_url: c.icon_url,
            data: c.data,
            conditions: t.conditions,
            user_ids: t.user_ids.iter().map(|u| u.as_str().to_owned()).collect(),
            external_ids: t
                .external_ids
                .iter()
                .map(|x| x.as_str().to_owned())
                .collect(),
            scheduled_at: r.message.scheduled_at,
            ttl_seconds: c.ttl_seconds,
            priority: match c.priority {
                Priority::High => "high",
                Priority::Normal => "normal",
            }
            .to_owned(),
            collapse_key: c.collapse_key,
            audience: r.audience,
            sent: r.sent.into(),
            failed: r.failed.into(),
            error_reason: r.error_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationBody>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
