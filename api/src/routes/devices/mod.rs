//! Devices: register or update (`PUT`), read (`GET`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use domain::device::{PushToken, Registration, UserLink};
use domain::ids::{ExternalId, UserId};
use domain::platform::{DevicePlatform, SendPlatform};
use domain::{DomainError, FieldError};
use infra::services::devices::{self, DeviceOutcome};
use projections::devices::DeviceRecord;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, Key, Read, Write};
use crate::state::AppState;

/// The header carrying the log position of a command's last event.
pub const POSITION_HEADER: &str = "herald-position";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDevice {
    /// 1 to 4096 bytes. For `webpush`, the subscription JSON.
    push_token: String,
    /// `fcm`, `apns` or `webpush`.
    send_platform: String,
    /// `android`, `ios` or `web`.
    device_platform: String,
    /// Links the device to a user; `null` unlinks; absent leaves the link as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    user_id: Option<Option<String>>,
    /// Whether the user allowed notifications (default true for a new device;
    /// absent leaves it as it is).
    has_permission: Option<bool>,
}

/// Tells a field sent as `null` (Some(None)) from an absent one (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct DeviceBody {
    external_id: String,
    push_token: String,
    send_platform: String,
    device_platform: String,
    user_id: Option<String>,
    has_permission: bool,
    /// False once a push provider reported the token dead, until a new one is registered.
    push_token_valid: bool,
    #[schema(value_type = Object)]
    properties: serde_json::Value,
    /// 1..=10000, drawn once at registration.
    random_bucket: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The device stream's version.
    version: i64,
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
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_device, get_device))
}

pub(crate) fn external_id(raw: String) -> Result<ExternalId, ApiError> {
    Ok(ExternalId::parse(raw)?)
}

fn registration(body: PutDevice) -> Result<Registration, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let push_token = collect(&mut errors, PushToken::parse(body.push_token));
    let send_platform = collect(
        &mut errors,
        SendPlatform::parse(&body.send_platform).ok_or_else(|| {
            DomainError::invalid("send_platform", "must be one of fcm, apns, webpush")
        }),
    );
    let device_platform = collect(
        &mut errors,
        DevicePlatform::parse(&body.device_platform).ok_or_else(|| {
            DomainError::invalid("device_platform", "must be one of android, ios, web")
        }),
    );
    let user = match body.user_id {
        None => Some(UserLink::Keep),
        Some(None) => Some(UserLink::Unlink),
        Some(Some(u)) => collect(&mut errors, UserId::parse(u)).map(UserLink::Link),
    };
    match (push_token, send_platform, device_platform, user) {
        (Some(push_token), Some(send_platform), Some(device_platform), Some(user))
            if errors.is_empty() =>
        {
            Ok(Registration {
                push_token,
                send_platform,
                device_platform,
                user,
                has_permission: body.has_permission,
            })
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Keeps a value, or its field errors for one combined 400.
pub(crate) fn collect<T>(
    errors: &mut Vec<FieldError>,
    result: Result<T, DomainError>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(DomainError::Invalid(e)) => {
            errors.extend(e);
            None
        }
        Err(other) => {
            errors.push(FieldError::new("body", other.to_string()));
            None
        }
    }
}

/// The response of a device command: the device, and its log position.
pub(crate) fn device_response(
    outcome: DeviceOutcome,
) -> ApiResult<(StatusCode, HeaderMap, Json<DeviceBody>)> {
    let mut headers = HeaderMap::new();
    if let Some(position) = outcome.position {
        headers.insert(POSITION_HEADER, HeaderValue::from(position));
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let device = outcome
        .device
        .ok_or_else(|| ApiError::NotFound("device not found".into()))?;
    Ok((status, headers, Json(device.into())))
}

/// Registers a device, or updates what changed. 201 when new, 200 otherwise.
#[utoipa::path(put, path = "/v1/devices/{external_id}", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, description = "1 to 255 bytes, percent-encoded")),
    request_body = PutDevice,
    responses(
        (status = 200, body = DeviceBody, headers(("herald-position" = i64, description = "Log position of the device's last event"))),
        (status = 201, body = DeviceBody, headers(("herald-position" = i64, description = "Log position of the device's last event"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_device(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<PutDevice>,
) -> ApiResult<(StatusCode, HeaderMap, Json<DeviceBody>)> {
    let external_id = external_id(raw_id)?;
    let registration = registration(body)?;
    let outcome = devices::register(
        &state.herald,
        &key.ctx,
        key.app_id,
        external_id,
        registration,
    )
    .await?;
    device_response(outcome)
}

/// Reads a device.
#[utoipa::path(get, path = "/v1/devices/{external_id}", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, description = "1 to 255 bytes, percent-encoded")),
    responses(
        (status = 200, body = DeviceBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_device(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<DeviceBody>> {
    let external_id = external_id(raw_id)?;
    let device = devices::get(&state.herald, key.app_id, &external_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("device not found".into()))?;
    Ok(Json(device.into()))
}
