//! `POST /v1/apps` (root): create a tenant and its first API key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::text::Name;
use infra::services::tenancy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::api_keys::IssuedKeyBody;
use crate::error::{ApiResult, Problem};
use crate::extract::{AppJson, Root};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// 1 to 200 characters.
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
    OpenApiRouter::new().routes(routes!(create_app))
}

/// Creates an app and its first API key.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", security(("bearer" = [])),
    request_body = CreateApp,
    responses(
        (status = 201, body = CreatedAppBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_app(
    State(state): State<AppState>,
    root: Root,
    AppJson(body): AppJson<CreateApp>,
) -> ApiResult<(StatusCode, Json<CreatedAppBody>)> {
    let name = Name::parse("name", &body.name)?;
    let app = tenancy::create_app(&state.herald, &root.ctx, name).await?;
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
