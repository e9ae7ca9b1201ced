//! Secrets at rest: webhook signing secrets, receivers' credentials, push
//! provider credentials. They live in the `secrets` table, outside the log,
//! sealed with AES-256-GCM under a key derived from Herald's secret key
//! (`HERALD_SECRET_KEY`, or `secret-key` in the data directory, generated on
//! first start). Each ciphertext is bound to its app, owner, purpose and id
//! (the associated data), so rows cannot be swapped. The log records only a
//! fingerprint: a keyed HMAC, so that a low-entropy credential (a password)
//! cannot be guessed from it.
//!
//! Several nodes sharing one database must share the secret key.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::ids::AppId;
use projections::db::Db;
use projections::{on_db, on_tx};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use uuid::Uuid;

use crate::secrets::{Secret, random_bytes};
use crate::store::StoreError;

pub const KEY_FILE: &str = "secret-key";
pub const MIN_KEY_CHARS: usize = 32;

/// Herald's secret key: configured, or read from / generated into the data
/// directory. Says whether it was generated now.
pub fn load_or_create_key(
    configured: Option<&Secret<String>>,
    data_dir: &Path,
) -> anyhow::Result<(Secret<String>, bool)> {
    let (key, created) =
        crate::root_token::load_or_create_file(configured, data_dir, KEY_FILE, || {
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        })?;
    if key.expose().chars().count() < MIN_KEY_CHARS {
        anyhow::bail!("the secret key must be at least {MIN_KEY_CHARS} characters long");
    }
    Ok((key, created))
}

/// Herald's secret key if it is configured or saved in the data directory
/// (never a new one: for commands that must not leave a key behind).
pub fn saved_key(configured: Option<&Secret<String>>, data_dir: &Path) -> Option<Secret<String>> {
    if let Some(key) = configured {
        return Some(key.clone());
    }
    std::fs::read_to_string(data_dir.join(KEY_FILE))
        .ok()
        .map(|saved| saved.trim().to_owned())
        .filter(|saved| !saved.is_empty())
        .map(Secret::new)
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ciphertext does not open: another secret key, or tampering.
    #[error(
        "a stored secret cannot be decrypted (is HERALD_SECRET_KEY the one it was sealed with?)"
    )]
    Undecryptable,
}

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

struct Keys {
    seal: LessSafeKey,
    fingerprint: hmac::Key,
}

/// A secret's place: which app, which thing owns it, what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub app_id: AppId,
    /// `webhook:<id>`, `push:<provider>`.
    pub owner: &'a str,
    /// `signing`, `auth`, `credentials`.
    pub purpose: &'a str,
}

impl Slot<'_> {
    fn aad(&self, id: Uuid) -> Vec<u8> {
        format!("{}|{}|{}|{}", self.app_id, self.owner, self.purpose, id).into_bytes()
    }
}

#[derive(Clone)]
pub struct Vault {
    keys: Arc<Keys>,
    db: Db,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit, so neither step can fail.
    if let Ok(okm) = prk.expand(&[info], Len(32)) {
        let _ = okm.fill(&mut out);
    }
    out
}

impl Keys {
    fn derive_from(master: &Secret<String>) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"herald-vault-v1")
            .extract(master.expose().as_bytes());
        let seal_key = derive(&prk, b"seal");
        let seal = match UnboundKey::new(&AES_256_GCM, &seal_key) {
            Ok(k) => LessSafeKey::new(k),
            // A 32-byte key is always valid for AES-256-GCM.
            Err(_) => unreachable!("AES-256-GCM takes 32-byte keys"),
        };
        let fingerprint = hmac::Key::new(hmac::HMAC_SHA256, &derive(&prk, b"fingerprint"));
        Self { seal, fingerprint }
    }

    fn fingerprint(&self, secret: &[u8]) -> String {
        let tag = hmac::sign(&self.fingerprint, secret);
        format!("hmac-sha256:{}", hex::encode(&tag.as_ref()[..8]))
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut in_out = plaintext.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        // Sealing fails only for inputs over ~64 GiB.
        let _ = self
            .seal
            .seal_in_place_append_tag(nonce, Aad::from(aad), &mut in_out);
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend(in_out);
        sealed
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Undecryptable)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| VaultError::Undecryptable)?;
        Ok(plain.to_vec())
    }
}

impl Vault {
    pub fn new(db: Db, master: &Secret<String>) -> Self {
        Self {
            keys: Arc::new(Keys::derive_from(master)),
            db,
        }
    }

    /// Seals bytes that are stored elsewhere (subjects' data keys), bound
    /// to `aad`.
    pub(crate) fn seal_bytes(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.keys.seal(aad, plaintext)
    }

