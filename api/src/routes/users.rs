//! Users: profile, status, their devices, deletion.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::FieldError;
use domain::ids::UserId;
use domain::properties::PropertyPatch;
use domain::text::Name;
use domain::user::{Change, Email, Profile, UserStatus};
use infra::services::users::{UserOutcome, UserView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::{DeviceBody, collect, external_id, present};
use super::events::AsOfQuery;
use super::schema::{self, ClientId};
use crate::cursor;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, AppQuery, Key, Read, Write};
use crate::state::AppState;
use infra::runtime::names;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    /// 1 to 200 characters once trimmed, no control characters; `null`
    /// clears; absent keeps.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    name: Option<Option<String>>,
    /// An e-mail address (at most 254 bytes, one `@`, no spaces); `null`
    /// clears; absent keeps.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// Typed properties, as for devices; `null` values remove keys.
    #[schema(schema_with = schema::nullable_property_patch)]
    properties: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutStatus {
    #[schema(value_type = schema::UserStatus)]
    status: String,
    /// Why (at most 500 characters); recorded in the event.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    #[schema(value_type = ClientId)]
    user_id: String,
    name: Option<String>,
    email: Option<String>,
    #[schema(value_type = schema::UserStatus)]
    status: String,
    #[schema(schema_with = schema::properties)]
    properties: serde_json::Value,
    /// Live devices linked to the user (in a read `as_of` an instant: the
    /// devices linked to them then).
    #[schema(minimum = 0)]
    device_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The user stream's version.
    #[schema(minimum = 1)]
    version: i64,
}

impl From<UserView> for UserBody {
    fn from(v: UserView) -> Self {
        let u = v.user;
        Self {
            user_id: u.user_id,
            name: u.name,
            email: u.email,
            status: u.status,
            properties: serde_json::to_value(u.properties).unwrap_or_default(),
            device_count: v.device_count,
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserDevicePage {
    devices: Vec<DeviceBody>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_user, get_user, delete_user))
        .routes(routes!(put_status))
        .routes(routes!(user_devices))
        .routes(routes!(delete_user_device))
}

fn user_id(raw: String) -> Result<UserId, ApiError> {
    Ok(UserId::parse(raw)?)
}

fn change<T>(
    errors: &mut Vec<FieldError>,
    raw: Option<Option<String>>,
    parse: impl FnOnce(&str) -> Result<T, domain::DomainError>,
) -> Change<T> {
    match raw {
        None => Change::Keep,
        Some(None) => Change::Clear,
        Some(Some(v)) => collect(errors, parse(&v)).map_or(Change::Keep, Change::Set),
    }
}

fn profile(body: PutUser) -> Result<Profile, ApiError> {
    let mut errors = Vec::new();
    let name = change(&mut errors, body.name, |n| Name::parse("name", n));
    let email = change(&mut errors, body.email, Email::parse);
    let properties = match &body.properties {
        Some(raw) if !raw.is_null() => {
            collect(&mut errors, PropertyPatch::parse("properties", raw))
        }
        _ => Some(PropertyPatch::default()),
    };
    match properties {
        Some(properties) if errors.is_empty() => Ok(Profile {
            name,
            email,
            properties,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn user_response(
    outcome: UserOutcome,
    created_status: bool,
) -> ApiResult<(StatusCode, Json<UserBody>)> {
    let status = if created_status && outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let user = outcome
        .user
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    Ok((status, Json(user.into())))
}

/// Creates a user (201) or changes what differs (200).
#[utoipa::path(put, path = "/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded")),
    request_body = PutUser,
    responses(
        (status = 200, body = UserBody),
        (status = 201, body = UserBody),
    ))]
async fn put_user(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PutUser>,
) -> ApiResult<(StatusCode, Json<UserBody>)> {
    let user_id = user_id(raw)?;
    let profile = profile(body)?;
    let outcome = state
        .services
        .users
        .upsert(&key.ctx, key.app_id, user_id, profile)
        .await?;
    user_response(outcome, true)
}

/// Reads a user.
#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), AsOfQuery),
    responses(
        (status = 200, body = UserBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_user(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<AsOfQuery>,
) -> ApiResult<Json<UserBody>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::USERS, names::DEVICES])
        .await?;
    let user_id = user_id(raw)?;
    let body = match query.instant()? {
        None => state
            .services
            .users
            .get(key.app_id, &user_id)
            .await?
            .map(UserBody::from),
        Some(as_of) => state
            .services
            .users
            .get_as_of(key.app_id, &user_id, as_of)
            .await?
            .map(UserBody::from),
    };
    Ok(Json(body.ok_or_else(|| {
        ApiError::NotFound("user not found".into())
    })?))
}

/// Deletes a user; their devices are unlinked (each by an event on the device).
#[utoipa::path(delete, path = "/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_user(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let user_id = user_id(raw)?;
    state
        .services
        .users
        .delete(&key.ctx, key.app_id, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the user's status; the same status again changes nothing.
#[utoipa::path(put, path = "/v1/users/{user_id}/status", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded")),
    request_body = PutStatus,
    responses(
        (status = 200, body = UserBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_status(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PutStatus>,
) -> ApiResult<(StatusCode, Json<UserBody>)> {
    let user_id = user_id(raw)?;
    let status = UserStatus::parse(&body.status)?;
    let outcome = state
        .services
        .users
        .set_status(&key.ctx, key.app_id, user_id, status, body.reason)
        .await?;
    user_response(outcome, false)
}

/// The user's devices, in registration order.
#[utoipa::path(get, path = "/v1/users/{user_id}/devices", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), PageQuery),
    responses((status = 200, body = UserDevicePage)))]
async fn user_devices(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<PageQuery>,
) -> ApiResult<Json<UserDevicePage>> {
    state.fresh(&key.ctx, key.app_id, &[names::DEVICES]).await?;
    let user_id = user_id(raw)?;
    let limit = cursor::limit(query.limit, 100, 1000)?;
    let after = cursor::decode("user-devices", query.cursor.as_deref())?;
    let mut devices = state
        .services
        .users
        .devices(key.app_id, &user_id, after, limit + 1)
        .await?;
    let more = devices.len() as i64 > limit;
    devices.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more {
        devices
            .last()
            .map(|d| cursor::encode("user-devices", d.device_key))
    } else {
        None
    };
    Ok(Json(UserDevicePage {
        devices: devices.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Deletes the device only if it belongs to this user; otherwise 404 and nothing changes.
#[utoipa::path(delete, path = "/v1/users/{user_id}/devices/{external_id}", tag = "users", security(("bearer" = [])),
    params(
        ("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"),
        ("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_user_device(
    State(state): State<AppState>,
    key: Key<Write>,
    Path((raw_user, raw_device)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let user_id = user_id(raw_user)?;
    let external_id = external_id(raw_device)?;
    state
        .services
        .devices
        .delete_owned(&key.ctx, key.app_id, user_id, external_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
