//! One HTTP delivery: the signed request, and what the receiver answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::webhook::settings::Settings;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::address::{AddressPolicy, GuardedResolver};
use super::policy::parse_retry_after;
use super::signature;
use crate::secrets::Secret;

/// Response bodies are kept up to this many bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// A receiver credential, as stored (sealed) in the vault.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    Bearer(String),
    Basic { username: String, password: String },
    Header { name: String, value: String },
}

impl Credential {
    /// The header carrying it.
    fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        use base64::Engine;
        let (name, value) = match self {
            Credential::Bearer(token) => ("authorization".to_owned(), format!("Bearer {token}")),
            Credential::Basic { username, password } => (
                "authorization".to_owned(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"))
                ),
            ),
            Credential::Header { name, value } => (name.to_ascii_lowercase(), value.clone()),
        };
        let mut value = HeaderValue::from_str(&value).ok()?;
        value.set_sensitive(true);
        Some((HeaderName::from_bytes(name.as_bytes()).ok()?, value))
    }
}

/// What a delivery needs beyond the message.
pub struct Request<'a> {
    pub settings: &'a Settings,
    pub signing_keys: &'a [Vec<u8>],
    pub credential: Option<&'a Secret<Credential>>,
    /// Encrypt the body to this receiver key (the endpoint's
    /// `encryption_public_key`, parsed once per endpoint).
    pub encrypt_to: Option<&'a super::jwe::ReceiverKey>,
    pub message_id: &'a str,
    pub body: &'a str,
    /// The message's own URL (its placeholders rendered), else the endpoint's.
    pub url: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
    /// W3C Trace Context of the delivery (see `telemetry::context`).
    pub traceparent: Option<&'a str>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Response {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: String, started: Instant) -> Self {
        Self {
            status: None,
            body: None,
            error: Some(error),
            retry_after: None,
            duration: started.elapsed(),
        }
    }
}

/// The client every delivery shares: no redirects, no proxies, the SSRF
/// guard as its resolver, HTTP/1.1 and HTTP/2 connections reused.
pub fn client(
    timeout: Duration,
    addresses: Arc<AddressPolicy>,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(GuardedResolver(addresses))
        .build()
}

pub async fn send(
    client: &reqwest::Client,
    addresses: &AddressPolicy,
    request: Request<'_>,
) -> Response {
    let started = Instant::now();
    let url = match url::Url::parse(request.url.unwrap_or(request.settings.url.as_str())) {
        Ok(u) => u,
        Err(e) => return Response::failed(format!("invalid URL: {e}"), started),
    };
    if let Err(e) = addresses.check_literal(&url) {
        return Response::failed(format!("blocked: {e}"), started);
    }
    let timestamp = request.timestamp.timestamp();
    let mut headers = HeaderMap::new();
    for (name, value) in request.settings.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    if let Some((name, value)) = request.credential.and_then(|c| c.expose().header()) {
        headers.insert(name, value);
    }
    // A method without a body signs the empty body it sends; an encrypted
    // endpoint's signature covers the JWE as sent.
    let has_body = request.settings.method.has_body();
    let encrypted = match (request.encrypt_to, has_body) {
        (Some(key), true) => match key.encrypt(request.body.as_bytes()) {
            Ok(jwe) => Some(jwe),
            Err(e) => return Response::failed(format!("cannot encrypt: {e}"), started),
        },
        _ => None,
    };
    let body = match (&encrypted, has_body) {
        (Some(jwe), _) => jwe.as_str(),
        (None, true) => request.body,
        (None, false) => "",
    };
    let signature = signature::header(
        request.signing_keys,
        request.message_id,
        timestamp,
        body.as_bytes(),
    );
    if let Some(tp) = request
        .traceparent
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
    let fixed = [
        has_body.then(|| {
            let kind = if encrypted.is_some() {
                super::jwe::CONTENT_TYPE
            } else {
                "application/json"
            };
            ("content-type", kind.to_owned())
        }),
        Some(("webhook-id", request.message_id.to_owned())),
        Some(("webhook-timestamp", timestamp.to_string())),
        Some(("webhook-signature", signature)),
    ];
    for (name, value) in fixed.into_iter().flatten() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let method = reqwest::Method::from_bytes(request.settings.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::POST);
    let mut outgoing = client.request(method, url).headers(headers);
    if has_body {
        outgoing = outgoing.body(body.to_owned());
    }
    let result = outgoing.send().await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => return Response::failed(describe(&e), started),
    };
    let status = response.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, request.timestamp))
    } else {
        None
    };
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    let mut error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(describe(&e));
                break;
            }
        }
    }
    if (300..400).contains(&status) {
        error = Some(format!(
            "redirects are not followed (to {})",
            location.as_deref().unwrap_or("nowhere")
        ));
    }
    Response {
        status: Some(status),
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        error,
        retry_after,
        duration: started.elapsed(),
    }
}

/// A transport error in a few words, without the URL.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !s_text.is_empty() && !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
