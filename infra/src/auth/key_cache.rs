//! A short-lived cache of authenticated API keys, so that a request does not
//! pay a database round trip to learn who it is.
//!
//! Entries live for [`TTL`]. Revoking a key clears this process's cache at
//! once; other Herald processes stop accepting the key within `TTL`. Unknown
//! tokens are never cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Principal;

pub const TTL: Duration = Duration::from_secs(2);
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl KeyCache {
    pub fn get(&self, token_sha256: &str) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        let (principal, at) = entries.get(token_sha256)?;
        (at.elapsed() < TTL).then(|| principal.clone())
    }

    pub fn put(&self, token_sha256: String, principal: Principal) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.retain(|_, (_, at)| at.elapsed() < TTL);
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
            }
            entries.insert(token_sha256, (principal, Instant::now()));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