    /// Opens what [`Vault::seal_bytes`] sealed under the same `aad`.
    pub(crate) fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.keys.open(aad, sealed)
    }

    /// `hmac-sha256:` and 16 hex digits: tells secrets apart, reveals nothing.
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        self.keys.fingerprint(secret)
    }

    /// Seals and stores a secret; returns its id.
    pub async fn store(
        &self,
        slot: Slot<'_>,
        secret: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Uuid, VaultError> {
        let id = Uuid::now_v7();
        let sealed = self.keys.seal(&slot.aad(id), secret);
        let fingerprint = self.fingerprint(secret);
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO secrets (secret_id, app_id, owner, purpose, sealed, fingerprint, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(id)
            .bind(slot.app_id.0)
            .bind(slot.owner)
            .bind(slot.purpose)
            .bind(sealed)
            .bind(fingerprint)
            .bind(now.timestamp_micros())
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(id)
    }

    /// The slot's secrets that have not expired at `now`, newest first.
    pub async fn active(
        &self,
        slot: Slot<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Secret<Vec<u8>>>, VaultError> {
        Ok(self
            .active_until(slot, now)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// Like [`Vault::active`], with each secret's expiry.
    pub async fn active_until(
        &self,
        slot: Slot<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Secret<Vec<u8>>, Option<DateTime<Utc>>)>, VaultError> {
        let rows: Vec<(Uuid, Vec<u8>, Option<i64>)> = on_db!(&self.db, |p| {
            sqlx::query_as(
                "SELECT secret_id, sealed, expires_at FROM secrets WHERE app_id = $1 AND owner = $2 AND purpose = $3 \
                 AND (expires_at IS NULL OR expires_at > $4) ORDER BY secret_id DESC",
            )
            .bind(slot.app_id.0)
            .bind(slot.owner)
            .bind(slot.purpose)
            .bind(now.timestamp_micros())
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(id, sealed, expires)| {
                let secret = self.keys.open(&slot.aad(id), &sealed).map(Secret::new)?;
                Ok((secret, expires.and_then(DateTime::from_timestamp_micros)))
            })
            .collect()
    }

    /// Makes every other secret of the slot expire at `at` (or keeps an
    /// earlier expiry).
    pub async fn expire_others(
        &self,
        slot: Slot<'_>,
        keep: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), VaultError> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE secrets SET expires_at = $5 WHERE app_id = $1 AND owner = $2 AND purpose = $3 \
                 AND secret_id <> $4 AND (expires_at IS NULL OR expires_at > $5)",
            )
            .bind(slot.app_id.0)
            .bind(slot.owner)
            .bind(slot.purpose)
            .bind(keep)
            .bind(at.timestamp_micros())
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// Removes one secret (a store whose event was never written).
    pub async fn remove(&self, id: Uuid) -> Result<(), VaultError> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM secrets WHERE secret_id = $1")
                .bind(id)
                .execute(c)
                .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// Removes every secret of an owner (purpose `None`) or of one slot.
    pub async fn remove_owner(
        &self,
        app_id: AppId,
        owner: &str,
        purpose: Option<&str>,
    ) -> Result<(), VaultError> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "DELETE FROM secrets WHERE app_id = $1 AND owner = $2 AND ($3 IS NULL OR purpose = $3)",
            )
            .bind(app_id.0)
            .bind(owner)
            .bind(purpose)
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(master: &str) -> Keys {
        Keys::derive_from(&Secret::new(master.to_owned()))
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_place() {
        let k = keys("a-master-key-of-enough-length-1234");
        let sealed = k.seal(b"app|webhook:1|signing|id", b"whsec_abc");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(
            k.open(b"app|webhook:1|signing|id", &sealed).ok(),
            Some(b"whsec_abc".to_vec())
        );
        assert!(k.open(b"app|webhook:2|signing|id", &sealed).is_err());
        let other = keys("another-master-key-of-enough-length");
        assert!(other.open(b"app|webhook:1|signing|id", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open(b"app|webhook:1|signing|id", &tampered).is_err());
    }

    #[test]
    fn fingerprints_are_stable_keyed_and_short() {
        let k = keys("a-master-key-of-enough-length-1234");
        let f = k.fingerprint(b"hunter2");
        assert_eq!(f, k.fingerprint(b"hunter2"));
        assert_ne!(f, k.fingerprint(b"hunter3"));
        assert_ne!(
            f,
            keys("another-master-key-of-enough-length").fingerprint(b"hunter2")
        );
        assert!(f.starts_with("hmac-sha256:") && f.len() == 12 + 16, "{f}");
    }
}
