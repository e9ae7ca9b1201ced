//! JSON Web Tokens as the push providers want them: RS256 (FCM's OAuth
//! assertion, signed with a service account's RSA key) and ES256 (APNs
//! provider tokens, VAPID), over keys given as PEM / PKCS#8 or raw P-256
//! bytes. Signing uses `ring`, already in the build for TLS.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::Value;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url with or without padding (browsers and libraries differ).
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .ok()
}

/// The DER bytes of the first PEM block (any label).
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("is not a PEM block (-----BEGIN PRIVATE KEY-----)".into());
    }
    STANDARD
        .decode(body)
        .map_err(|_| "holds invalid base64".to_owned())
}

pub enum Signer {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signer::Rs256(_) => "Signer(RS256)",
            Signer::Es256(_) => "Signer(ES256)",
        })
    }
}

impl Signer {
    /// An RSA key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn rs256_pem(pem: &str) -> Result<Self, String> {
        let der = pem_der(pem)?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Signer::Rs256)
            .map_err(|e| format!("is not an RSA private key in PKCS#8 ({e})"))
    }

    /// A P-256 key in PKCS#8 PEM (an APNs `.p8` file).
    pub fn es256_pem(pem: &str) -> Result<Self, String> {
        Self::es256_pkcs8(&pem_der(pem)?)
    }

    pub fn es256_pkcs8(der: &[u8]) -> Result<Self, String> {
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        )
        .map(Signer::Es256)
        .map_err(|e| format!("is not a P-256 private key in PKCS#8 ({e})"))
    }

    /// A P-256 key as raw bytes: the 32-byte private scalar and the 65-byte
    /// uncompressed public point (how VAPID keys are usually written).
    pub fn es256_raw(private: &[u8], public: &[u8]) -> Result<Self, String> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            private,
            public,
            &SystemRandom::new(),
        )
        .map(Signer::Es256)
        .map_err(|e| format!("is not a matching P-256 key pair ({e})"))
    }

    /// A new P-256 key in PKCS#8, and its uncompressed public point.
    pub fn generate_es256() -> Result<(Vec<u8>, Vec<u8>), String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a key".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .map_err(|_| "cannot read the generated key".to_owned())?;
        Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
    }

    /// The public key (uncompressed point for ES256).
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Signer::Rs256(k) => k.public().as_ref().to_vec(),
            Signer::Es256(k) => k.public_key().as_ref().to_vec(),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Rs256(_) => "RS256",
            Signer::Es256(_) => "ES256",
        }
    }

    /// `header.claims.signature`; `header` gets `alg` and `typ` added.
    pub fn jwt(&self, header: Value, claims: &Value) -> Result<String, String> {
        let mut header = header;
        if let Value::Object(map) = &mut header {
            map.insert("alg".into(), Value::String(self.alg().into()));
            map.insert("typ".into(), Value::String("JWT".into()));
        }
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match self {
            Signer::Rs256(key) => {
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                sig
            }
            Signer::Es256(key) => key
                .sign(&rng, signing_input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{signing_input}.{}", b64url(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::UnparsedPublicKey;
    use serde_json::json;

    use super::*;

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let (pkcs8, public) = Signer::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        let signer = Signer::es256_pkcs8(&pkcs8).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signer.public_key(), public);
        let token = signer
            .jwt(json!({"kid": "K"}), &json!({"iss": "T", "iat": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&b64url_decode(parts[0]).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "K"}));
        let sig = b64url_decode(parts[2]).unwrap_or_default();
        assert_eq!(sig.len(), 64, "JOSE signatures are r || s");
        let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &public);
        assert!(
            key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok()
        );
        assert!(key.verify(b"tampered", &sig).is_err());
    }

    #[test]
    fn pem_blocks_are_read_and_garbage_is_refused() {
        assert!(pem_der("nothing here").is_err());
        let der = pem_der("-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n");
        assert_eq!(der.ok(), Some(vec![0, 1, 2, 3]));
        assert!(
            Signer::rs256_pem("-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }
}
