//! `GET /metrics`: the Prometheus scrape, for the root token (see
//! `crate::metrics`).

use axum::extract::State;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Root;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// This node's metrics in the Prometheus text format (version 0.0.4): HTTP
/// requests, appends, each read model's checkpoint and lag, reactors'
/// backlog, in-flight work, outcomes and latency, change-queue depth and
/// database pools. Also served without authentication on
/// `--metrics-listen` when set.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>, _root: Root) -> impl IntoResponse {
    crate::metrics::answer(&state).await
}
