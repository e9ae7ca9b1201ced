//! Operations on the whole installation (root token).

use axum::Json;
use axum::extract::State;
use infra::commands::CommandError;
use infra::herald::all_projections;
use infra::projection_status::{ProjectionStatus, status};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::Root;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(projections))
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionsBody {
    #[schema(value_type = Vec<ProjectionBody>)]
    projections: Vec<ProjectionStatus>,
}

/// One read model (`infra::projection_status::ProjectionStatus`).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ProjectionBody {
    name: String,
    /// The version this build runs.
    version: i32,
    /// The version the stored read model was built with (null: never built).
    stored_version: Option<i32>,
    /// The last log position applied.
    position: i64,
    head: i64,
    /// Events not applied yet.
    lag_events: i64,
    /// Age of the oldest event not applied yet (0 when caught up).
    lag_seconds: f64,
}

/// Each read model's version, checkpoint and lag behind the log.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = ProjectionsBody)))]
async fn projections(
    State(state): State<AppState>,
    _root: Root,
) -> ApiResult<Json<ProjectionsBody>> {
    let projections = status(
        &state.herald.db,
        state.herald.store.as_ref(),
        &all_projections(),
    )
    .await
    .map_err(CommandError::from)?;
    Ok(Json(ProjectionsBody { projections }))
}
