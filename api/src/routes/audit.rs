//! Integrity, for auditors: recompute the app's hash chain.

use axum::Json;
use axum::extract::State;
use infra::audit::{Verification, verify_app};
use infra::commands::CommandError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Audit, Key};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// Walks the app's hash chain from its first event to its head. Answers
/// `{ok: true, app_id, head_position, head_hash, events}`, or
/// `{ok: false, app_id, position, reason, events}` naming the first
/// position where the chain breaks (200 either way: the check itself ran).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = Object, description = "the verification report")))]
async fn verify(State(state): State<AppState>, key: Key<Audit>) -> ApiResult<Json<Verification>> {
    let report = verify_app(state.herald.store.as_ref(), key.app_id)
        .await
        .map_err(CommandError::from)?;
    Ok(Json(report))
}
