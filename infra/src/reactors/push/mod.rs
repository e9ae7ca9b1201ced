//! Push delivery: the providers (FCM HTTP v1, APNs, Web Push, and `log`
//! for apps without credentials), their credentials, and the sender that
//! launches scheduled notifications and fans campaigns out, exactly once
//! per device but for the batch in flight at a crash. See
//! `docs/notifications.md`.
//!
//! The providers speak their documented protocols directly (FCM and APNs
//! sends over hyper, see `http`; the rest over reqwest) with `ring` for
//! the cryptography (RS256 / ES256 JWTs, ECDH, HKDF,
//! AES-GCM) rather than through provider crates: the FCM crate on
//! crates.io targets the legacy API Google shut down, the APNs crate brings
//! a second TLS stack, and the Web Push crate needs OpenSSL. What is spoken
//! is small, and tested against local servers that answer as the real ones
//! do.
//!
//! Time: schedules, leases, quotas and which credentials are active follow
//! the sender's clock (a test's manual clock). The provider-facing stamps
//! (JWT `iat`/`exp`, `apns-expiration`, an HTTP-date `Retry-After`) read
//! the wall clock on purpose: the provider checks them against its own.

pub mod apns;
pub mod config;
pub mod credentials;
pub mod ece;
pub mod fcm;
pub mod http;
pub mod jwt;
pub mod log;
pub mod sender;
pub mod webpush;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::notification::message::Content;
use uuid::Uuid;

/// A notification as every provider sends it. Providers render their
/// request body once per notification (`rendered`), not once per device.
#[derive(Debug)]
pub struct PushMessage {
    pub notification_id: Uuid,
    pub content: Content,
    /// The `traceparent` every send of it carries (see `telemetry::context`).
    pub traceparent: Option<::http::HeaderValue>,
    rendered: std::sync::Mutex<std::collections::HashMap<&'static str, Arc<Rendered>>>,
}

/// A provider's body for this message, around the device token.
#[derive(Debug)]
pub struct Rendered {
    pub before_token: String,
    pub after_token: String,
}

impl Rendered {
    /// The body for one device (the token JSON-escaped).
    pub fn with_token(&self, token: &str) -> String {
        let escaped = serde_json::to_string(token).unwrap_or_else(|_| "\"\"".into());
        let mut body =
            String::with_capacity(self.before_token.len() + escaped.len() + self.after_token.len());
        body.push_str(&self.before_token);
        body.push_str(&escaped);
        body.push_str(&self.after_token);
        body
    }
}

impl PushMessage {
    pub fn new(notification_id: Uuid, content: Content) -> Self {
        Self {
            notification_id,
            content,
            traceparent: None,
            rendered: Default::default(),
        }
    }

    /// The message, its sends carrying `traceparent`.
    pub fn traced(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent.and_then(|t| ::http::HeaderValue::from_str(&t).ok());
        self
    }

    /// `provider`'s rendering, made once by `render`.
    pub fn rendered(
        &self,
        provider: &'static str,
        render: impl FnOnce(&Content) -> Rendered,
    ) -> Arc<Rendered> {
        if let Ok(mut cache) = self.rendered.lock() {
            return cache
                .entry(provider)
                .or_insert_with(|| Arc::new(render(&self.content)))
                .clone();
        }
        Arc::new(render(&self.content))
    }
}

/// The W3C Trace Context header on every send.
pub(crate) const TRACEPARENT: ::http::HeaderName = ::http::HeaderName::from_static("traceparent");

/// What a provider said about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The token is dead (unregistered, expired, not for this app): the
    /// device leaves future audiences until it registers a new one.
    InvalidToken(String),
    /// Worth trying again, after at least `retry_after` if given.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The credentials or the app's configuration are wrong: every message
    /// would fail alike, so the notification stops with this reason.
    Misconfigured(String),
    /// This message to this device was refused; not retried.
    Failed(String),
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// `fcm`, `apns`, `webpush`, `log`.
    fn name(&self) -> &'static str;

    async fn send(&self, message: &PushMessage, token: &str) -> Outcome;
}

/// How an HTTP status the provider did not explain further is classed.
pub(crate) fn by_status(provider: &str, status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        429 | 500..=599 => Outcome::Retry {
            reason: format!("{provider} answered {status}"),
            retry_after,
        },
        401 | 403 => {
            Outcome::Misconfigured(format!("{provider} refused the credentials ({status})"))
        }
        _ => Outcome::Failed(format!("{provider} answered {status}")),
    }
}

/// A `Retry-After` header in seconds (HTTP dates are read as well).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    crate::reactors::webhooks::policy::parse_retry_after(raw, chrono::Utc::now())
}

/// A transport error in a few words (no URL: it may carry a token).
pub(crate) fn transport(provider: &str, e: &reqwest::Error) -> Outcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    Outcome::Retry {
        reason: format!("{provider}: {what}"),
        retry_after: None,
    }
}
