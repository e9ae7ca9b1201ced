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
    /// `{name, version, stored_version, position, head, lag_events, lag_seconds}` per read model.
    #[schema(value_type = Vec<Object>)]
    projections: Vec<ProjectionStatus>,
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
