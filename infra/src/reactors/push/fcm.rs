//! FCM HTTP v1: a service account's key signs a JWT (RS256), exchanged at
//! Google's token endpoint for an OAuth2 access token (cached until shortly
//! before it expires), which authorises
//! `POST /v1/projects/{project}/messages:send`.
//!
//! The token endpoint is the operator's (`HERALD_FCM_TOKEN_URL`, default
//! Google's), never the `token_uri` of the tenant's key file: that field is
//! written by whoever uploads the credentials, and following it would let
//! an app admin make Herald POST to an internal address and read the answer.
//!
//! Errors are read from `error.details[].errorCode` (the FcmError detail),
//! falling back to `error.status`: `UNREGISTERED` and token-related
//! `INVALID_ARGUMENT` mean a dead token; `UNAVAILABLE`, `INTERNAL` and
//! `QUOTA_EXCEEDED` are retried; `THIRD_PARTY_AUTH_ERROR` and
//! `SENDER_ID_MISMATCH` are configuration errors.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::http::PushHttp;
use super::jwt::Signer;
use super::{Outcome, Provider, PushMessage, retry_after, transport};
use domain::notification::message::Priority;

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Access tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The fields of a Google service account key file that FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub private_key: String,
    pub client_email: String,
    // `token_uri` is read by nobody: see the module's documentation.
}

impl ServiceAccount {
    /// Parses and checks a service account JSON (its key must sign).
    pub fn parse(json: &Value) -> Result<(Self, Signer), String> {
        let account: ServiceAccount = serde_json::from_value(json.clone())
            .map_err(|e| format!("is not a service account key file: {e}"))?;
        if account.project_id.is_empty() || account.client_email.is_empty() {
            return Err("needs project_id and client_email".into());
        }
        let signer =
            Signer::rs256_pem(&account.private_key).map_err(|e| format!("private_key {e}"))?;
        Ok((account, signer))
    }
}

pub struct Fcm {
    account: ServiceAccount,
    signer: Signer,
    token_url: String,
    send_url: http::Uri,
    /// Sends.
    http: PushHttp,
    /// The OAuth token exchange.
    oauth: reqwest::Client,
    /// The access token, as the `Authorization` header it goes in, and when
    /// to renew it. Read by every send; written once an hour.
    token: RwLock<Option<(HeaderValue, Instant)>>,
    /// Held while a token is fetched: concurrent sends wait for one exchange.
    fetching: Mutex<()>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl Fcm {
    pub fn new(
        account: ServiceAccount,
        signer: Signer,
        base_url: &str,
        token_url: Option<&str>,
        http: PushHttp,
        oauth: reqwest::Client,
    ) -> Result<Self, String> {
        let token_url = token_url.unwrap_or(DEFAULT_TOKEN_URI).to_owned();
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            base_url.trim_end_matches('/'),
            account.project_id
        );
        let send_url: http::Uri = send_url
            .parse()
            .map_err(|e| format!("the FCM URL {send_url} is invalid: {e}"))?;
        Ok(Self {
            account,
            signer,
            token_url,
            send_url,
            http,
            oauth,
            token: RwLock::new(None),
            fetching: Mutex::new(()),
        })
    }

    /// The cached `Authorization` header, unless it is due for renewal or is
    /// `refused` (FCM turned it down).
    fn cached(&self, refused: Option<&HeaderValue>) -> Option<HeaderValue> {
        let token = self.token.read().ok()?;
        let (header, until) = token.as_ref()?;
        (Instant::now() < *until && Some(header) != refused).then(|| header.clone())
    }

