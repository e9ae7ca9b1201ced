//! Devices: register or update, read, set properties, delete, audit, search.

mod body;
mod search;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use domain::device::{PushToken, Registration, UserLink};
use domain::ids::{ExternalId, UserId};
use domain::platform::{DevicePlatform, SendPlatform};
use domain::properties::PropertyPatch;
use domain::{DomainError, FieldError};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::body::{DeviceBody, device_response};
use super::events::{AsOfQuery, EventBody, EventPage, limit as event_limit};
use super::schema::{self, ClientId};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, AppQuery, Audit, Key, KeyOrClient, Read, Write};
use crate::state::AppState;
use infra::runtime::names;
use infra::secrets::Secret;
use infra::services::devices::Access;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDevice {
    /// 1 to 4096 bytes, no control characters. For `webpush`, the
    /// subscription JSON.
    #[schema(min_length = 1, max_length = 4096)]
    push_token: String,
    /// `fcm`, `apns`, `webpush`, or their codes 1, 2, 3.
    #[schema(schema_with = schema::send_platform_input)]
    send_platform: serde_json::Value,
    /// `android`, `ios`, `web`, or their codes 1, 2, 3.
    #[schema(schema_with = schema::device_platform_input)]
    device_platform: serde_json::Value,
    /// Links the device to a user; `null` unlinks; absent leaves the link as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ClientId>)]
    user_id: Option<Option<String>>,
    /// Whether the user allowed notifications (default true for a new device;
    /// absent leaves it as it is).
    has_permission: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProperties {
    /// `{"key": value}`: a value's JSON type is the property's type (string,
    /// integer, boolean, list of strings); `null` removes the key.
    #[schema(schema_with = schema::property_patch)]
    properties: serde_json::Value,
}

/// Tells a field sent as `null` (Some(None)) from an absent one (None).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_device, get_device, delete_device))
        .routes(routes!(patch_properties))
        .routes(routes!(device_events))
        .routes(routes!(search::search_devices))
}

/// The header a client key proves a device is its own with.
pub const DEVICE_SECRET: &str = "herald-device-secret";

/// Who asks: a write key is the app's server; a client key proves the
/// device is its own with `Herald-Device-Secret`.
pub(crate) fn access<R>(key: &KeyOrClient<R>, headers: &HeaderMap) -> ApiResult<Access> {
    if !key.client {
        return Ok(Access::Server);
    }
    let secret = match headers.get(DEVICE_SECRET) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) if !s.trim().is_empty() && s.len() <= 255 => {
                Some(Secret::new(s.trim().to_owned()))
            }
            _ => {
                return Err(ApiError::invalid(
                    "herald-device-secret",
                    "must be the device secret this device was registered with",
                ));
            }
        },
    };
    Ok(Access::Client { secret })
}

