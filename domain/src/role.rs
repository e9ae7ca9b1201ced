//! What an API key may do. Roles are independent: a key has exactly the roles
//! it was given (the first key of an app has all four).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manage the app: keys, webhooks, credentials, queues.
    Admin,
    /// Issue commands: devices, users, notifications.
    Write,
    /// Query read models.
    Read,
    /// Read the log and verify its integrity.
    Audit,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Write, Role::Read, Role::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Write => "write",
            Role::Read => "read",
            Role::Audit => "audit",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
