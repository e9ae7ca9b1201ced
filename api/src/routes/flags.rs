//! Feature flags: `POST|GET /v1/feature-flags`,
//! `GET|PATCH|DELETE /v1/feature-flags/{name}` (admin), and their
//! evaluation for one device, served from memory
//! (`GET /v1/feature-flags/evaluate[/{name}]`). See docs/feature-flags.md.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use domain::flag::{Change, FlagName, Settings};
use domain::platform::DevicePlatform;
use infra::services::flags::{Claimed, Evaluation};
use projections::flags::FlagRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::{access, present};
use super::schema;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, AppQuery, Key, KeyOrClient, Read};
use crate::minimal;
use crate::state::AppState;
use axum::response::Response;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_flag, list_flags))
        .routes(routes!(get_flag, change_flag, delete_flag))
        .routes(routes!(evaluate_all))
        .routes(routes!(evaluate_one))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlag {
    /// 1-64 characters of `[A-Za-z0-9_.-]` (not `evaluate`); unique in the app.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// At most 1000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// Default false: a new flag is off until enabled.
    #[serde(default)]
    enabled: bool,
    /// Which devices it is on for: a condition tree as in device search
    /// (`app_version` is the `X-App-Version` header when given;
    /// `random_bucket` 1-10000 makes percentage rollouts). Absent or null:
    /// every device.
    #[schema(schema_with = schema::nullable_condition)]
    conditions: Option<Value>,
    /// Free JSON object handed out with every evaluation (at most 8 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchFlag {
    /// `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    enabled: Option<bool>,
    /// `null`: every device.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schema::nullable_condition)]
    conditions: Option<Option<Value>>,
    /// Replaces the metadata.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct FlagBody {
    name: String,
    description: Option<String>,
    enabled: bool,
    #[schema(schema_with = schema::nullable_condition)]
    conditions: Option<Value>,
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<FlagRecord> for FlagBody {
    fn from(f: FlagRecord) -> Self {
        Self {
            name: f.name,
            description: f.settings.description,
            enabled: f.settings.enabled,
            conditions: f.settings.conditions,
            metadata: f.settings.metadata,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FlagList {
    flags: Vec<FlagBody>,
}

#[derive(Serialize, ToSchema)]
pub struct EvaluationBody {
    name: String,
    /// Whether the flag is on for this device (false for an unknown flag).
    is_active: bool,
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

impl From<Evaluation> for EvaluationBody {
    fn from(e: Evaluation) -> Self {
        Self {
            name: e.name,
            is_active: e.is_active,
            metadata: e.metadata,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EvaluationList {
    flags: Vec<EvaluationBody>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvaluateQuery {
    /// The registered device to evaluate for. Absent, or not registered
    /// yet: the `X-App-Device-Id`, `X-App-Version` and `X-App-Platform`
    /// headers describe the device.
    external_id: Option<String>,
}

fn name(raw: &str) -> ApiResult<FlagName> {
    Ok(FlagName::parse(raw)?)
}

fn found(record: Option<FlagRecord>) -> ApiResult<FlagBody> {
    record
        .map(FlagBody::from)
        .ok_or_else(|| ApiError::NotFound("feature flag not found".into()))
}

/// Creates a flag (an event, like every change).
#[utoipa::path(post, path = "/v1/feature-flags", tag = "feature-flags", security(("bearer" = [])),
    request_body = CreateFlag,
    responses(
        (status = 201, body = FlagBody),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "A flag of that name exists"),
    ))]
async fn create_flag(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppJson(body): AppJson<CreateFlag>,
) -> ApiResult<Response> {
    let flag_name = name(&body.name)?;
    let settings = Settings {
        description: body.description,
        enabled: body.enabled,
        conditions: body.conditions.filter(|c| !c.is_null()),
        metadata: body.metadata,
    };
    let created = state
        .services
        .flags
        .create(&key.ctx, key.app_id, flag_name, settings)
        .await?;
    Ok(minimal::created(
        StatusCode::CREATED,
        format!("/v1/feature-flags/{}", created.id.as_str()),
        created.record.map(found).transpose()?,
    ))
}

/// The app's flags, by name.
#[utoipa::path(get, path = "/v1/feature-flags", tag = "feature-flags", security(("bearer" = [])),
    responses((status = 200, body = FlagList)))]
async fn list_flags(State(state): State<AppState>, key: Key<Admin>) -> ApiResult<Json<FlagList>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::FEATURE_FLAGS])
        .await?;
    let flags = state.services.flags.list(key.app_id).await?;
    Ok(Json(FlagList {
        flags: flags.into_iter().map(FlagBody::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/feature-flags/{name}", tag = "feature-flags", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, body = FlagBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_flag(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<FlagBody>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::FEATURE_FLAGS])
        .await?;
    let flag_name = name(&raw)?;
    let record = state
        .services
        .flags
        .get(key.app_id, flag_name.as_str())
        .await?;
    Ok(Json(found(record)?))
}

/// Changes what is sent; the rest stays.
#[utoipa::path(patch, path = "/v1/feature-flags/{name}", tag = "feature-flags", security(("bearer" = [])),
    params(("name" = String, Path)),
    request_body = PatchFlag,
    responses(
        (status = 200, body = FlagBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_flag(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PatchFlag>,
) -> ApiResult<Json<FlagBody>> {
    let flag_name = name(&raw)?;
    let change = Change {
        description: body.description,
        enabled: body.enabled,
        conditions: body.conditions.map(|c| c.filter(|c| !c.is_null())),
        metadata: body.metadata,
    };
    let changed = state
        .services
        .flags
        .change(&key.ctx, key.app_id, flag_name, change)
        .await?;
    Ok(Json(found(changed)?))
}

#[utoipa::path(delete, path = "/v1/feature-flags/{name}", tag = "feature-flags", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_flag(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let flag_name = name(&raw)?;
    state
        .services
        .flags
        .delete(&key.ctx, key.app_id, flag_name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn header(headers: &HeaderMap, name: &str) -> ApiResult<Option<String>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.trim().is_empty() && s.len() <= 255 => Ok(Some(s.trim().to_owned())),
            _ => Err(ApiError::invalid(
                name,
                "must be 1 to 255 visible ASCII characters",
            )),
        },
    }
}

/// What the `X-App-*` headers say of the device.
fn claimed(headers: &HeaderMap) -> ApiResult<Claimed> {
    let platform = match header(headers, "x-app-platform")? {
        None => None,
        Some(raw) => {
            let found = DevicePlatform::parse(&raw.to_ascii_lowercase())
                .or_else(|| raw.parse::<i64>().ok().and_then(DevicePlatform::from_code));
            Some(
                found
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "x-app-platform",
                            "must be one of android, ios, web (or their codes 1, 2, 3)",
                        )
                    })?
                    .as_str()
                    .to_owned(),
            )
        }
    };
    Ok(Claimed {
        device_id: header(headers, "x-app-device-id")?,
        version: header(headers, "x-app-version")?,
        platform,
    })
}

fn external_id(query: &EvaluateQuery) -> ApiResult<Option<String>> {
    match &query.external_id {
        None => Ok(None),
        Some(raw) => Ok(Some(
            domain::ids::ExternalId::parse(raw.clone())?
                .as_str()
                .to_owned(),
        )),
    }
}

/// Every flag of the app for one device: `{"flags": [{"name", "is_active",
/// "metadata"}]}`. Served from memory (a node reloads an app's flags at
/// most every second, at once after changing them).
#[utoipa::path(get, path = "/v1/feature-flags/evaluate", tag = "feature-flags", security(("bearer" = [])),
    params(EvaluateQuery,
        ("X-App-Device-Id" = Option<String>, Header, description = "The device's id, for a device not registered yet (its random_bucket is derived from it)"),
        ("X-App-Version" = Option<String>, Header, description = "The app's version: the `app_version` property"),
        ("X-App-Platform" = Option<String>, Header, description = "android, ios, web (or 1, 2, 3)"),
        ("Herald-Device-Secret" = Option<String>, Header, description = "With a client key and the `external_id` of a registered device: that device's secret")),
    responses((status = 200, body = EvaluationList)))]
