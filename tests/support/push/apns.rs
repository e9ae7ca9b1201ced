//! An APNs stand-in over cleartext HTTP/2: `POST /3/device/{token}`,
//! provider tokens (ES256, `kid`/`iss`) verified against the team key, the
//! `apns-*` headers checked, answers by token:
//!
//! | token | answer |
//! |---|---|
//! | `dead…` | 410 `Unregistered` |
//! | `expired…` | 410 `ExpiredToken` |
//! | `badtoken…` | 400 `BadDeviceToken` |
//! | `othertopic…` | 400 `DeviceTokenNotForTopic` |
//! | `busy…` | 429 `TooManyRequests`, once; then 200 |
//! | `stale…` | 403 `ExpiredProviderToken` for the first provider token seen; then 200 |
//! | `refused…` | 403 `InvalidProviderToken` |
//! | anything else | 200 |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use infra::reactors::push::jwt::Signer;
use ring::signature;
use serde_json::{Value, json};

use super::{Log, Request, headers, serve};

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "TEAM456789";
pub const TOPIC: &str = "com.example.herald";

#[derive(Clone)]
struct Shared {
    log: Log,
    public_key: Arc<Vec<u8>>,
    /// Provider tokens seen, in order.
    tokens: Arc<Mutex<Vec<String>>>,
    /// The client ends of the connections requests came on.
    connections: Arc<Mutex<HashSet<SocketAddr>>>,
}

pub struct FakeApns {
    pub addr: SocketAddr,
    pub log: Log,
    /// The team's `.p8` key.
    pub key_p8: String,
    shared: Shared,
}

fn reason(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({"reason": reason}))).into_response()
}

async fn device(
    State(s): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    version: Version,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(mut seen) = s.connections.lock() {
        seen.insert(peer);
    }
    let Some(token) = uri.path().strip_prefix("/3/device/").map(str::to_owned) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let h = headers(&map);
    let provider_token = h
        .get("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .unwrap_or_default()
        .to_owned();
    let verified = super::verify_jwt(
        &provider_token,
        &signature::ECDSA_P256_SHA256_FIXED,
        &s.public_key,
    )
    .is_some_and(|(header, claims)| {
        header["alg"] == "ES256"
            && header["kid"] == KEY_ID
            && claims["iss"] == TEAM_ID
            && claims["iat"].is_i64()
    });
    let first_provider_token = {
        let Ok(mut seen) = s.tokens.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if !seen.contains(&provider_token) {
            seen.push(provider_token.clone());
        }
        seen.first() == Some(&provider_token)
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let before = s.log.seen(&token);
    let headers_ok = version == Version::HTTP_2
        && h.get("apns-topic").map(String::as_str) == Some(TOPIC)
        && h.get("apns-push-type").map(String::as_str) == Some("alert")
        && h.get("apns-priority")
            .is_some_and(|p| p == "10" || p == "5")
        && h.get("apns-expiration")
            .is_some_and(|e| e.parse::<i64>().is_ok());
    let response = if !verified {
        reason(StatusCode::FORBIDDEN, "InvalidProviderToken")
    } else if !headers_ok {
        reason(StatusCode::BAD_REQUEST, "BadRequestHeaders")
    } else if token.starts_with("dead") {
        reason(StatusCode::GONE, "Unregistered")
    } else if token.starts_with("expired") {
        reason(StatusCode::GONE, "ExpiredToken")
    } else if token.starts_with("badtoken") {
        reason(StatusCode::BAD_REQUEST, "BadDeviceToken")
    } else if token.starts_with("othertopic") {
        reason(StatusCode::BAD_REQUEST, "DeviceTokenNotForTopic")
    } else if token.starts_with("busy") && before == 0 {
        reason(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests")
    } else if token.starts_with("stale") && first_provider_token {
        reason(StatusCode::FORBIDDEN, "ExpiredProviderToken")
    } else if token.starts_with("refused") {
        reason(StatusCode::FORBIDDEN, "InvalidProviderToken")
    } else {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(
            "apns-id",
            axum::http::HeaderValue::from_static("00000000-0000-0000-0000-000000000001"),
        );
        r
    };
    let mut recorded = h;
    recorded.insert("provider-token".into(), provider_token);
    s.log.record(Request {
        token,
        status: response.status().as_u16(),
        payload,
        headers: recorded,
    });
    response
}

impl FakeApns {
    pub async fn start() -> Self {
        let (pkcs8, public) = Signer::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        use base64::Engine;
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8)
        );
        let shared = Shared {
            log: Log::default(),
            public_key: Arc::new(public),
            tokens: Arc::new(Mutex::new(Vec::new())),
            connections: Arc::new(Mutex::new(HashSet::new())),
        };
        let app = axum::Router::new()
            .fallback(device)
            .with_state(shared.clone());
        let addr = serve(app).await;
        Self {
            addr,
            log: shared.log.clone(),
            key_p8: pem,
            shared,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The credentials an app stores for this stand-in.
    pub fn credentials(&self) -> Value {
        json!({"key_p8": self.key_p8, "key_id": KEY_ID, "team_id": TEAM_ID, "topic": TOPIC, "environment": "sandbox"})
    }

    /// How many connections requests came on.
    pub fn connections(&self) -> usize {
        self.shared
            .connections
            .lock()
            .map(|c| c.len())
            .unwrap_or_default()
    }

    /// Distinct provider tokens seen.
    pub fn provider_tokens(&self) -> HashSet<String> {
        self.shared
            .tokens
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}
