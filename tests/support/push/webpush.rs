//! A Web Push service stand-in: hands out browser-like subscriptions
//! (a P-256 key and an auth secret each), verifies VAPID (RFC 8292) and
//! decrypts `aes128gcm` bodies (RFC 8291 / 8188) as a user agent would —
//! written here from the RFCs, not with Herald's code. Answers by
//! subscription id: `gone-…` 410, `notfound-…` 404, `busy-…` 429 with
//! Retry-After once, `forbidden-…` 403; anything else 201.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature;
use serde_json::{Value, json};

use super::{Log, Request, headers, serve};

struct Keys {
    private: EphemeralPrivateKey,
    public: Vec<u8>,
    auth: [u8; 16],
}

#[derive(Clone)]
struct Shared {
    log: Log,
    origin: Arc<Mutex<String>>,
    /// Subscription id -> its keys (a user agent's; usable for one decryption).
    keys: Arc<Mutex<HashMap<String, Keys>>>,
}

pub struct FakeWebPush {
    pub addr: SocketAddr,
    pub log: Log,
    shared: Shared,
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

/// RFC 8291 decryption by the user agent.
fn decrypt(keys: Keys, body: &[u8]) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let idlen = usize::from(*body.get(20)?);
    let as_public = body.get(21..21 + idlen)?.to_vec();
    let record = body.get(21 + idlen..)?;
    let ecdh = agreement::agree_ephemeral(
        keys.private,
        &UnparsedPublicKey::new(&ECDH_P256, &as_public),
        |s| s.to_vec(),
    )
    .ok()?;
    let prk_key = hmac256(&keys.auth, &[&ecdh]);
    let ikm = hmac256(
        &prk_key,
        &[b"WebPush: info\0", &keys.public, &as_public, &[1]],
    );
    let prk = hmac256(salt, &[&ikm]);
    let cek = hmac256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac256(&prk, &[b"Content-Encoding: nonce\0", &[1]]);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek[..16]).ok()?);
    let mut buf = record.to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce[..12]).ok()?,
            Aad::empty(),
            &mut buf,
        )
        .ok()?;
    // Strip the padding: trailing zeros, then the 0x02 delimiter.
    let end = plain.iter().rposition(|b| *b != 0)?;
    (plain[end] == 2).then(|| plain[..end].to_vec())
}

async fn push(State(s): State<Shared>, uri: Uri, map: HeaderMap, body: Bytes) -> Response {
    let Some(id) = uri.path().strip_prefix("/push/").map(str::to_owned) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let h = headers(&map);
    let before = s.log.seen(&id);
    let origin = s.origin.lock().map(|o| o.clone()).unwrap_or_default();
    let vapid_ok = h.get("authorization").is_some_and(|a| {
        let Some(rest) = a.strip_prefix("vapid ") else {
            return false;
        };
        let mut t = None;
        let mut k = None;
        for part in rest.split(',').map(str::trim) {
            if let Some(v) = part.strip_prefix("t=") {
                t = Some(v);
            }
            if let Some(v) = part.strip_prefix("k=") {
                k = Some(v);
            }
        }
        let (Some(t), Some(k)) = (t, k) else {
            return false;
        };
        let Ok(public) = URL_SAFE_NO_PAD.decode(k) else {
            return false;
        };
        super::verify_jwt(t, &signature::ECDSA_P256_SHA256_FIXED, &public).is_some_and(|(_, c)| {
            let now = chrono::Utc::now().timestamp();
            c["aud"] == json!(origin)
                && c["sub"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:"))
                && c["exp"]
                    .as_i64()
                    .is_some_and(|e| e > now && e <= now + 24 * 3600)
        })
    });
    let encoded = h.get("content-encoding").map(String::as_str) == Some("aes128gcm")
        && h.get("ttl").is_some_and(|t| t.parse::<u64>().is_ok());
    let status = if !vapid_ok {
        StatusCode::UNAUTHORIZED
    } else if !encoded {
        StatusCode::BAD_REQUEST
    } else if id.starts_with("gone-") {
        StatusCode::GONE
    } else if id.starts_with("notfound-") {
        StatusCode::NOT_FOUND
    } else if id.starts_with("busy-") && before == 0 {
        StatusCode::TOO_MANY_REQUESTS
    } else if id.starts_with("forbidden-") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::CREATED
    };
    let payload = if status == StatusCode::CREATED {
        let keys = s.keys.lock().ok().and_then(|mut k| k.remove(&id));
        keys.and_then(|k| decrypt(k, &body))
            .and_then(|p| serde_json::from_slice(&p).ok())
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    s.log.record(Request {
        token: id,
        status: status.as_u16(),
        payload,
        headers: h,
    });
    let mut response = status.into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

impl FakeWebPush {
    pub async fn start() -> Self {
        let shared = Shared {
            log: Log::default(),
            origin: Arc::new(Mutex::new(String::new())),
            keys: Arc::new(Mutex::new(HashMap::new())),
        };
        let app = axum::Router::new()
            .fallback(push)
            .with_state(shared.clone());
        let addr = serve(app).await;
        if let Ok(mut o) = shared.origin.lock() {
            *o = format!("http://{addr}");
        }
        Self {
            addr,
            log: shared.log.clone(),
            shared,
        }
    }

    /// A new browser subscription (the device's push token).
    pub fn subscribe(&self, id: &str) -> String {
        let rng = SystemRandom::new();
        let private =
            EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap_or_else(|e| panic!("{e}"));
        let public = private
            .compute_public_key()
            .unwrap_or_else(|e| panic!("{e}"))
            .as_ref()
            .to_vec();
        let mut auth = [0u8; 16];
        rng.fill(&mut auth).unwrap_or_else(|e| panic!("{e}"));
        let token = json!({
            "endpoint": format!("http://{}/push/{id}", self.addr),
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(&public), "auth": URL_SAFE_NO_PAD.encode(auth)},
        })
        .to_string();
        if let Ok(mut keys) = self.shared.keys.lock() {
            keys.insert(
                id.to_owned(),
                Keys {
                    private,
                    public,
                    auth,
                },
            );
        }
        token
    }
}
