//! `GET /v1/admin/nodes` (root): the nodes serving this database, whether
//! each is alive, its lag and the work it holds (see
//! `infra::runtime::nodes` for how nodes share the work).

use axum::Json;
use axum::extract::State;
use infra::runtime::commands::CommandError;
use infra::runtime::nodes::NodeReport;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::Root;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(nodes))
}

#[derive(Serialize, ToSchema)]
pub struct NodesBody {
    /// The node that answered.
    this_node: uuid::Uuid,
    /// Every node seen in the last hour, live ones first: `{node_id, name,
    /// version, started_at, heartbeat_at, alive, lag_events, owns:
    /// {projections, webhook_messages, notifications}}`; each projection
    /// is listed under the one live node that applies it.
    #[schema(value_type = Vec<Object>)]
    nodes: Vec<NodeReport>,
}

/// The nodes serving this database: alive while their heartbeat (every
/// 2 s) is under 6 s old; a dead node's leased work is taken over by the
/// others, and a node that stops cleanly hands it over at once.
#[utoipa::path(get, path = "/v1/admin/nodes", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = NodesBody)))]
async fn nodes(State(state): State<AppState>, _root: Root) -> ApiResult<Json<NodesBody>> {
    let nodes = state.herald.nodes().await.map_err(CommandError::from)?;
    Ok(Json(NodesBody {
        this_node: state.herald.node_id(),
        nodes,
    }))
}
