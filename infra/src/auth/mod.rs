//! Who a request acts as: the root token, or an app's API key with its
//! roles. Tokens are compared in constant time; API keys are looked up by
//! their SHA-256 (the token itself is never stored) and kept briefly in
//! [`KeyCache`] so a request rarely pays a database round trip to learn who
//! it is.

mod key_cache;

use std::sync::Arc;

use domain::ids::{ApiKeyId, AppId};
use domain::role::Role;
use projections::apps as read;
use projections::db::Db;

pub use self::key_cache::{KeyCache, TTL};
use crate::runtime::commands::CommandError;
use crate::secrets::{Secret, constant_time_eq, sha256_hex};

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
    Key {
        app_id: AppId,
        key_id: ApiKeyId,
        roles: Vec<Role>,
    },
}

#[derive(Clone)]
pub struct Auth {
    db: Db,
    root_token: Secret<String>,
    keys: Arc<KeyCache>,
}

impl Auth {
    pub fn new(db: Db, root_token: Secret<String>, keys: Arc<KeyCache>) -> Self {
        Self {
            db,
            root_token,
            keys,
        }
    }

    /// The principal a bearer token stands for; `None` for an unknown or
    /// revoked token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, CommandError> {
        if constant_time_eq(token.as_bytes(), self.root_token.expose().as_bytes()) {
            return Ok(Some(Principal::Root));
        }
        let hash = sha256_hex(token.as_bytes());
        if let Some(principal) = self.keys.get(&hash) {
            return Ok(Some(principal));
        }
        let key = read::key_by_token_hash(&self.db, &hash).await?;
        let principal = key
            .filter(|k| k.revoked_at.is_none())
            .map(|k| Principal::Key {
                app_id: k.app_id,
                key_id: k.key_id,
                roles: k.roles,
            });
        if let Some(p) = &principal {
            self.keys.put(hash, p.clone());
        }
        Ok(principal)
    }
}