    /// A valid `Authorization` header: cached, or from a fresh exchange (one
    /// at a time; sends that waited for it use its result).
    async fn authorization(&self, refused: Option<&HeaderValue>) -> Result<HeaderValue, Outcome> {
        if let Some(header) = self.cached(refused) {
            return Ok(header);
        }
        let _one = self.fetching.lock().await;
        if let Some(header) = self.cached(refused) {
            return Ok(header);
        }
        let (token, lifetime) = self.exchange().await?;
        let mut header = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Outcome::Misconfigured("fcm: the token endpoint answered an unusable token".into())
        })?;
        header.set_sensitive(true);
        if let Ok(mut cached) = self.token.write() {
            *cached = Some((header.clone(), Instant::now() + lifetime));
        }
        Ok(header)
    }

    /// Exchanges a fresh assertion for an access token and its lifetime
    /// (less the renewal margin).
    async fn exchange(&self) -> Result<(String, Duration), Outcome> {
        let now = chrono::Utc::now().timestamp();
        let mut header = json!({});
        if let Some(kid) = &self.account.private_key_id {
            header["kid"] = json!(kid);
        }
        let assertion = self
            .signer
            .jwt(
                header,
                &json!({
                    "iss": self.account.client_email,
                    "scope": SCOPE,
                    "aud": self.token_url,
                    "iat": now,
                    "exp": now + 3600,
                }),
            )
            .map_err(Outcome::Misconfigured)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let response = self
            .oauth
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| transport("fcm oauth", &e))?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            let error = body["error"].as_str().unwrap_or("error");
            let detail = body["error_description"].as_str().unwrap_or_default();
            return Err(match status {
                429 | 500..=599 => Outcome::Retry {
                    reason: format!("fcm oauth answered {status}"),
                    retry_after: after,
                },
                _ => Outcome::Misconfigured(format!(
                    "fcm: the service account was refused ({error}: {detail})"
                )),
            });
        }
        let token: TokenResponse = serde_json::from_value(body).map_err(|_| {
            Outcome::Misconfigured("fcm: the token endpoint answered nonsense".into())
        })?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(RENEW_BEFORE);
        Ok((token.access_token, lifetime))
    }

    /// The request body with a marker where the token goes, split there.
    fn render(c: &domain::notification::message::Content) -> super::Rendered {
        const MARK: &str = "\u{0}herald-token\u{0}";
        let body = Self::body(c, MARK).to_string();
        let marker = serde_json::to_string(MARK).unwrap_or_default();
        let (before, after) = body.split_once(&marker).unwrap_or((&body, ""));
        super::Rendered {
            before_token: before.to_owned(),
            after_token: after.to_owned(),
        }
    }

    fn body(c: &domain::notification::message::Content, token: &str) -> Value {
        let mut data = c.data.clone();
        if let Some(link) = &c.deep_link {
            data.insert("deep_link".into(), link.clone());
        }
        let mut notification = json!({"title": c.title, "body": c.body});
        if let Some(image) = &c.image_url {
            notification["image"] = json!(image);
        }
        let mut android = json!({
            "priority": match c.priority { Priority::High => "HIGH", Priority::Normal => "NORMAL" },
        });
        if let Some(ttl) = c.ttl_seconds {
            android["ttl"] = json!(format!("{ttl}s"));
        }
        if let Some(key) = &c.collapse_key {
            android["collapse_key"] = json!(key);
        }
        if let Some(icon) = &c.icon_url {
            android["notification"] = json!({"icon": icon});
        }
        json!({"message": {
            "token": token,
            "notification": notification,
            "data": data,
            "android": android,
        }})
    }

    async fn post(
        &self,
        body: Bytes,
        authorization: &HeaderValue,
        traceparent: Option<&HeaderValue>,
    ) -> Result<(u16, Option<Duration>, Value), Outcome> {
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(AUTHORIZATION, authorization.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(tp) = traceparent {
            headers.insert(super::TRACEPARENT, tp.clone());
        }
        let answer = self
            .http
            .post(self.send_url.clone(), headers, body)
            .await
            .map_err(|f| f.outcome("fcm"))?;
        if (200..300).contains(&answer.status) {
            // The answer names the message; nothing in it is needed.
            return Ok((answer.status, None, Value::Null));
        }
        let after = retry_after(&answer.headers);
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok((answer.status, after, body))
    }
}

