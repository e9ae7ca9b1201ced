//! An FCM HTTP v1 stand-in: the OAuth2 token endpoint (verifies the RS256
//! assertion against the service account's key) and
//! `POST /v1/projects/{project}/messages:send`, answering by token prefix:
//!
//! | token prefix | answer |
//! |---|---|
//! | `dead-` | 404 `UNREGISTERED` |
//! | `bad-` | 400 `INVALID_ARGUMENT` (not a valid registration token) |
//! | `busy-` | 503 `UNAVAILABLE` with Retry-After: 1, once; then 200 |
//! | `quota-` | 429 `QUOTA_EXCEEDED`, once; then 200 |
//! | `internal-` | 500 `INTERNAL`, always |
//! | `auth-` | 401 `THIRD_PARTY_AUTH_ERROR` |
//! | `mismatch-` | 403 `SENDER_ID_MISMATCH` |
//! | `hang-once-` | no answer the first time; then 200 |
//! | anything else | 200 |
//!
//! Every message request is also noted as it arrives ([`FakeFcm::arrivals`]:
//! when, which device token, which access token, so which sender), and
//! [`FakeFcm::delay_sends`] makes each one take a while before it is
//! answered (none by default), as a real provider's round trip does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ring::signature::{self, RsaKeyPair};
use serde_json::{Value, json};

use super::{Log, Request, headers, verify_jwt};

pub const PROJECT: &str = "herald-test";
pub const CLIENT_EMAIL: &str = "herald@herald-test.iam.gserviceaccount.com";
pub const KEY_PEM: &str = include_str!("../fixtures/fcm-test-key.pem");

#[derive(Clone)]
struct Shared {
    log: Log,
    public_key: Arc<Vec<u8>>,
    token_url: String,
    issued: Arc<AtomicUsize>,
    /// Access tokens numbered below this are revoked.
    valid_from: Arc<AtomicUsize>,
    reject_oauth: Arc<AtomicBool>,
    oauth_log: Log,
    /// Microseconds each message request waits before it is answered.
    delay_micros: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
}

/// A message request as it arrived (before any delay or answer).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    /// The device token.
    pub token: String,
    /// The bearer access token it came with (each Herald process obtains
    /// its own, so this tells the senders apart).
    pub access: String,
}

pub struct FakeFcm {
    pub addr: SocketAddr,
    /// Message requests.
    pub log: Log,
    /// Token requests (the verified assertion's claims as payload).
    pub oauth: Log,
    shared: Shared,
}

fn der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_else(|e| panic!("fixture key: {e}"))
}

fn fcm_error(status: StatusCode, code: &str, grpc: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": grpc,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}],
        }})),
    )
        .into_response()
}

