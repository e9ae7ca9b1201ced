//! APNs over HTTP/2 with token authentication: an ES256 JWT from the
//! team's `.p8` key (`kid` = key id, `iss` = team id), renewed every 50
//! minutes (Apple refuses tokens older than an hour, and more than one
//! renewal per 20 minutes), sent as `authorization: bearer …` to
//! `POST /3/device/{token}` with `apns-topic`, `apns-push-type`,
//! `apns-priority`, `apns-expiration` and `apns-collapse-id`.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use domain::notification::message::Priority;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::PushHttp;
use super::jwt::Signer;
use super::{Outcome, Provider, PushMessage, Rendered, retry_after};

pub const PRODUCTION: &str = "https://api.push.apple.com";
pub const SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// Provider tokens are renewed after this long.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Production,
    Sandbox,
}

/// What an app stores to send through APNs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsCredentials {
    /// The `.p8` file's text.
    pub key_p8: String,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
    #[serde(default)]
    pub environment: Environment,
}

impl ApnsCredentials {
    pub fn parse(json: &Value) -> Result<(Self, Signer), String> {
        let creds: ApnsCredentials = serde_json::from_value(json.clone()).map_err(|e| {
            format!("needs key_p8, key_id, team_id, topic and optionally environment: {e}")
        })?;
        let plain =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        if !plain(&creds.key_id) || !plain(&creds.team_id) {
            return Err("key_id and team_id must be short identifiers".into());
        }
        let topic = &creds.topic;
        if topic.is_empty() || topic.len() > 255 || !topic.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("topic must be the app's bundle id".into());
        }
        let signer = Signer::es256_pem(&creds.key_p8).map_err(|e| format!("key_p8 {e}"))?;
        Ok((creds, signer))
    }
}

pub struct Apns {
    creds: ApnsCredentials,
    signer: Signer,
    base: String,
    topic: HeaderValue,
    http: PushHttp,
    /// The provider token as the `authorization` header, and when it was
    /// made. Read by every send; renewed every 50 minutes or once when
    /// Apple says it expired, whatever the number of sends that heard so.
    token: RwLock<Option<(HeaderValue, Instant)>>,
}

impl Apns {
    pub fn new(
        creds: ApnsCredentials,
        signer: Signer,
        base_url: Option<&str>,
        http: PushHttp,
    ) -> Result<Self, String> {
        let base = base_url
            .map(str::to_owned)
            .unwrap_or_else(|| {
                match creds.environment {
                    Environment::Production => PRODUCTION,
                    Environment::Sandbox => SANDBOX,
                }
                .to_owned()
            })
            .trim_end_matches('/')
            .to_owned();
        let topic = HeaderValue::try_from(creds.topic.as_str())
            .map_err(|_| "topic is not a header value".to_owned())?;
        Ok(Self {
            creds,
            signer,
            base,
            topic,
            http,
            token: RwLock::new(None),
        })
    }

    /// The cached provider token unless it is due for renewal or `refused`.
    fn current(
        slot: Option<&(HeaderValue, Instant)>,
        refused: Option<&HeaderValue>,
    ) -> Option<HeaderValue> {
        let (header, made) = slot?;
        (made.elapsed() < TOKEN_LIFETIME && Some(header) != refused).then(|| header.clone())
    }

    fn provider_token(&self, refused: Option<&HeaderValue>) -> Result<HeaderValue, Outcome> {
        if let Some(header) = self
            .token
            .read()
            .ok()
            .and_then(|t| Self::current(t.as_ref(), refused))
        {
            return Ok(header);
        }
        let mut slot = self
            .token
            .write()
            .map_err(|_| Outcome::Failed("apns: the provider token cache is poisoned".into()))?;
        if let Some(header) = Self::current(slot.as_ref(), refused) {
            return Ok(header);
        }
        let token = self
            .signer
            .jwt(
                json!({"kid": self.creds.key_id}),
                &json!({"iss": self.creds.team_id, "iat": chrono::Utc::now().timestamp()}),
            )
            .map_err(Outcome::Misconfigured)?;
        let mut header = HeaderValue::try_from(format!("bearer {token}")).map_err(|_| {
            Outcome::Misconfigured("apns: the provider token is not a header value".into())
        })?;
        header.set_sensitive(true);
        *slot = Some((header.clone(), Instant::now()));
        Ok(header)
    }

    /// The payload, made once per notification.
    fn render(message: &PushMessage) -> std::sync::Arc<Rendered> {
        message.rendered("apns", |_| Rendered {
            before_token: Self::payload(message).to_string(),
            after_token: String::new(),
        })
    }