/// Classifies an FCM error answer.
pub fn classify(status: u16, body: &Value, retry_after: Option<Duration>) -> Outcome {
    let error = &body["error"];
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let code = details
        .iter()
        .find_map(|d| d["errorCode"].as_str())
        .or_else(|| error["status"].as_str())
        .unwrap_or("");
    let message = error["message"].as_str().unwrap_or_default();
    let about_token = details.iter().any(|d| {
        d["fieldViolations"].as_array().is_some_and(|v| {
            v.iter()
                .any(|f| f["field"].as_str().is_some_and(|f| f.contains("token")))
        })
    }) || message.to_ascii_lowercase().contains("registration token");
    let reason = if message.is_empty() {
        format!("fcm {code}")
    } else {
        format!("fcm {code}: {message}")
    };
    match code {
        "UNREGISTERED" => Outcome::InvalidToken(reason),
        "INVALID_ARGUMENT" if about_token => Outcome::InvalidToken(reason),
        "INVALID_ARGUMENT" => Outcome::Failed(reason),
        "UNAVAILABLE" | "INTERNAL" | "QUOTA_EXCEEDED" => Outcome::Retry {
            reason,
            retry_after,
        },
        "THIRD_PARTY_AUTH_ERROR"
        | "SENDER_ID_MISMATCH"
        | "PERMISSION_DENIED"
        | "UNAUTHENTICATED" => Outcome::Misconfigured(reason),
        _ => match super::by_status("fcm", status, retry_after) {
            Outcome::Failed(_) => Outcome::Failed(reason),
            Outcome::Misconfigured(_) => Outcome::Misconfigured(reason),
            other => other,
        },
    }
}

#[async_trait]
impl Provider for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, message: &PushMessage, token: &str) -> Outcome {
        let body = Bytes::from(message.rendered("fcm", Self::render).with_token(token));
        let mut refused: Option<HeaderValue> = None;
        loop {
            let authorization = match self.authorization(refused.as_ref()).await {
                Ok(h) => h,
                Err(outcome) => return outcome,
            };
            let (status, after, answer) = match self
                .post(body.clone(), &authorization, message.traceparent.as_ref())
                .await
            {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
            if (200..300).contains(&status) {
                return Outcome::Delivered;
            }
            // An access token revoked or expired early: renew once.
            if status == 401 && refused.is_none() && answer["error"]["status"] == "UNAUTHENTICATED"
            {
                refused = Some(authorization);
                continue;
            }
            return classify(status, &answer, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: &str, code: Option<&str>, message: &str) -> Value {
        let mut details = vec![];
        if let Some(code) = code {
            details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}));
        }
        json!({"error": {"code": 400, "message": message, "status": status, "details": details}})
    }

    #[test]
    fn error_codes_come_from_the_details() {
        let dead = classify(
            404,
            &error(
                "NOT_FOUND",
                Some("UNREGISTERED"),
                "Requested entity was not found.",
            ),
            None,
        );
        assert!(matches!(dead, Outcome::InvalidToken(_)), "{dead:?}");
        let bad_token = classify(
            400,
            &error(
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                "The registration token is not a valid FCM registration token",
            ),
            None,
        );
        assert!(matches!(bad_token, Outcome::InvalidToken(_)));
        let bad_payload = classify(
            400,
            &error(
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                "Invalid JSON payload",
            ),
            None,
        );
        assert!(matches!(bad_payload, Outcome::Failed(_)));
        let busy = classify(
            503,
            &error("UNAVAILABLE", Some("UNAVAILABLE"), ""),
            Some(Duration::from_secs(7)),
        );
        assert!(matches!(busy, Outcome::Retry { retry_after: Some(d), .. } if d.as_secs() == 7));
        let quota = classify(
            429,
            &error("RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), ""),
            None,
        );
        assert!(matches!(quota, Outcome::Retry { .. }));
        let apns_auth = classify(
            401,
            &error(
                "UNAUTHENTICATED",
                Some("THIRD_PARTY_AUTH_ERROR"),
                "APNs auth",
            ),
            None,
        );
        assert!(matches!(apns_auth, Outcome::Misconfigured(_)));
        let mismatch = classify(
            403,
            &error("PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), ""),
            None,
        );
        assert!(matches!(mismatch, Outcome::Misconfigured(_)));
        let field = json!({"error": {"status": "INVALID_ARGUMENT", "message": "x", "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "bad"}]}
        ]}});
        assert!(matches!(
            classify(400, &field, None),
            Outcome::InvalidToken(_)
        ));
    }
}