pub(crate) fn external_id(raw: String) -> Result<ExternalId, ApiError> {
    Ok(ExternalId::parse(raw)?)
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

/// A platform given by name or by its integer code.
fn platform<T>(
    raw: &serde_json::Value,
    by_name: impl Fn(&str) -> Option<T>,
    by_code: impl Fn(i64) -> Option<T>,
) -> Option<T> {
    match raw {
        serde_json::Value::String(name) => by_name(name),
        serde_json::Value::Number(n) => n.as_i64().and_then(by_code),
        _ => None,
    }
}

fn registration(body: PutDevice) -> Result<Registration, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let push_token = collect(&mut errors, PushToken::parse(body.push_token));
    let send_platform = collect(
        &mut errors,
        platform(
            &body.send_platform,
            SendPlatform::parse,
            SendPlatform::from_code,
        )
        .ok_or_else(|| {
            DomainError::invalid(
                "send_platform",
                "must be one of fcm, apns, webpush (or their codes 1, 2, 3)",
            )
        }),
    );
    let device_platform = collect(
        &mut errors,
        platform(
            &body.device_platform,
            DevicePlatform::parse,
            DevicePlatform::from_code,
        )
        .ok_or_else(|| {
            DomainError::invalid(
                "device_platform",
                "must be one of android, ios, web (or their codes 1, 2, 3)",
            )
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

/// Registers a device, or updates what changed. 201 when new, 200 otherwise.
///
/// A client key may call this too: a new device's answer then carries its
/// `device_secret` (once), and only a request sending it back as
/// `Herald-Device-Secret` may change the device with a client key later.
#[utoipa::path(put, path = "/v1/devices/{external_id}", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"),
        ("Herald-Device-Secret" = Option<String>, Header, description = "With a client key: the secret handed out when the key registered this device")),
    request_body = PutDevice,
    responses(
        (status = 200, body = DeviceBody, headers(("herald-position" = i64, description = "Log position of the device's last event"))),
        (status = 201, body = DeviceBody, headers(("herald-position" = i64, description = "Log position of the device's last event"))),
    ))]
async fn put_device(
    State(state): State<AppState>,
    key: KeyOrClient<Write>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<PutDevice>,
) -> ApiResult<(StatusCode, Json<DeviceBody>)> {
    let access = access(&key, &headers)?;
    let external_id = external_id(raw_id)?;
    let registration = registration(body)?;
    let outcome = state
        .services
        .devices
        .register(&key.ctx, key.app_id, external_id, registration, &access)
        .await?;
    device_response(outcome)
}

/// Reads a device.
#[utoipa::path(get, path = "/v1/devices/{external_id}", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), AsOfQuery),
    responses(
        (status = 200, body = DeviceBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_device(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<AsOfQuery>,
) -> ApiResult<Json<DeviceBody>> {
    state.fresh(&key.ctx, key.app_id, &[names::DEVICES]).await?;
    let external_id = external_id(raw_id)?;
    let device = match query.instant()? {
        None => state.services.devices.get(key.app_id, &external_id).await?,
        Some(as_of) => {
            state
                .services
                .devices
                .get_as_of(key.app_id, &external_id, as_of)
                .await?
        }
    };
    let device = device.ok_or_else(|| ApiError::NotFound("device not found".into()))?;
    Ok(Json(device.into()))
}

/// Deletes a device: it leaves reads and searches; a later PUT registers it afresh.
///
/// A client key may delete a device it registered, with its secret.
#[utoipa::path(delete, path = "/v1/devices/{external_id}", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"),
        ("Herald-Device-Secret" = Option<String>, Header, description = "With a client key: the secret handed out when the key registered this device")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_device(
    State(state): State<AppState>,
    key: KeyOrClient<Write>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult<StatusCode> {
    let access = access(&key, &headers)?;
    let external_id = external_id(raw_id)?;
    state
        .services
        .devices
        .delete(&key.ctx, key.app_id, external_id, &access)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets and removes typed properties; one event when something changes, none otherwise.
#[utoipa::path(patch, path = "/v1/devices/{external_id}/properties", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded")),
    request_body = PatchProperties,
    responses(
        (status = 200, body = DeviceBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn patch_properties(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<PatchProperties>,
) -> ApiResult<(StatusCode, Json<DeviceBody>)> {
    let external_id = external_id(raw_id)?;
    let patch = PropertyPatch::parse("properties", &body.properties)?;
    let outcome = state
        .services
        .devices
        .set_properties(&key.ctx, key.app_id, external_id, patch)
        .await?;
    let (_, body) = device_response(outcome)?;
    Ok((StatusCode::OK, body))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The first stream version to return (default 1; lower values count as 1).
    from_version: Option<i64>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The device's own stream of events, for auditors.
#[utoipa::path(get, path = "/v1/devices/{external_id}/events", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), StreamQuery),
    responses((status = 200, body = EventPage)))]
async fn device_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<StreamQuery>,
) -> ApiResult<Json<EventPage>> {
    let external_id = external_id(raw_id)?;
    let from = query.from_version.unwrap_or(1).max(1);
    let limit = event_limit(query.limit)?;
    let events = state
        .services
        .devices
        .events(key.app_id, &external_id, from, limit)
        .await?;
    let next_after = events.last().map_or(0, |e| e.position);
    Ok(Json(EventPage::new(
        events.into_iter().map(EventBody::from).collect(),
        next_after,
    )))
}