    fn headers(&self, message: &PushMessage, authorization: HeaderValue) -> HeaderMap {
        let c = &message.content;
        let expiration = c
            .ttl_seconds
            .map_or(0, |ttl| chrono::Utc::now().timestamp() + i64::from(ttl));
        let mut headers = HeaderMap::with_capacity(7);
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(HeaderName::from_static("apns-topic"), self.topic.clone());
        headers.insert(
            HeaderName::from_static("apns-push-type"),
            HeaderValue::from_static("alert"),
        );
        let priority = match c.priority {
            Priority::High => "10",
            Priority::Normal => "5",
        };
        headers.insert(
            HeaderName::from_static("apns-priority"),
            HeaderValue::from_static(priority),
        );
        headers.insert(
            HeaderName::from_static("apns-expiration"),
            HeaderValue::from(expiration),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(tp) = &message.traceparent {
            headers.insert(super::TRACEPARENT, tp.clone());
        }
        if let Some(id) = c
            .collapse_key
            .as_deref()
            .and_then(|k| HeaderValue::try_from(k).ok())
        {
            headers.insert(HeaderName::from_static("apns-collapse-id"), id);
        }
        headers
    }

    fn payload(message: &PushMessage) -> Value {
        let c = &message.content;
        let mut aps = json!({"alert": {"title": c.title, "body": c.body}, "sound": "default"});
        if c.image_url.is_some() {
            aps["mutable-content"] = json!(1);
        }
        let mut payload = json!({"aps": aps});
        for (k, v) in &c.data {
            if k != "aps" {
                payload[k] = json!(v);
            }
        }
        if let Some(link) = &c.deep_link {
            payload["deep_link"] = json!(link);
        }
        if let Some(image) = &c.image_url {
            payload["image_url"] = json!(image);
        }
        payload
    }
}

/// A path segment: device tokens are hex, anything else is escaped.
fn segment(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Classifies an APNs error answer (`{"reason": …}`).
pub fn classify(status: u16, reason: &str, retry_after: Option<Duration>) -> Outcome {
    let text = format!("apns {status} {reason}");
    match reason {
        "BadDeviceToken" | "DeviceTokenNotForTopic" | "Unregistered" | "ExpiredToken" => {
            Outcome::InvalidToken(text)
        }
        "InvalidProviderToken"
        | "MissingProviderToken"
        | "ExpiredProviderToken"
        | "BadCertificate"
        | "BadCertificateEnvironment"
        | "Forbidden"
        | "TopicDisallowed"
        | "BadTopic"
        | "MissingTopic" => Outcome::Misconfigured(text),
        _ => match status {
            410 => Outcome::InvalidToken(text),
            429 | 500..=599 => Outcome::Retry {
                reason: text,
                retry_after,
            },
            403 => Outcome::Misconfigured(text),
            _ => Outcome::Failed(text),
        },
    }
}

#[async_trait]
impl Provider for Apns {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, message: &PushMessage, token: &str) -> Outcome {
        let Ok(uri) = format!("{}/3/device/{}", self.base, segment(token)).parse::<http::Uri>()
        else {
            return Outcome::Failed("apns: the device token makes no URL".into());
        };
        let body = Bytes::from(Self::render(message).before_token.clone());
        let mut refused: Option<HeaderValue> = None;
        loop {
            let authorization = match self.provider_token(refused.as_ref()) {
                Ok(t) => t,
                Err(o) => return o,
            };
            let headers = self.headers(message, authorization.clone());
            let answer = match self.http.post(uri.clone(), headers, body.clone()).await {
                Ok(a) => a,
                Err(f) => return f.outcome("apns"),
            };
            if answer.status == 200 {
                return Outcome::Delivered;
            }
            let after = retry_after(&answer.headers);
            let reason: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let reason = reason["reason"].as_str().unwrap_or_default();
            if reason == "ExpiredProviderToken" && refused.is_none() {
                refused = Some(authorization);
                continue;
            }
            return classify(answer.status, reason, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_classed_as_apple_documents_them() {
        for dead in [
            "BadDeviceToken",
            "DeviceTokenNotForTopic",
            "Unregistered",
            "ExpiredToken",
        ] {
            assert!(
                matches!(classify(400, dead, None), Outcome::InvalidToken(_)),
                "{dead}"
            );
        }
        assert!(matches!(classify(410, "", None), Outcome::InvalidToken(_)));
        for config in [
            "InvalidProviderToken",
            "MissingProviderToken",
            "ExpiredProviderToken",
        ] {
            assert!(
                matches!(classify(403, config, None), Outcome::Misconfigured(_)),
                "{config}"
            );
        }
        assert!(matches!(
            classify(429, "TooManyRequests", None),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(503, "ServiceUnavailable", None),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(500, "InternalServerError", None),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(413, "PayloadTooLarge", None),
            Outcome::Failed(_)
        ));
        assert_eq!(segment("ab/c?"), "ab%2Fc%3F");
    }
}
