//! Where a device runs and which provider delivers its pushes.

use serde::{Deserialize, Serialize};

/// The push service a device's token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendPlatform {
    Fcm,
    Apns,
    Webpush,
}

/// The kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DevicePlatform {
    Android,
    Ios,
    Web,
}

impl SendPlatform {
    pub const ALL: [SendPlatform; 3] =
        [SendPlatform::Fcm, SendPlatform::Apns, SendPlatform::Webpush];

    pub fn as_str(self) -> &'static str {
        match self {
            SendPlatform::Fcm => "fcm",
            SendPlatform::Apns => "apns",
            SendPlatform::Webpush => "webpush",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// The integer codes other systems send: 1 FCM, 2 APNs, 3 Web Push.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(SendPlatform::Fcm),
            2 => Some(SendPlatform::Apns),
            3 => Some(SendPlatform::Webpush),
            _ => None,
        }
    }
}

impl DevicePlatform {
    pub const ALL: [DevicePlatform; 3] = [
        DevicePlatform::Android,
        DevicePlatform::Ios,
        DevicePlatform::Web,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DevicePlatform::Android => "android",
            DevicePlatform::Ios => "ios",
            DevicePlatform::Web => "web",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// The integer codes other systems send: 1 Android, 2 iOS, 3 web.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(DevicePlatform::Android),
            2 => Some(DevicePlatform::Ios),
            3 => Some(DevicePlatform::Web),
            _ => None,
        }
    }
}
