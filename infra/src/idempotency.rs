//! Idempotency keys: the first answer to a state-changing request that
//! carried `Idempotency-Key` is kept (per app and key, for the configured
//! time), so that a client retrying after a timeout gets that answer again
//! instead of a second execution.
//!
//! Not event-sourced: this is a cache of answers, not a fact about the
//! app. It lives in the shared database, so every node sees the same keys.
//!
//! A key is *claimed* before the request runs (one `INSERT … ON CONFLICT DO
//! NOTHING`: of two racing requests exactly one wins, on either backend)
//! and *completed* with the answer after. A claim whose node died is taken
//! over once its lease runs out; a crash between the command's commit and
//! the saved answer is the one window in which a retry runs twice.
//!
//! A kept answer may carry a secret shown once (a new API key's token, a
//! device secret, a webhook's signing secret) or a person's data: its body
//! is sealed with the secret key (AES-256-GCM, bound to its scope and key),
//! so the table holds no answer in clear. Bodies kept before sealing (in
//! clear, as JSON) are still replayed as they are until they expire.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::db::{Db, Tx};
use projections::{on_db, on_tx};

use crate::clock::Clock;
use crate::vault::Vault;

/// Opens a sealed answer body (a JSON body never starts with NUL).
const SEALED: &[u8] = b"\0sealed-1\0";

/// How long an unfinished claim holds its key before another request may
/// take it over (its node is presumed dead).
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Why an `Idempotency-Key` value is refused, or `None` when it is valid:
/// 1 to 255 printable ASCII characters.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("the Idempotency-Key header is empty")
    } else if key.len() > MAX_KEY_LEN {
        Some("the Idempotency-Key header is longer than 255 characters")
    } else if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Some("the Idempotency-Key header may hold printable ASCII characters only")
    } else {
        None
    }
}

/// A digest (SHA-256, hex) of what makes two requests the same one: the
/// method, the path with its query, and the body.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        method.as_bytes(),
        b"\n",
        path_and_query.as_bytes(),
        b"\n",
        body,
    ] {
        ctx.update(part);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A kept answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub status: u16,
    /// The answer's headers worth repeating (content type, location,
    /// position), as name and value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a claim found.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// The key is this request's: run it, then [`Idempotency::complete`]
    /// (or [`Idempotency::release`] when the answer is not to be kept).
    Fresh,
    /// The same request was answered before: this is its answer.
    Replay(Saved),
    /// The same request is still running.
    InFlight,
    /// The key was used with a different request.
    Mismatch,
    /// An answer is kept but does not open (the secret key was changed).
    Unreadable,
}

/// Who a key belongs to: an app, or the root token.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a>(pub &'a str);

#[derive(Clone)]
pub struct Idempotency {
    db: Db,
    vault: Vault,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

type Row = (String, Option<i64>, Option<String>, Option<Vec<u8>>);

impl Idempotency {
    pub fn new(db: Db, vault: Vault, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            db,
            vault,
            clock,
            ttl,
        }
    }

    fn aad(scope: &str, key: &str) -> Vec<u8> {
        format!("idempotency\0{scope}\0{key}").into_bytes()
    }

    fn seal(&self, scope: &str, key: &str, body: &[u8]) -> Vec<u8> {
        let mut sealed = SEALED.to_vec();
        sealed.extend(self.vault.seal_bytes(&Self::aad(scope, key), body));
        sealed
    }

