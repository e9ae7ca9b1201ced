//! Local stand-ins for the push providers, written for the tests from each
//! provider's documentation: FCM HTTP v1 (with its OAuth token endpoint),
//! APNs (HTTP/2, token auth) and a Web Push service (VAPID, aes128gcm).
//! Each verifies what Herald sends (signatures, headers, encryption) and
//! answers per device token with the provider's documented errors.

pub mod apns;
pub mod fcm;
pub mod webpush;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;
use tokio::sync::watch;

/// What every stand-in records: each request, and how often each token
/// was seen (for "fail once, then succeed" behaviours).
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<LogInner>>,
    count: Arc<watch::Sender<usize>>,
}

#[derive(Default)]
struct LogInner {
    requests: Vec<Request>,
    seen: HashMap<String, usize>,
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The device token (FCM, APNs) or subscription id (Web Push).
    pub token: String,
    pub status: u16,
    /// What the device would show: title, body, data … (decrypted for Web Push).
    pub payload: Value,
    pub headers: HashMap<String, String>,
}

impl Log {
    /// Counts a request for `token`; returns how many came before it.
    pub fn seen(&self, token: &str) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let n = inner.seen.entry(token.to_owned()).or_default();
        *n += 1;
        *n - 1
    }

    pub fn record(&self, request: Request) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.requests.push(request);
            let n = inner.requests.len();
            self.count.send_replace(n);
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner
            .lock()
            .map(|i| i.requests.clone())
            .unwrap_or_default()
    }

    /// Requests answered 2xx, by token.
    pub fn delivered(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.token)
            .collect()
    }

    /// Waits for `n` recorded requests.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Request> {
        let mut rx = self.count.subscribe();
        if tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .is_err()
        {
            panic!(
                "expected {n} provider requests, got {}",
                self.requests().len()
            );
        }
        self.requests()
    }
}

/// Verifies a compact JWT: returns its header and claims if the signature
/// holds.
pub fn verify_jwt(
    token: &str,
    alg: &'static dyn signature::VerificationAlgorithm,
    public_key: &[u8],
) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    UnparsedPublicKey::new(alg, public_key)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    Some((header, claims))
}

/// Serves `app` on a free local port (HTTP/1.1 and cleartext HTTP/2).
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        // Handlers may ask which connection a request came on.
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// Lower-cased header map as strings.
pub fn headers(map: &axum::http::HeaderMap) -> HashMap<String, String> {
    map.iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}
