//! The device aggregate: a push token on a platform, typed properties, and an
//! optional link to a user.

mod changes;
mod eras;
mod push_token;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::ids::{ExternalId, UserId};
use crate::platform::{DevicePlatform, SendPlatform};
use crate::properties::{Properties, PropertyPatch};

pub use self::changes::client_may;
pub use self::eras::{Carried, Eras};
pub use self::push_token::{MAX_PUSH_TOKEN_BYTES, PushToken};

pub fn stream(external_id: &ExternalId) -> String {
    format!("device:{external_id}")
}

/// The type of [`DeviceEvent::SecretIssued`]: outside the `device.` family,
/// so that no webhook or change queue subscribed to devices receives it.
pub const SECRET_ISSUED: &str = "device_secret.issued";

/// `random_bucket` is drawn from 1..=RANDOM_BUCKETS at registration.
pub const RANDOM_BUCKETS: u16 = 10_000;

/// What to do with a device's user link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserLink {
    /// Leave it as it is.
    #[default]
    Keep,
    Link(UserId),
    Unlink,
}

/// `PUT /v1/devices/{external_id}`: register, or update what changed.
#[derive(Debug, Clone)]
pub struct Registration {
    pub push_token: PushToken,
    pub send_platform: SendPlatform,
    pub device_platform: DevicePlatform,
    pub user: UserLink,
    /// `None` keeps the current value (true for a new device).
    pub has_permission: Option<bool>,
}

