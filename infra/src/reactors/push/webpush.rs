//! Web Push (RFC 8030) with VAPID (RFC 8292) and `aes128gcm` payload
//! encryption (RFC 8291). A device's push token is its browser
//! subscription: `{"endpoint": "https://…", "keys": {"p256dh": …, "auth": …}}`.
//!
//! The endpoint is chosen by whoever registered the device, so requests go
//! through the same SSRF guard as webhooks (public addresses only, checked
//! again at connect time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::notification::message::Priority;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::jwt::{Signer, b64url, b64url_decode};
use super::{Outcome, Provider, PushMessage, ece, retry_after, transport};
use crate::reactors::webhooks::address::AddressPolicy;

/// A message waits this long for an offline browser when no TTL is set.
pub const DEFAULT_TTL: u32 = 2_419_200;
/// VAPID tokens live 12 hours and are reused for an hour.
const VAPID_LIFETIME: i64 = 12 * 3600;
const VAPID_REUSE: Duration = Duration::from_secs(3600);

/// What an app stores: the VAPID contact and key pair.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct VapidCredentials {
    /// `mailto:…` or `https://…`: how push services reach the sender.
    pub subject: String,
    /// Uncompressed P-256 point, base64url.
    pub public_key: String,
    /// Either the 32-byte private scalar (base64url)…
    #[serde(default)]
    pub private_key: Option<String>,
    /// …or a PKCS#8 document (base64url), when Herald generated the pair.
    #[serde(default)]
    pub pkcs8: Option<String>,
}

impl VapidCredentials {
    /// Checks the subject and that the keys make a pair.
    pub fn signer(&self) -> Result<Signer, String> {
        if !(self.subject.starts_with("mailto:") || self.subject.starts_with("https://")) {
            return Err("subject must be a mailto: or https: URL".into());
        }
        let public = b64url_decode(&self.public_key).ok_or("public_key is not base64url")?;
        let signer = match (&self.private_key, &self.pkcs8) {
            (Some(private), _) => Signer::es256_raw(
                &b64url_decode(private).ok_or("private_key is not base64url")?,
                &public,
            )?,
            (None, Some(pkcs8)) => {
                Signer::es256_pkcs8(&b64url_decode(pkcs8).ok_or("pkcs8 is not base64url")?)?
            }
            (None, None) => return Err("private_key is required with public_key".into()),
        };
        if signer.public_key() != public {
            return Err("public_key does not belong to the private key".into());
        }
        Ok(signer)
    }

    /// A new key pair for `subject`.
    pub fn generate(subject: &str) -> Result<Self, String> {
        let (pkcs8, public) = Signer::generate_es256()?;
        Ok(Self {
            subject: subject.to_owned(),
            public_key: b64url(&public),
            private_key: None,
            pkcs8: Some(b64url(&pkcs8)),
        })
    }
}

/// A browser's push subscription, as registered for a device's token.
pub struct Subscription {
    pub endpoint: url::Url,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
}

#[derive(Deserialize)]
struct RawSubscription {
    endpoint: String,
    keys: RawKeys,
}

#[derive(Deserialize)]
struct RawKeys {
    p256dh: String,
    auth: String,
}

impl Subscription {
    /// Parses a token; the error says what is wrong with it. Used when a
    /// device registers (a 400) and again when sending (an invalid token).
    pub fn parse(token: &str) -> Result<Self, String> {
        let raw: RawSubscription = serde_json::from_str(token).map_err(|_| {
            "the token is not a push subscription ({\"endpoint\", \"keys\": {\"p256dh\", \"auth\"}})"
                .to_owned()
        })?;
        let endpoint = url::Url::parse(&raw.endpoint)
            .map_err(|_| "the subscription endpoint is not a URL".to_owned())?;
        if !matches!(endpoint.scheme(), "https" | "http") {
            return Err("the subscription endpoint is not http(s)".into());
        }
        let (Some(p256dh), Some(auth)) = (
            b64url_decode(&raw.keys.p256dh),
            b64url_decode(&raw.keys.auth),
        ) else {
            return Err("the subscription keys are not base64url".into());
        };
        Ok(Self {
            endpoint,
            p256dh,
            auth,
        })
    }
}

