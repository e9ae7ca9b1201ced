//! How device events change a device record. The read model, a command's
//! response and reads "as of" an instant all use this one fold.

use chrono::{DateTime, Utc};
use domain::device::DeviceEvent;
use domain::properties::Properties;

use super::DeviceRecord;

/// The envelope facts a fold needs.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub stream_version: i64,
}

/// Applies one event. `None` is "no live device".
pub fn apply(device: &mut Option<DeviceRecord>, event: &DeviceEvent, at: At) {
    match event {
        DeviceEvent::Registered {
            external_id,
            push_token,
            send_platform,
            device_platform,
            random_bucket,
            user_id,
            has_permission,
        } => {
            *device = Some(DeviceRecord {
                device_key: at.position,
                external_id: external_id.as_str().to_owned(),
                push_token: push_token.as_str().to_owned(),
                send_platform: send_platform.as_str().to_owned(),
                device_platform: device_platform.as_str().to_owned(),
                user_id: user_id.as_ref().map(|u| u.as_str().to_owned()),
                has_permission: *has_permission,
                token_valid: true,
                properties: Properties::new(),
                random_bucket: i64::from(*random_bucket),
                created_at: at.recorded_at,
                updated_at: at.recorded_at,
                version: at.stream_version,
                secret_sha256: None,
            });
            return;
        }
        DeviceEvent::Deleted { .. } => {
            *device = None;
            return;
        }
        _ => {}
    }
    let Some(d) = device.as_mut() else { return };
    d.updated_at = at.recorded_at;
    d.version = at.stream_version;
    match event {
        DeviceEvent::Updated {
            push_token,
            send_platform,
            device_platform,
            has_permission,
            ..
        } => {
            if let Some(t) = push_token {
                d.push_token = t.as_str().to_owned();
                d.token_valid = true;
            }
            if let Some(p) = send_platform {
                d.send_platform = p.as_str().to_owned();
            }
            if let Some(p) = device_platform {
                d.device_platform = p.as_str().to_owned();
            }
            if let Some(p) = has_permission {
                d.has_permission = *p;
            }
        }
        DeviceEvent::UserLinked { user_id, .. } => d.user_id = Some(user_id.as_str().to_owned()),
        DeviceEvent::UserUnlinked { .. } => d.user_id = None,
        DeviceEvent::PropertiesChanged { set, removed, .. } => {
            for key in removed {
                d.properties.remove(key);
            }
            d.properties
                .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        DeviceEvent::PushTokenInvalidated { .. } => d.token_valid = false,
        DeviceEvent::SecretIssued { secret_sha256, .. } => {
            d.secret_sha256 = Some(secret_sha256.clone());
        }
        DeviceEvent::Forgotten {
            former_owner: None, ..
        } => {
            d.push_token = domain::personal::PLACEHOLDER.to_owned();
            d.token_valid = false;
            domain::personal::forget_properties(&mut d.properties);
        }
        // A former owner forgotten: what the device still carried from
        // their time, as a rebuild (their keys gone) opens it.
        DeviceEvent::Forgotten { carried, .. } => {
            if carried.push_token {
                d.push_token = domain::personal::PLACEHOLDER.to_owned();
                d.token_valid = false;
            }
            carried.forget(&mut d.properties);
        }
        DeviceEvent::Registered { .. } | DeviceEvent::Deleted { .. } => {}
    }
}

/// Folds a stream (or part of one) from nothing.
#[derive(Debug, Clone, Default)]
pub struct DeviceView {
    device: Option<DeviceRecord>,
}

impl DeviceView {
    pub fn apply(&mut self, event: &DeviceEvent, at: At) {
        apply(&mut self.device, event, at);
    }

    pub fn into_record(self) -> Option<DeviceRecord> {
        self.device
    }
}