    /// The body as answered: opened, or as it is when kept in clear.
    fn open(&self, scope: &str, key: &str, stored: Vec<u8>) -> Option<Vec<u8>> {
        match stored.strip_prefix(SEALED) {
            Some(sealed) => self.vault.open_bytes(&Self::aad(scope, key), sealed).ok(),
            None => Some(stored),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn micros(at: DateTime<Utc>) -> i64 {
        at.timestamp_micros()
    }

    /// Claims `key` in `scope` for a request with `fingerprint` (a digest
    /// of its method, path and body).
    pub async fn claim(
        &self,
        scope: Scope<'_>,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim, sqlx::Error> {
        let now = self.clock.now();
        let expires = Self::micros(now + chrono::Duration::from_std(self.ttl).unwrap_or_default());
        let lease = Self::micros(now + chrono::Duration::from_std(CLAIM_LEASE).unwrap_or_default());
        let now = Self::micros(now);
        let mut tx = self.db.begin().await?;
        let inserted = on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, status, headers, body, \
                 created_at, expires_at, lease_until) VALUES ($1, $2, $3, NULL, NULL, NULL, $4, $5, $6) \
                 ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(scope.0)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .bind(expires)
            .bind(lease)
            .execute(c)
            .await?
            .rows_affected()
        });
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Claim::Fresh);
        }
        // Taken: over an expired answer or a dead node's claim, atomically.
        let taken = on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $3, status = NULL, headers = NULL, \
                 body = NULL, created_at = $4, expires_at = $5, lease_until = $6 \
                 WHERE scope = $1 AND key = $2 \
                 AND (expires_at <= $4 OR (status IS NULL AND lease_until <= $4))",
            )
            .bind(scope.0)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .bind(expires)
            .bind(lease)
            .execute(c)
            .await?
            .rows_affected()
        });
        if taken == 1 {
            tx.commit().await?;
            return Ok(Claim::Fresh);
        }
        let row: Option<Row> = on_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT fingerprint, status, headers, body FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2",
            )
            .bind(scope.0)
            .bind(key)
            .fetch_optional(c)
            .await?
        });
        tx.commit().await?;
        Ok(match row {
            // Deleted meanwhile (released): the caller may try again.
            None => Claim::InFlight,
            Some((stored, _, _, _)) if stored != fingerprint => Claim::Mismatch,
            Some((_, None, _, _)) => Claim::InFlight,
            Some((_, Some(status), headers, body)) => {
                match self.open(scope.0, key, body.unwrap_or_default()) {
                    Some(body) => Claim::Replay(Saved {
                        status: u16::try_from(status).unwrap_or(500),
                        headers: headers
                            .and_then(|h| serde_json::from_str(&h).ok())
                            .unwrap_or_default(),
                        body,
                    }),
                    None => Claim::Unreadable,
                }
            }
        })
    }

    /// Keeps `saved` as the answer to the claimed key.
    pub async fn complete(
        &self,
        scope: Scope<'_>,
        key: &str,
        fingerprint: &str,
        saved: &Saved,
    ) -> Result<(), sqlx::Error> {
        let headers = serde_json::to_string(&saved.headers).unwrap_or_else(|_| "[]".into());
        let body = self.seal(scope.0, key, &saved.body);
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6 \
                 WHERE scope = $1 AND key = $2 AND fingerprint = $3 AND status IS NULL",
            )
            .bind(scope.0)
            .bind(key)
            .bind(fingerprint)
            .bind(i64::from(saved.status))
            .bind(headers)
            .bind(&body)
            .execute(c)
            .await?;
        });
        tx.commit().await
    }

    /// Gives the claimed key up (the answer was not one to keep: a 5xx, whose
    /// outcome the client cannot know, so that a retry runs again).
    pub async fn release(
        &self,
        scope: Scope<'_>,
        key: &str,
        fingerprint: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 \
                 AND fingerprint = $3 AND status IS NULL",
            )
            .bind(scope.0)
            .bind(key)
            .bind(fingerprint)
            .execute(c)
            .await?;
        });
        tx.commit().await
    }

    /// Deletes the answers kept in `scope` whose body holds any of
    /// `needles` (a forgotten person's ids); returns how many. A retry with
    /// such a key runs again.
    pub async fn forget_naming(
        &self,
        scope: Scope<'_>,
        needles: &[String],
    ) -> Result<u64, sqlx::Error> {
        let kept: Vec<(String, Vec<u8>)> = on_db!(&self.db, |p| {
            sqlx::query_as(
                "SELECT key, body FROM idempotency_keys WHERE scope = $1 AND body IS NOT NULL",
            )
            .bind(scope.0)
            .fetch_all(p)
            .await?
        });
        let naming: Vec<String> = kept
            .into_iter()
            .filter(|(key, body)| {
                // One that does not open cannot be replayed either: it goes.
                self.open(scope.0, key, body.clone()).is_none_or(|body| {
                    let text = String::from_utf8_lossy(&body);
                    needles.iter().any(|n| text.contains(n.as_str()))
                })
            })
            .map(|(key, _)| key)
            .collect();
        let mut tx: Tx = self.db.begin().await?;
        for key in &naming {
            on_tx!(&mut tx, |c| {
                sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(scope.0)
                    .bind(key)
                    .execute(&mut *c)
                    .await?;
            });
        }
        tx.commit().await?;
        Ok(naming.len() as u64)
    }

    /// Deletes expired answers and dead claims; returns how many.
    pub async fn purge(&self) -> Result<u64, sqlx::Error> {
        let now = Self::micros(self.clock.now());
        let mut tx: Tx = self.db.begin().await?;
        let gone = on_tx!(&mut tx, |c| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE expires_at <= $1 \
                 OR (status IS NULL AND lease_until <= $1)",
            )
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(gone)
    }

    /// How many keys are kept (for metrics and tests).
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        on_db!(&self.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys")
                .fetch_one(pool)
                .await
        })
    }
}
