//! A device as the API shows it.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use infra::services::devices::DeviceOutcome;
use projections::devices::DeviceRecord;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::routes::schema::{ClientId, DevicePlatform, SendPlatform};

#[derive(Serialize, ToSchema)]
pub struct DeviceBody {
    #[schema(value_type = ClientId)]
    external_id: String,
    push_token: String,
    #[schema(value_type = SendPlatform)]
    send_platform: String,
    #[schema(value_type = DevicePlatform)]
    device_platform: String,
    #[schema(value_type = Option<ClientId>)]
    user_id: Option<String>,
    has_permission: bool,
    /// False once a push provider reported the token dead, until a new one is registered.
    push_token_valid: bool,
    #[schema(schema_with = crate::routes::schema::properties)]
    properties: serde_json::Value,
    /// 1..=10000, drawn once at registration.
    #[schema(minimum = 1, maximum = 10000)]
    random_bucket: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The device stream's version.
    #[schema(minimum = 1)]
    version: i64,
    /// Only in the answer to a client key's registration of a new device,
    /// and only there: the secret to send as `Herald-Device-Secret` to
    /// change or delete this device with the client key later. Herald keeps
    /// only its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_secret: Option<String>,
}

impl From<DeviceRecord> for DeviceBody {
    fn from(d: DeviceRecord) -> Self {
        Self {
            external_id: d.external_id,
            push_token: d.push_token,
            send_platform: d.send_platform,
            device_platform: d.device_platform,
            user_id: d.user_id,
            has_permission: d.has_permission,
            push_token_valid: d.token_valid,
            properties: serde_json::to_value(d.properties).unwrap_or_default(),
            random_bucket: d.random_bucket,
            created_at: d.created_at,
            updated_at: d.updated_at,
            version: d.version,
            device_secret: None,
        }
    }
}

/// The response of a device command: 201 when it registered the device,
/// else 200; the device.
pub fn device_response(outcome: DeviceOutcome) -> ApiResult<(StatusCode, Json<DeviceBody>)> {
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let device = outcome
        .device
        .ok_or_else(|| ApiError::NotFound("device not found".into()))?;
    let mut body = DeviceBody::from(device);
    body.device_secret = outcome.secret.map(|s| s.expose().clone());
    Ok((status, Json(body)))
}