/// Who asks for a device change: the app's own server (a write key), or
/// code on an end user's device (a client key), which may touch only a
/// device it registered, proving it with the secret it was given then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    Server,
    /// `presented`: the SHA-256 (hex) of the `Herald-Device-Secret` sent.
    Client {
        presented: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub enum DeviceCommand {
    /// `random_bucket` is used only when the device is new, and so is
    /// `new_secret` (the SHA-256, hex, of the secret a client key is handed
    /// for a device it registers).
    Register {
        external_id: ExternalId,
        registration: Registration,
        random_bucket: u16,
        by: By,
        new_secret: Option<String>,
    },
    SetProperties {
        external_id: ExternalId,
        patch: PropertyPatch,
    },
    Delete {
        external_id: ExternalId,
        by: By,
    },
    /// Deletes the device only if it belongs to this user.
    DeleteOwned {
        external_id: ExternalId,
        user_id: UserId,
    },
    /// The user was deleted: drop the link if it still points at them.
    UnlinkDeletedUser {
        external_id: ExternalId,
        user_id: UserId,
    },
    /// A push provider said the token is dead.
    InvalidateToken {
        external_id: ExternalId,
        push_token: String,
        reason: String,
    },
    /// Forget what the device holds of `user_id` (the keys of their time
    /// were destroyed): records `subject.forgotten`, of all of it while the
    /// device is theirs, else of what it carries from their time (see
    /// `Eras`), unless nothing of theirs was written since the last time.
    Forget {
        external_id: ExternalId,
        user_id: UserId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DeviceEvent {
    #[serde(rename = "device.registered")]
    Registered {
        external_id: ExternalId,
        push_token: PushToken,
        send_platform: SendPlatform,
        device_platform: DevicePlatform,
        random_bucket: u16,
        user_id: Option<UserId>,
        has_permission: bool,
    },
    /// Only the fields that changed are present.
    #[serde(rename = "device.updated")]
    Updated {
        external_id: ExternalId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        push_token: Option<PushToken>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        send_platform: Option<SendPlatform>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_platform: Option<DevicePlatform>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_permission: Option<bool>,
    },
    #[serde(rename = "device.user_linked")]
    UserLinked {
        external_id: ExternalId,
        user_id: UserId,
    },
    #[serde(rename = "device.user_unlinked")]
    UserUnlinked {
        external_id: ExternalId,
        user_id: UserId,
        /// `request` or `user_deleted`.
        reason: String,
    },
    #[serde(rename = "device.properties_changed")]
    PropertiesChanged {
        external_id: ExternalId,
        set: Properties,
        removed: Vec<String>,
    },
    #[serde(rename = "device.push_token_invalidated")]
    PushTokenInvalidated {
        external_id: ExternalId,
        push_token: String,
        reason: String,
    },
    #[serde(rename = "device.deleted")]
    Deleted { external_id: ExternalId },
    /// A client key registered the device and was handed its secret; only
    /// a request proving it may change or delete the device with a client
    /// key. Not an integration event (no webhook or change queue sees it).
    #[serde(rename = "device_secret.issued")]
    SecretIssued {
        external_id: ExternalId,
        /// SHA-256 (hex) of the secret; the secret itself is never kept.
        secret_sha256: String,
    },
    /// The device's personal data was forgotten (see `personal`): its push
    /// token and property values read as the placeholder, and nothing is
    /// sent to it until a new token is registered. With `former_owner`, the
    /// device had passed to someone else since it was theirs: only what it
    /// still `carried` from their time reads as the placeholder.
    #[serde(rename = "subject.forgotten")]
    Forgotten {
        external_id: ExternalId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        former_owner: Option<UserId>,
        #[serde(default, skip_serializing_if = "Carried::is_empty")]
        carried: Carried,
    },
}

impl DomainEvent for DeviceEvent {}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Device {
    pub live: bool,
    /// The stream has events (the device may have been deleted since).
    pub recorded: bool,
    /// Nothing was written since the device was last forgotten.
    pub forgotten: bool,
    pub push_token: Option<PushToken>,
    pub send_platform: Option<SendPlatform>,
    pub device_platform: Option<DevicePlatform>,
    pub user_id: Option<UserId>,
    pub has_permission: bool,
    pub token_valid: bool,
    pub random_bucket: u16,
    pub properties: Properties,
    /// Set when a client key registered the device.
    pub secret_sha256: Option<String>,
    /// Whose time its values were written in.
    pub eras: Eras,
}

impl Aggregate for Device {
    type Command = DeviceCommand;
    type Event = DeviceEvent;

    fn decide(&self, command: DeviceCommand) -> Result<Vec<DeviceEvent>, DomainError> {
        match command {
            DeviceCommand::Register {
                external_id,
                registration,
                random_bucket,
                by,
                new_secret,
            } => self.register(external_id, registration, random_bucket, &by, new_secret),
            DeviceCommand::SetProperties { external_id, patch } => {
                if !self.live {
                    return Err(DomainError::NotFound("device"));
                }
                Ok(patch
                    .against("properties", &self.properties)?
                    .map(|diff| DeviceEvent::PropertiesChanged {
                        external_id,
                        set: diff.set,
                        removed: diff.remove.into_iter().collect(),
                    })
                    .into_iter()
                    .collect())
            }
            DeviceCommand::Delete { external_id, by } => {
                if !self.live {
                    return Err(DomainError::NotFound("device"));
                }
                self.admits(&by)?;
                Ok(vec![DeviceEvent::Deleted { external_id }])
            }
            DeviceCommand::DeleteOwned {
                external_id,
                user_id,
            } => {
                if !self.live || self.user_id.as_ref() != Some(&user_id) {
                    return Err(DomainError::NotFound("device"));
                }
                Ok(vec![DeviceEvent::Deleted { external_id }])
            }
            DeviceCommand::UnlinkDeletedUser {
                external_id,
                user_id,
            } => {
                if !self.live || self.user_id.as_ref() != Some(&user_id) {
                    return Ok(vec![]);
                }
                Ok(vec![DeviceEvent::UserUnlinked {
                    external_id,
                    user_id,
                    reason: "user_deleted".into(),
                }])
            }
            DeviceCommand::InvalidateToken {
                external_id,
                push_token,
                reason,
            } => {
                // Only the token that failed: a newer one registered meanwhile stays.
                let current = self.push_token.as_ref().map(PushToken::as_str);
                if !self.live || !self.token_valid || current != Some(push_token.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![DeviceEvent::PushTokenInvalidated {
                    external_id,
                    push_token,
                    reason,
                }])
            }
            DeviceCommand::Forget {
                external_id,
                user_id,
            } => {
                if !self.recorded {
                    return Err(DomainError::NotFound("device"));
                }
                Ok(self.forgetting(external_id, user_id).into_iter().collect())
            }
        }
    }

    fn evolve(&mut self, event: &DeviceEvent) {
        // Kept through a deletion and a registration afresh (see `Eras`).
        let mut eras = std::mem::take(&mut self.eras);
        self.recorded = true;
        self.forgotten = match event {
            // A former owner's part changes nothing of the current one's.
            DeviceEvent::Forgotten {
                former_owner: Some(_),
                ..
            } => self.forgotten,
            DeviceEvent::Forgotten { .. } => true,
            _ => false,
        };
        match event {
            DeviceEvent::Registered {
                push_token,
                send_platform,
                device_platform,
                random_bucket,
                user_id,
                has_permission,
                ..
            } => {
                *self = Device {
                    live: true,
                    recorded: true,
                    forgotten: false,
                    push_token: Some(push_token.clone()),
                    send_platform: Some(*send_platform),
                    device_platform: Some(*device_platform),
                    user_id: user_id.clone(),
                    has_permission: *has_permission,
                    token_valid: true,
                    random_bucket: *random_bucket,
                    properties: Properties::new(),
                    secret_sha256: None,
                    eras: Eras::default(),
                };
            }
            DeviceEvent::SecretIssued { secret_sha256, .. } => {
                self.secret_sha256 = Some(secret_sha256.clone());
            }
            DeviceEvent::Updated {
                push_token,
                send_platform,
                device_platform,
                has_permission,
                ..
            } => {
                if let Some(t) = push_token {
                    self.push_token = Some(t.clone());
                    self.token_valid = true;
                }
                if let Some(p) = send_platform {
                    self.send_platform = Some(*p);
                }
                if let Some(p) = device_platform {
                    self.device_platform = Some(*p);
                }
                if let Some(p) = has_permission {
                    self.has_permission = *p;
                }
            }
            DeviceEvent::UserLinked { user_id, .. } => self.user_id = Some(user_id.clone()),
            DeviceEvent::UserUnlinked { .. } => self.user_id = None,
            DeviceEvent::PropertiesChanged { set, removed, .. } => {
                for key in removed {
                    self.properties.remove(key);
                }
                for (key, value) in set {
                    self.properties.insert(key.clone(), value.clone());
                }
            }
            DeviceEvent::PushTokenInvalidated { .. } => self.token_valid = false,
            DeviceEvent::Deleted { .. } => {
                *self = Device {
                    recorded: true,
                    ..Device::default()
                }
            }
            DeviceEvent::Forgotten {
                former_owner: None, ..
            } => {
                if self.push_token.is_some() {
                    self.push_token = Some(PushToken::forgotten());
                }
                self.token_valid = false;
                crate::personal::forget_properties(&mut self.properties);
            }
            DeviceEvent::Forgotten { carried, .. } => self.forget_carried(carried),
        }
        eras.evolve(event, self.user_id.as_ref());
        self.eras = eras;
    }
}

#[cfg(test)]
mod tests;
