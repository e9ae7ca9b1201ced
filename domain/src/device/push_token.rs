//! A device's push token, as the providers hand it out.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

pub const MAX_PUSH_TOKEN_BYTES: usize = 4096;

/// A push token: 1 to 4096 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PushToken(String);

impl PushToken {
    /// The token of a forgotten device (see `personal`).
    pub fn forgotten() -> Self {
        Self(crate::personal::PLACEHOLDER.to_owned())
    }

    pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(DomainError::invalid("push_token", "must not be empty"));
        }
        if raw.len() > MAX_PUSH_TOKEN_BYTES {
            return Err(DomainError::invalid(
                "push_token",
                format!("must be at most {MAX_PUSH_TOKEN_BYTES} bytes"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "push_token",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
