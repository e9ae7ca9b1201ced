//! Web Push message encryption: RFC 8291 keys over RFC 8188 `aes128gcm`.
//!
//! A fresh P-256 key pair and salt per message; ECDH with the subscription's
//! `p256dh` key; HKDF-SHA-256 mixes in the subscription's `auth` secret;
//! the payload is one AES-128-GCM record (`plaintext || 0x02`). The body is
//! `salt(16) || rs(4) || idlen(1) || keyid (our public key, 65) || record`.

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::hmac;
use ring::rand::SystemRandom;

/// The record size written in the header (one record carries the message).
pub const RECORD_SIZE: u32 = 4096;
/// Most plaintext one record carries: the record size less the tag (16)
/// and the delimiter (1).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 17;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The content key and nonce for one message.
pub(crate) fn keys(
    ecdh_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth_secret: &[u8],
    salt: &[u8],
) -> ([u8; 16], [u8; 12]) {
    // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0 || ua || as, 32)
    let prk_key = hmac_sha256(auth_secret, &[ecdh_secret]);
    let ikm = hmac_sha256(&prk_key, &[b"WebPush: info\0", ua_public, as_public, &[1]]);
    // CEK and NONCE = HKDF(salt, IKM, "Content-Encoding: …" || 0, 16 / 12)
    let prk = hmac_sha256(salt, &[&ikm]);
    let cek_full = hmac_sha256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce_full = hmac_sha256(&prk, &[b"Content-Encoding: nonce\0", &[1]]);
    let mut cek = [0u8; 16];
    cek.copy_from_slice(&cek_full[..16]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&nonce_full[..12]);
    (cek, nonce)
}

/// The deterministic part: everything after key agreement.
pub(crate) fn seal(
    ecdh_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth_secret: &[u8],
    salt: &[u8; 16],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(format!(
            "the payload is {} bytes; Web Push carries at most {MAX_PLAINTEXT}",
            plaintext.len()
        ));
    }
    let (cek, nonce) = keys(ecdh_secret, ua_public, as_public, auth_secret, salt);
    let key = UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "bad content key".to_owned())?;
    let mut record = plaintext.to_vec();
    record.push(2);
    LessSafeKey::new(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut record,
        )
        .map_err(|_| "encryption failed".to_owned())?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + as_public.len() + record.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(u8::try_from(as_public.len()).map_err(|_| "bad key".to_owned())?);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// Encrypts `plaintext` for a subscription (`p256dh` = `ua_public`, 65
/// bytes; `auth` = 16 bytes).
pub fn encrypt(ua_public: &[u8], auth_secret: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if ua_public.len() != 65 || ua_public[0] != 4 {
        return Err("the subscription's p256dh key is not an uncompressed P-256 point".into());
    }
    if auth_secret.len() != 16 {
        return Err("the subscription's auth secret is not 16 bytes".into());
    }
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| "cannot generate a key".to_owned())?;
    let as_public = private
        .compute_public_key()
        .map_err(|_| "cannot compute a public key".to_owned())?;
    let salt = crate::secrets::random_bytes::<16>();
    agreement::agree_ephemeral(
        private,
        &UnparsedPublicKey::new(&ECDH_P256, ua_public),
        |secret| {
            seal(
                secret,
                ua_public,
                as_public.as_ref(),
                auth_secret,
                &salt,
                plaintext,
            )
        },
    )
    .map_err(|_| "the subscription's p256dh key is not a valid P-256 point".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactors::push::jwt::b64url_decode;

    fn b(s: &str) -> Vec<u8> {
        b64url_decode(s).unwrap_or_else(|| panic!("not base64url: {s}"))
    }

    /// RFC 8291, Appendix A and Section 5.
    #[test]
    fn the_rfc_8291_example_is_reproduced() {
        let ua_public = b(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        );
        let as_public = b(
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8",
        );
        let ecdh_secret = b("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs");
        let auth_secret = b("BTBZMqHH6r4Tts7J_aSIgg");
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b("DGv6ra1nlYgDCS1FRnbzlw"));
        let (cek, nonce) = keys(&ecdh_secret, &ua_public, &as_public, &auth_secret, &salt);
        assert_eq!(cek.to_vec(), b("oIhVW04MRdy2XN9CiKLxTg"));
        assert_eq!(nonce.to_vec(), b("4h_95klXJ5E_qnoN"));
        let body = seal(
            &ecdh_secret,
            &ua_public,
            &as_public,
            &auth_secret,
            &salt,
            b"When I grow up, I want to be a watermelon",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body,
            b(concat!(
                "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_",
                "yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
            ))
        );
    }

    #[test]
    fn bad_subscriptions_and_oversized_payloads_are_refused() {
        assert!(encrypt(&[4; 10], &[0; 16], b"x").is_err());
        let ua = crate::reactors::push::jwt::Signer::generate_es256()
            .map(|(_, public)| public)
            .unwrap_or_default();
        assert!(encrypt(&ua, &[0; 15], b"x").is_err());
        assert!(encrypt(&ua, &[0; 16], &vec![b'x'; MAX_PLAINTEXT + 1]).is_err());
        let body = encrypt(&ua, &[0; 16], b"hello").unwrap_or_default();
        assert_eq!(body.len(), 16 + 4 + 1 + 65 + 5 + 1 + 16);
        assert_eq!(&body[16..20], &RECORD_SIZE.to_be_bytes());
    }
}
