//! Operations on the whole installation (root token): where each projection
//! stands, and the operator's way out when one is stopped for an app.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use infra::runtime::commands::CommandError;
use infra::runtime::faults::{self, Action, Skipped};
use infra::runtime::rebuild_guard::{self, RebuildReport};
use infra::runtime::status::ProjectionStatus;
use infra::runtime::{self, Stall};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppQuery, Root};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(projections))
        .routes(routes!(skip))
        .routes(routes!(retry))
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionsBody {
    /// Per projection: `{name, kind, version, stored_version, position, head,
    /// lag_events, lag_seconds, faults: [{app_id, position, event_type, error,
    /// since, action}], stall}`.
    #[schema(value_type = Vec<Object>)]
    projections: Vec<ProjectionReport>,
    /// Events operators skipped, newest first (at most 100).
    #[schema(value_type = Vec<Object>)]
    skipped: Vec<Skipped>,
    /// The rebuild running (`herald projections rebuild`), or the last one
    /// interrupted: `{projections, started_at, updated_at, position, head,
    /// events_read, events_total, percent, step, events_per_second,
    /// eta_seconds, running, error}`; null if none.
    #[schema(value_type = Option<Object>)]
    rebuild: Option<RebuildReport>,
}

#[derive(Serialize)]
struct ProjectionReport {
    #[serde(flatten)]
    status: ProjectionStatus,
    /// Stalled as a whole on the node that answered (retried with back-off).
    stall: Option<Stall>,
}

/// Each projection's kind, version, checkpoint and lag behind the log, and
/// the apps it is stopped for.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = ProjectionsBody)))]
async fn projections(
    State(state): State<AppState>,
    _root: Root,
) -> ApiResult<Json<ProjectionsBody>> {
    let herald = &state.herald;
    let projections = herald
        .projection_status()
        .await
        .map_err(CommandError::from)?
        .into_iter()
        .map(|(status, stall)| ProjectionReport { status, stall })
        .collect();
    let skipped = faults::skipped(herald.db(), 100)
        .await
        .map_err(CommandError::from)?;
    let rebuild = rebuild_guard::current(herald.db())
        .await
        .map_err(|e| CommandError::from(infra::store::StoreError::from(e)))?;
    Ok(Json(ProjectionsBody {
        projections,
        skipped,
        rebuild,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct FaultPath {
    /// The projection.
    name: String,
    /// The app it is stopped for.
    app_id: uuid::Uuid,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct FaultQuery {
    /// The event's position, to be sure it is the one you looked at.
    position: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Asked {
    /// `skip` or `retry`.
    action: &'static str,
    /// What happens next.
    detail: &'static str,
}

/// Skips the event a projection is stopped at for an app: the event is
/// recorded (see `skipped`), then the app's later events are applied.
#[utoipa::path(post, path = "/v1/admin/projections/{name}/faults/{app_id}/skip", tag = "operations",
    security(("bearer" = [])), params(FaultPath, FaultQuery),
    responses(
        (status = 202, body = Asked),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json",
            description = "No projection of that name, or it is not stopped for the app (at that position)"),
    ))]
async fn skip(
    State(state): State<AppState>,
    _root: Root,
    Path(path): Path<FaultPath>,
    AppQuery(query): AppQuery<FaultQuery>,
) -> ApiResult<(StatusCode, Json<Asked>)> {
    ask(&state, path, query.position, Action::Skip).await
}

/// Retries the event a projection is stopped at for an app (after a fix),
/// then the app's later events; if it fails again the fault stays.
#[utoipa::path(post, path = "/v1/admin/projections/{name}/faults/{app_id}/retry", tag = "operations",
    security(("bearer" = [])), params(FaultPath, FaultQuery),
    responses(
        (status = 202, body = Asked),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json",
            description = "No projection of that name, or it is not stopped for the app (at that position)"),
    ))]
async fn retry(
    State(state): State<AppState>,
    _root: Root,
    Path(path): Path<FaultPath>,
    AppQuery(query): AppQuery<FaultQuery>,
) -> ApiResult<(StatusCode, Json<Asked>)> {
    ask(&state, path, query.position, Action::Retry).await
}

async fn ask(
    state: &AppState,
    path: FaultPath,
    position: Option<i64>,
    action: Action,
) -> ApiResult<(StatusCode, Json<Asked>)> {
    let known = runtime::registered()
        .iter()
        .any(|r| r.projection.name() == path.name);
    if !known {
        return Err(ApiError::NotFound(format!(
            "no projection named {}",
            path.name
        )));
    }
    let app = domain::ids::AppId(path.app_id);
    let found = faults::request(state.herald.db(), &path.name, app, position, action)
        .await
        .map_err(CommandError::from)?;
    if !found {
        return Err(ApiError::NotFound(format!(
            "{} is not stopped for app {}{}",
            path.name,
            path.app_id,
            position
                .map(|p| format!(" at position {p}"))
                .unwrap_or_default()
        )));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Asked {
            action: match action {
                Action::Skip => "skip",
                Action::Retry => "retry",
            },
            detail: "the node running the projection acts within a second; \
                     GET /v1/admin/projections shows when the fault is gone",
        }),
    ))
}
