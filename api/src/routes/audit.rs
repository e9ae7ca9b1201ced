//! Integrity, for auditors: recompute the app's hash chain.

use axum::Json;
use axum::extract::State;
use infra::audit::{Verification, verify_app};
use infra::runtime::commands::CommandError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{Audit, Key};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// The outcome of walking an app's chain (`infra::audit::Verification`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum VerificationBody {
    Intact(Intact),
    Broken(Broken),
}

/// The chain holds from the first event to the head.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Intact {
    /// True.
    ok: bool,
    app_id: uuid::Uuid,
    /// 0 (and the zero hash) for an app without events.
    #[schema(minimum = 0)]
    head_position: i64,
    /// Lower-case hex SHA-256.
    head_hash: String,
    events: u64,
}

/// The chain breaks at `position`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Broken {
    /// False.
    ok: bool,
    app_id: uuid::Uuid,
    /// The first position where the chain does not hold.
    position: i64,
    reason: String,
    /// Events that verified before the break.
    events: u64,
}

/// Walks the app's hash chain from its first event to its head: 200 either
/// way (the check itself ran), `ok` tells.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = VerificationBody, description = "the verification report")))]
async fn verify(State(state): State<AppState>, key: Key<Audit>) -> ApiResult<Json<Verification>> {
    let report = verify_app(state.services.log.stored().as_ref(), key.app_id)
        .await
        .map_err(CommandError::from)?;
    Ok(Json(report))
}