pub struct WebPush {
    subject: String,
    public_key: String,
    signer: Signer,
    http: reqwest::Client,
    addresses: Arc<AddressPolicy>,
    /// Audience (origin) -> VAPID token and when it was made.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl WebPush {
    pub fn new(
        creds: &VapidCredentials,
        signer: Signer,
        http: reqwest::Client,
        addresses: Arc<AddressPolicy>,
    ) -> Self {
        Self {
            subject: creds.subject.clone(),
            public_key: creds.public_key.clone(),
            signer,
            http,
            addresses,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    async fn vapid(&self, audience: &str) -> Result<String, Outcome> {
        let mut tokens = self.tokens.lock().await;
        if let Some((token, made)) = tokens.get(audience)
            && made.elapsed() < VAPID_REUSE
        {
            return Ok(token.clone());
        }
        let exp = chrono::Utc::now().timestamp() + VAPID_LIFETIME;
        let token = self
            .signer
            .jwt(
                json!({}),
                &json!({"aud": audience, "exp": exp, "sub": self.subject}),
            )
            .map_err(Outcome::Misconfigured)?;
        tokens.insert(audience.to_owned(), (token.clone(), Instant::now()));
        Ok(token)
    }
}

#[async_trait]
impl Provider for WebPush {
    fn name(&self) -> &'static str {
        "webpush"
    }

    async fn send(&self, message: &PushMessage, token: &str) -> Outcome {
        let sub = match Subscription::parse(token) {
            Ok(sub) => sub,
            Err(e) => return Outcome::InvalidToken(format!("webpush: {e}")),
        };
        if let Err(e) = self.addresses.check_literal(&sub.endpoint) {
            return Outcome::Failed(format!("webpush: blocked: {e}"));
        }
        let Subscription {
            endpoint,
            p256dh,
            auth,
        } = sub;
        let plaintext = message.content.payload().to_string();
        let body = match ece::encrypt(&p256dh, &auth, plaintext.as_bytes()) {
            Ok(b) => b,
            Err(e) => return Outcome::InvalidToken(format!("webpush: {e}")),
        };
        let audience = endpoint.origin().ascii_serialization();
        let vapid = match self.vapid(&audience).await {
            Ok(t) => t,
            Err(o) => return o,
        };
        let c = &message.content;
        let mut request = self
            .http
            .post(endpoint)
            .header(
                "authorization",
                format!("vapid t={vapid}, k={}", self.public_key),
            )
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", c.ttl_seconds.unwrap_or(DEFAULT_TTL).to_string())
            .header(
                "urgency",
                match c.priority {
                    Priority::High => "high",
                    Priority::Normal => "normal",
                },
            )
            .body(body);
        if let Some(topic) = &c.collapse_key {
            request = request.header("topic", topic);
        }
        if let Some(tp) = &message.traceparent {
            request = request.header(super::TRACEPARENT, tp.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport("webpush", &e),
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        match status {
            200..=299 => Outcome::Delivered,
            404 | 410 => {
                Outcome::InvalidToken(format!("webpush {status}: the subscription is gone"))
            }
            401 | 403 => Outcome::Misconfigured(format!(
                "webpush {status}: the VAPID credentials were refused"
            )),
            413 => Outcome::Failed("webpush 413: the payload is too large".into()),
            _ => super::by_status("webpush", status, after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapid_keys_must_pair_and_subjects_must_be_contacts() {
        let creds =
            VapidCredentials::generate("mailto:ops@example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(creds.signer().is_ok());
        let mut wrong = creds.clone();
        wrong.public_key = VapidCredentials::generate("mailto:x@y.z")
            .map(|c| c.public_key)
            .unwrap_or_default();
        assert!(wrong.signer().is_err());
        let mut no_contact = creds;
        no_contact.subject = "ops@example.com".into();
        assert!(no_contact.signer().is_err());
    }
}