async fn evaluate_all(
    State(state): State<AppState>,
    key: KeyOrClient<Read>,
    headers: HeaderMap,
    AppQuery(query): AppQuery<EvaluateQuery>,
) -> ApiResult<Json<EvaluationList>> {
    let flags = evaluated(&state, &key, &headers, &query, None).await?;
    Ok(Json(EvaluationList {
        flags: flags.into_iter().map(EvaluationBody::from).collect(),
    }))
}

/// One flag for one device; an unknown flag is `is_active: false` (200).
#[utoipa::path(get, path = "/v1/feature-flags/evaluate/{name}", tag = "feature-flags", security(("bearer" = [])),
    params(("name" = String, Path), EvaluateQuery,
        ("X-App-Device-Id" = Option<String>, Header, description = "The device's id, for a device not registered yet"),
        ("X-App-Version" = Option<String>, Header, description = "The app's version: the `app_version` property"),
        ("X-App-Platform" = Option<String>, Header, description = "android, ios, web (or 1, 2, 3)"),
        ("Herald-Device-Secret" = Option<String>, Header, description = "With a client key and the `external_id` of a registered device: that device's secret")),
    responses((status = 200, body = EvaluationBody)))]
async fn evaluate_one(
    State(state): State<AppState>,
    key: KeyOrClient<Read>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<EvaluateQuery>,
) -> ApiResult<Json<EvaluationBody>> {
    let flag_name = name(&raw)?;
    let mut flags = evaluated(&state, &key, &headers, &query, Some(flag_name.as_str())).await?;
    // The service answers one entry for a name, known or not.
    let one = flags
        .pop()
        .map(EvaluationBody::from)
        .ok_or_else(|| ApiError::NotFound("feature flag not found".into()))?;
    Ok(Json(one))
}

/// The flags (or the one `only`) for the device the request describes.
async fn evaluated(
    state: &AppState,
    key: &KeyOrClient<Read>,
    headers: &HeaderMap,
    query: &EvaluateQuery,
    only: Option<&str>,
) -> ApiResult<Vec<Evaluation>> {
    let access = access(key, headers)?;
    let claimed = claimed(headers)?;
    let external_id = external_id(query)?;
    Ok(state
        .services
        .flags
        .evaluate(
            &key.ctx,
            key.app_id,
            external_id.as_deref(),
            &claimed,
            only,
            &access,
        )
        .await?)
}
