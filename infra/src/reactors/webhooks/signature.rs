//! Standard Webhooks v1 signatures (<https://www.standardwebhooks.com>).
//!
//! A secret is `whsec_` followed by the base64 of its key bytes. A message is
//! signed as HMAC-SHA256(key, `{id}.{timestamp}.{body}`), sent as
//! `v1,<base64>`; while a rotated-out secret is still active, the
//! `webhook-signature` header carries one such entry per secret, separated by
//! spaces, so receivers holding either secret can verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::secrets::random_bytes;

pub const PREFIX: &str = "whsec_";

/// A fresh signing secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    format!("{PREFIX}{}", STANDARD.encode(random_bytes::<24>()))
}

/// The key bytes of a `whsec_…` secret.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .ok()
}

/// One `v1,<base64>` signature.
pub fn sign(key: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(message_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
}

/// The `webhook-signature` header: one entry per active secret.
pub fn header(keys: &[Vec<u8>], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_vector_is_reproduced() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_else(|| panic!("the secret does not decode"));
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_active_secret_signs() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 32);
        let keys = [key_of(&a), key_of(&b)].map(Option::unwrap_or_default);
        let header = header(&keys, "m", 1, b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            entries,
            [sign(&keys[0], "m", 1, b"{}"), sign(&keys[1], "m", 1, b"{}")]
        );
        assert_ne!(entries[0], entries[1]);
    }
}
