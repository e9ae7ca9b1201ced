//! Random tokens, their hashes, and a wrapper that keeps secrets out of logs.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A value that must never be printed: `Debug` and `Display` show
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator does not fail on supported platforms; if it ever did,
    // a zeroed token must not be handed out.
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random number generator failed: {e}");
    }
    bytes
}

/// A new API key token: `hk_` and 256 random bits, base64url.
pub fn new_api_token() -> String {
    format!("hk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A new root token: `hr_` and 256 random bits, base64url.
pub fn new_root_token() -> String {
    format!("hr_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A new device secret (handed to a client key that registers a device):
/// `hd_` and 256 random bits, base64url.
pub fn new_device_secret() -> String {
    format!("hd_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(input: &[u8]) -> String {
    hex::encode(Sha256::digest(input))
}

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A uniform integer in `1..=n`.
pub fn random_in_1_to(n: u16) -> u16 {
    let n = u32::from(n.max(1));
    // Rejection sampling keeps it uniform.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let v = u32::from_le_bytes(random_bytes::<4>());
        if v < zone {
            return u16::try_from(v % n + 1).unwrap_or(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_well_formed() {
        let a = new_api_token();
        assert!(a.starts_with("hk_") && a.len() == 46, "{a}");
        assert_ne!(a, new_api_token());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn random_buckets_stay_in_range() {
        for _ in 0..10_000 {
            let b = random_in_1_to(10_000);
            assert!((1..=10_000).contains(&b));
        }
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