async fn token(State(s): State<Shared>, body: Bytes) -> Response {
    let form = url_form(&body);
    let claims = form
        .get("assertion")
        .and_then(|a| verify_jwt(a, &signature::RSA_PKCS1_2048_8192_SHA256, &s.public_key))
        .map(|(_, c)| c);
    let ok = !s.reject_oauth.load(Ordering::Relaxed)
        && form.get("grant_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && claims.as_ref().is_some_and(|c| {
            c["iss"] == CLIENT_EMAIL
                && c["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                && c["aud"] == json!(s.token_url)
                && c["exp"].as_i64() > c["iat"].as_i64()
        });
    s.oauth_log.record(Request {
        token: "oauth".into(),
        status: if ok { 200 } else { 400 },
        payload: claims.unwrap_or(Value::Null),
        headers: HashMap::new(),
    });
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            ),
        )
            .into_response();
    }
    let n = s.issued.fetch_add(1, Ordering::Relaxed) + 1;
    axum::Json(json!({"access_token": format!("fake-access-{n}"), "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn send(State(s): State<Shared>, uri: Uri, map: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/token" {
        return token(State(s), body).await;
    }
    if uri.path() != format!("/v1/projects/{PROJECT}/messages:send") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let authorised = map
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer fake-access-"))
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| {
            n >= s.valid_from.load(Ordering::Relaxed) && n <= s.issued.load(Ordering::Relaxed)
        });
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = message["message"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut arrivals) = s.arrivals.lock() {
        arrivals.push(Arrival {
            at: Instant::now(),
            token: token.clone(),
            access: map
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let delay = s.delay_micros.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    let before = s.log.seen(&token);
    let response = if !authorised {
        fcm_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        )
    } else if token.starts_with("dead-") {
        fcm_error(
            StatusCode::NOT_FOUND,
            "UNREGISTERED",
            "NOT_FOUND",
            "Requested entity was not found.",
        )
    } else if token.starts_with("bad-") {
        fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        )
    } else if token.starts_with("busy-") && before == 0 {
        let mut r = fcm_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "UNAVAILABLE",
            "The service is unavailable.",
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        r
    } else if token.starts_with("quota-") && before == 0 {
        fcm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "QUOTA_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            "Quota exceeded.",
        )
    } else if token.starts_with("internal-") {
        fcm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INTERNAL",
            "Internal error.",
        )
    } else if token.starts_with("auth-") {
        fcm_error(
            StatusCode::UNAUTHORIZED,
            "THIRD_PARTY_AUTH_ERROR",
            "UNAUTHENTICATED",
            "Auth error from APNS or Web Push Service",
        )
    } else if token.starts_with("mismatch-") {
        fcm_error(
            StatusCode::FORBIDDEN,
            "SENDER_ID_MISMATCH",
            "PERMISSION_DENIED",
            "SenderId mismatch",
        )
    } else if token.starts_with("hang-once-") && before == 0 {
        s.log.record(Request {
            token,
            status: 0,
            payload: message["message"].clone(),
            headers: headers(&map),
        });
        return std::future::pending().await;
    } else {
        axum::Json(json!({"name": format!("projects/{PROJECT}/messages/{}", uuid::Uuid::new_v4())}))
            .into_response()
    };
    s.log.record(Request {
        token,
        status: response.status().as_u16(),
        payload: message["message"].clone(),
        headers: headers(&map),
    });
    response
}

impl FakeFcm {
    pub async fn start() -> Self {
        let key =
            RsaKeyPair::from_pkcs8(&der(KEY_PEM)).unwrap_or_else(|e| panic!("fixture key: {e}"));
        // The token URL is known once bound: bind first, then serve.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let shared = Shared {
            log: Log::default(),
            public_key: Arc::new(key.public().as_ref().to_vec()),
            token_url: format!("http://{addr}/token"),
            issued: Arc::new(AtomicUsize::new(0)),
            valid_from: Arc::new(AtomicUsize::new(1)),
            reject_oauth: Arc::new(AtomicBool::new(false)),
            oauth_log: Log::default(),
            delay_micros: Arc::new(AtomicU64::new(0)),
            arrivals: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .fallback(send)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            log: shared.log.clone(),
            oauth: shared.oauth_log.clone(),
            shared,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its OAuth token endpoint (Herald's `fcm_token_url`).
    pub fn token_url(&self) -> String {
        self.shared.token_url.clone()
    }

    /// A service account key file for this stand-in.
    pub fn service_account(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-1",
            "private_key": KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": self.shared.token_url,
        })
    }

    /// Access tokens handed out so far.
    pub fn tokens_issued(&self) -> usize {
        self.shared.issued.load(Ordering::Relaxed)
    }

    /// Revokes every access token handed out so far (sends with one get 401
    /// `UNAUTHENTICATED`, as FCM answers a revoked or expired token).
    pub fn revoke_access_tokens(&self) {
        let issued = self.shared.issued.load(Ordering::Relaxed);
        self.shared.valid_from.store(issued + 1, Ordering::Relaxed);
    }

    /// From now on, refuse every assertion.
    pub fn reject_oauth(&self) {
        self.shared.reject_oauth.store(true, Ordering::Relaxed);
    }

    /// From now on, every message request waits `delay` before it is
    /// answered (zero: answered at once, the default).
    pub fn delay_sends(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// Every message request so far, in order of arrival.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared
            .arrivals
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }
}
