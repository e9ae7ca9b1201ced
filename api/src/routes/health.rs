//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, or `degraded` when a projection is stalled
    /// or stopped for some app (readiness).
    status: &'static str,
    /// What is degraded: each projection stalled as a whole (`stall`) or
    /// stopped for apps (`faults`), with the position and the error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    projections: Vec<infra::runtime::Trouble>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        projections: Vec::new(),
    })
}

/// The database answers and is fully migrated: 200. A projection in
/// trouble makes it `degraded`, still 200: every node shares the database,
/// so one app's unappliable event must not take every node out of the load
/// balancer; the body names the projection, the position and the error.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 503, description = "Not ready", body = crate::error::Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.herald.ready().await.map_err(|e| {
        tracing::warn!(error = %infra::database::redact(&e.to_string()), "not ready");
        ApiError::Unavailable
    })?;
    let projections = state.herald.projections().trouble();
    let status = if projections.is_empty() {
        "ready"
    } else {
        "degraded"
    };
    Ok(Json(Health {
        status,
        projections,
    }))
}
