//! Webhook payloads encrypted to the receiver: JWE compact serialization
//! (RFC 7516) with `alg` RSA-OAEP-256 (RFC 7518 §4.3: RSAES-OAEP, SHA-256
//! and MGF1 with SHA-256) wrapping a fresh 256-bit content key, and `enc`
//! A256GCM (§5.3) sealing the payload. Only the holder of the private key
//! reads it; the Standard Webhooks signature then covers the JWE as sent.
//!
//! ring has no RSA encryption, hence the `rsa` crate for the key wrap;
//! AES-GCM is ring's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};

use crate::secrets::random_bytes;

/// The smallest RSA modulus accepted (NIST: 2048 bits through 2030).
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 8192;

/// The `Content-Type` of an encrypted message.
pub const CONTENT_TYPE: &str = "application/jose";

/// A receiver's public key, checked.
#[derive(Debug, Clone)]
pub struct ReceiverKey(RsaPublicKey);

impl ReceiverKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an RSA key of 2048 to
    /// 8192 bits; the reason it is not, otherwise.
    pub fn parse(pem: &str) -> Result<Self, String> {
        let key = RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|_| {
            "must be an RSA public key in PEM (-----BEGIN PUBLIC KEY-----, as \
             `openssl rsa -pubout` writes it)"
                .to_owned()
        })?;
        let bits = key.size() * 8;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(format!(
                "the RSA key has {bits} bits; use {MIN_BITS} to {MAX_BITS}"
            ));
        }
        Ok(Self(key))
    }

    /// `plaintext` as a JWE compact string.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD
            .encode(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"application/json"}"#);
        let cek = random_bytes::<32>();
        let mut rng = rand_core_06::OsRng;
        let wrapped = self
            .0
            .encrypt(&mut rng, Oaep::new::<sha2_10::Sha256>(), &cek)
            .map_err(|e| format!("cannot wrap the content key: {e}"))?;
        let iv = random_bytes::<12>();
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| "bad content key".to_owned())?,
        );
        let mut sealed = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(header.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| "cannot encrypt the payload".to_owned())?;
        Ok([
            header,
            URL_SAFE_NO_PAD.encode(wrapped),
            URL_SAFE_NO_PAD.encode(iv),
            URL_SAFE_NO_PAD.encode(&sealed),
            URL_SAFE_NO_PAD.encode(tag.as_ref()),
        ]
        .join("."))
    }
}

#[cfg(test)]
mod tests {
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    use super::*;

    const PUBLIC: &str = include_str!("../../../../tests/fixtures/jwe-receiver.pub.pem");
    const PRIVATE: &str = include_str!("../../../../tests/fixtures/jwe-receiver.key.pem");

    /// What a receiver does (RFC 7516 §5.2), written from the RFC.
    fn decrypt(jwe: &str) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = jwe
            .split('.')
            .map(|p| URL_SAFE_NO_PAD.decode(p).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(parts.len(), 5);
        let header: serde_json::Value =
            serde_json::from_slice(&parts[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (header["alg"].as_str(), header["enc"].as_str()),
            (Some("RSA-OAEP-256"), Some("A256GCM"))
        );
        let private = RsaPrivateKey::from_pkcs8_pem(PRIVATE).unwrap_or_else(|e| panic!("{e}"));
        let cek = private
            .decrypt(Oaep::new::<sha2_10::Sha256>(), &parts[1])
            .unwrap_or_else(|e| panic!("{e}"));
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap_or_else(|e| panic!("{e}")));
        let iv: [u8; 12] = parts[2]
            .as_slice()
            .try_into()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sealed = [parts[3].clone(), parts[4].clone()].concat();
        let aad = jwe.split('.').next().unwrap_or_default().as_bytes();
        key.open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(aad),
            &mut sealed,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .to_vec()
    }

    #[test]
    fn a_payload_round_trips_and_every_message_has_its_own_key() {
        let key = ReceiverKey::parse(PUBLIC).unwrap_or_else(|e| panic!("{e}"));
        let payload = br#"{"type":"user.created","data":{"user_id":"u1"}}"#;
        let (one, two) = (
            key.encrypt(payload).unwrap_or_else(|e| panic!("{e}")),
            key.encrypt(payload).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_ne!(one, two);
        assert_eq!(decrypt(&one), payload);
        assert_eq!(decrypt(&two), payload);
        // A flipped byte of the ciphertext fails the tag.
        let mut parts: Vec<String> = one.split('.').map(str::to_owned).collect();
        let mut body = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap_or_default();
        body[0] ^= 1;
        parts[3] = URL_SAFE_NO_PAD.encode(body);
        assert!(std::panic::catch_unwind(|| decrypt(&parts.join("."))).is_err());
    }

    #[test]
    fn a_small_key_is_refused() {
        let small = include_str!("../../../../tests/fixtures/rsa-1024.pub.pem");
        assert!(ReceiverKey::parse(small).is_err_and(|e| e.contains("1024 bits")));
    }

    #[test]
    fn keys_that_are_not_rsa_public_keys_of_a_sane_size_are_refused() {
        assert!(ReceiverKey::parse("not a key").is_err());
        assert!(
            ReceiverKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }
}
