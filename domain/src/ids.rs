//! Identifiers. Server-chosen ids are UUIDs; client-chosen ids (a device's
//! external id, a user's id) are arbitrary strings of 1 to 255 bytes that
//! round-trip exactly: no trimming, no case folding, no normalisation. The
//! one character they cannot hold is NUL (see `storable`).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id (UUID v7).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// One tenant of Herald.
    AppId
);
uuid_id!(
    /// One API key of an app.
    ApiKeyId
);
uuid_id!(
    /// One webhook endpoint of an app.
    WebhookId
);

macro_rules! client_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_BYTES: usize = 255;

            pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
                let raw = raw.into();
                if raw.is_empty() {
                    return Err(DomainError::invalid($field, "must not be empty"));
                }
                if raw.len() > Self::MAX_BYTES {
                    return Err(DomainError::invalid(
                        $field,
                        format!("must be at most {} bytes", Self::MAX_BYTES),
                    ));
                }
                $crate::storable::check_str($field, &raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

client_id!(
    /// A device's id, chosen by the app.
    ExternalId,
    "external_id"
);
client_id!(
    /// A user's id, chosen by the app.
    UserId,
    "user_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_keep_every_byte() {
        for raw in [" a ", "ÄÖ/ü?#%20", "a\u{1}b\tc", "\u{1F600}", "x"] {
            assert_eq!(ExternalId::parse(raw).map(|id| id.0), Ok(raw.to_owned()));
        }
    }

    #[test]
    fn client_ids_cannot_hold_nul() {
        assert!(ExternalId::parse("a\u{0}b").is_err());
        assert!(UserId::parse("\u{0}").is_err());
    }

    #[test]
    fn client_ids_are_bounded_in_bytes() {
        assert!(ExternalId::parse("").is_err());
        assert!(ExternalId::parse("a".repeat(255)).is_ok());
        assert!(ExternalId::parse("a".repeat(256)).is_err());
        // 128 two-byte characters are 256 bytes.
        assert!(UserId::parse("é".repeat(128)).is_err());
    }
}

#[cfg(test)]
mod proptests;
