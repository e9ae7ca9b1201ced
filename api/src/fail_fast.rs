//! While the database does not answer (as `infra::database::health` sees it),
//! requests that need it get 503 with `Retry-After` at once, and those
//! already waiting on it are answered 503 as soon as it goes: an outage is a
//! fast, clear answer, never a hung request. Liveness, the API document and
//! unknown routes do not need the database and are served as usual.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn while_the_database_is_down(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !(path.starts_with("/v1/") || path == "/readyz") {
        return next.run(request).await;
    }
    let health = state.herald.health().clone();
    if !health.is_up() {
        return ApiError::Unavailable.into_response();
    }
    tokio::select! {
        response = next.run(request) => response,
        () = health.went_down() => ApiError::Unavailable.into_response(),
    }
}
