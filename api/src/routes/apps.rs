//! `POST /v1/apps` (root): create a tenant and its first API key;
//! `PATCH /v1/apps/{id}` (root): its daily push quota.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::ids::AppId;
use domain::text::Name;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::api_keys::IssuedKeyBody;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, Root};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAppBody {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    /// The app's first key, with all four roles. Its token is shown only here.
    api_key: IssuedKeyBody,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app))
        .routes(routes!(patch_app))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchApp {
    /// Push messages per UTC day; `null` lifts the limit.
    #[serde(default, deserialize_with = "crate::routes::devices::present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    daily_quota: Option<Option<i64>>,
    /// API requests per second per key (burst the same); `null`: the
    /// node's default (`HERALD_API_RATE_LIMIT`); 0: no limit.
    #[serde(default, deserialize_with = "crate::routes::devices::present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    rate_limit_per_second: Option<Option<i64>>,
}

#[derive(Serialize, ToSchema)]
pub struct AppQuota {
    id: Uuid,
    /// Push messages per UTC day; null: no limit.
    #[schema(minimum = 0)]
    daily_quota: Option<i64>,
    /// API requests per second per key; null: the node's default.
    #[schema(minimum = 0)]
    rate_limit_per_second: Option<i64>,
}

/// Sets an app's daily push quota and/or its API rate limit (root token;
/// at least one of the two).
#[utoipa::path(patch, path = "/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The app's id")),
    request_body = PatchApp,
    responses(
        (status = 200, body = AppQuota),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn patch_app(
    State(state): State<AppState>,
    root: Root,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PatchApp>,
) -> ApiResult<Json<AppQuota>> {
    let app_id = Uuid::parse_str(&raw)
        .map(AppId)
        .map_err(|_| ApiError::NotFound("app not found".into()))?;
    if body.daily_quota.is_none() && body.rate_limit_per_second.is_none() {
        return Err(ApiError::invalid(
            "body",
            "give daily_quota or rate_limit_per_second (null lifts or resets them)",
        ));
    }
    let quota = body
        .daily_quota
        .map(|q| {
            q.map(|q| {
                u64::try_from(q).map_err(|_| ApiError::invalid("daily_quota", "must be 0 or more"))
            })
            .transpose()
        })
        .transpose()?;
    let rate = body
        .rate_limit_per_second
        .map(|r| {
            r.map(|r| {
                u32::try_from(r).map_err(|_| {
                    ApiError::invalid("rate_limit_per_second", "must be between 0 and 4294967295")
                })
            })
            .transpose()
        })
        .transpose()?;
    let services = &state.services;
    let mut daily_quota = services.notifications.daily_quota(app_id).await?;
    if let Some(quota) = quota {
        daily_quota = services
            .tenancy
            .set_daily_quota(&root.ctx, app_id, quota)
            .await?;
    }
    let mut rate_limit_per_second = services.tenancy.rate_limit(app_id).await?;
    if let Some(rate) = rate {
        rate_limit_per_second = services
            .tenancy
            .set_rate_limit(&root.ctx, app_id, rate)
            .await?;
        state.rate_limits.forget(app_id);
    }
    Ok(Json(AppQuota {
        id: app_id.0,
        daily_quota,
        rate_limit_per_second,
    }))
}

/// Creates an app and its first API key.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", security(("bearer" = [])),
    request_body = CreateApp,
    responses(
        (status = 201, body = CreatedAppBody),
    ))]
async fn create_app(
    State(state): State<AppState>,
    root: Root,
    AppJson(body): AppJson<CreateApp>,
) -> ApiResult<(StatusCode, Json<CreatedAppBody>)> {
    let name = Name::parse("name", &body.name)?;
    let app = state.services.tenancy.create_app(&root.ctx, name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAppBody {
            id: app.app_id.0,
            name: app.name,
            created_at: app.created_at,
            api_key: app.key.into(),
        }),
    ))
}
