//! What an API key may do. Roles are independent: a key has exactly the roles
//! it was given (the first key of an app has the four server roles). The
//! `client` role stands alone: a key made to ship inside an app, which may
//! only evaluate feature flags and register (and later change or delete,
//! with the device's secret) its own device.

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
    /// Code on end users' devices: evaluate flags, register its own device.
    Client,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Write,
        Role::Read,
        Role::Audit,
        Role::Client,
    ];
    /// The roles of code the app's operator runs (the first key has them all).
    pub const SERVER: [Role; 4] = [Role::Admin, Role::Write, Role::Read, Role::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Write => "write",
            Role::Read => "read",
            Role::Audit => "audit",
            Role::Client => "client",
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
