//! How a device decides a registration and who may make it: the server
//! always, a client key a new device or one it registered (with its
//! secret); and which of the fields sent changed.

use super::{By, Device, DeviceEvent, Registration, UserLink};
use crate::error::DomainError;
use crate::ids::ExternalId;

/// Whether a client key that sent the secret with SHA-256 `presented` may
/// act on a registered device whose secret hashes to `secret` (`None`: the
/// app's server registered it, and a client key may not touch it).
pub fn client_may(secret: Option<&str>, presented: Option<&str>) -> Result<(), DomainError> {
    let Some(secret) = secret else {
        return Err(DomainError::Forbidden(
            "this device was registered by the app's server; a client key cannot use it".into(),
        ));
    };
    match presented {
        None => Err(DomainError::Forbidden(
            "this device is registered; send its secret in the Herald-Device-Secret header".into(),
        )),
        Some(p) if p != secret => Err(DomainError::Forbidden(
            "the Herald-Device-Secret does not match this device".into(),
        )),
        Some(_) => Ok(()),
    }
}

fn changed<T: PartialEq>(old: &Option<T>, new: T) -> Option<T> {
    if old.as_ref() == Some(&new) {
        None
    } else {
        Some(new)
    }
}

impl Device {
    /// Whether `by` may change this device: the server always; a client key
    /// a new device, or one it registered, with its secret.
    pub(super) fn admits(&self, by: &By) -> Result<(), DomainError> {
        match by {
            By::Server => Ok(()),
            By::Client { .. } if !self.live => Ok(()),
            By::Client { presented } => {
                client_may(self.secret_sha256.as_deref(), presented.as_deref())
            }
        }
    }

    pub(super) fn register(
        &self,
        external_id: ExternalId,
        r: Registration,
        bucket: u16,
        by: &By,
        new_secret: Option<String>,
    ) -> Result<Vec<DeviceEvent>, DomainError> {
        self.admits(by)?;
        if matches!(by, By::Client { .. }) && matches!(r.user, UserLink::Link(_)) {
            return Err(DomainError::Forbidden(
                "a client key cannot link a device to a user (it cannot prove who the user is); \
                 link it from the app's server with a write key"
                    .into(),
            ));
        }
        if !self.live {
            let user_id = match r.user {
                UserLink::Link(u) => Some(u),
                UserLink::Keep | UserLink::Unlink => None,
            };
            let mut events = vec![DeviceEvent::Registered {
                external_id: external_id.clone(),
                push_token: r.push_token,
                send_platform: r.send_platform,
                device_platform: r.device_platform,
                random_bucket: bucket,
                user_id,
                has_permission: r.has_permission.unwrap_or(true),
            }];
            if let (By::Client { .. }, Some(secret_sha256)) = (by, new_secret) {
                events.push(DeviceEvent::SecretIssued {
                    external_id,
                    secret_sha256,
                });
            }
            return Ok(events);
        }
        let mut events = Vec::new();
        // The link first: a new token sent with it is the new owner's (a
        // forget of the previous owner leaves it; see `personal`).
        match (r.user, &self.user_id) {
            (UserLink::Link(new), Some(old)) if &new == old => {}
            (UserLink::Link(new), old) => {
                if let Some(old) = old {
                    events.push(DeviceEvent::UserUnlinked {
                        external_id: external_id.clone(),
                        user_id: old.clone(),
                        reason: "request".into(),
                    });
                }
                events.push(DeviceEvent::UserLinked {
                    external_id: external_id.clone(),
                    user_id: new,
                });
            }
            (UserLink::Unlink, Some(old)) => events.push(DeviceEvent::UserUnlinked {
                external_id: external_id.clone(),
                user_id: old.clone(),
                reason: "request".into(),
            }),
            (UserLink::Unlink | UserLink::Keep, _) => {}
        }
        // A re-registration of a token found dead revives it.
        let push_token = if self.token_valid {
            changed(&self.push_token, r.push_token)
        } else {
            Some(r.push_token)
        };
        let send_platform = changed(&self.send_platform, r.send_platform);
        let device_platform = changed(&self.device_platform, r.device_platform);
        let has_permission = r.has_permission.filter(|p| *p != self.has_permission);
        if push_token.is_some()
            || send_platform.is_some()
            || device_platform.is_some()
            || has_permission.is_some()
        {
            events.push(DeviceEvent::Updated {
                external_id,
                push_token,
                send_platform,
                device_platform,
                has_permission,
            });
        }
        Ok(events)
    }
}
