//! One personal value, sealed: `{"$sealed": "v1.<generation>.<base64url>"}`
//! where the base64url text is a 96-bit random nonce followed by the
//! AES-256-GCM ciphertext and tag of the value's JSON text, bound to its app
//! and subject. The hash chain covers this object, so destroying the key
//! changes nothing the chain verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::ids::AppId;
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use serde_json::{Value, json};

use crate::secrets::random_bytes;

pub const MARK: &str = "$sealed";

fn aad(app_id: AppId, subject: &str) -> Vec<u8> {
    format!("personal|{}|{subject}", app_id.0).into_bytes()
}

pub fn seal(
    key: &LessSafeKey,
    generation: i64,
    app_id: AppId,
    subject: &str,
    value: &Value,
) -> Value {
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let mut in_out = value.to_string().into_bytes();
    // Sealing fails only for inputs over ~64 GiB.
    let _ = key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad(app_id, subject)),
        &mut in_out,
    );
    let mut sealed = nonce_bytes.to_vec();
    sealed.extend(in_out);
    json!({ MARK: format!("v1.{generation}.{}", URL_SAFE_NO_PAD.encode(sealed)) })
}

/// The generation a sealed value names, if `value` is one.
pub fn generation(value: &Value) -> Option<i64> {
    let text = value.as_object()?.get(MARK)?.as_str()?;
    let mut parts = text.splitn(3, '.');
    (parts.next()? == "v1").then_some(())?;
    parts.next()?.parse().ok()
}

/// Opens a sealed value; `None` if it does not open under `key`.
pub fn open(key: &LessSafeKey, app_id: AppId, subject: &str, value: &Value) -> Option<Value> {
    let text = value.as_object()?.get(MARK)?.as_str()?;
    let body = text.splitn(3, '.').nth(2)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad(app_id, subject)), &mut in_out)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// Whether `value` is a sealed value (and not a value stored in clear).
pub fn is_sealed(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key(MARK))
}
