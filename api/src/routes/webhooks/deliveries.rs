//! An endpoint's deliveries: attempts, a test message, resending one
//! message, recovering the failed ones of a window.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use infra::reactors::webhooks::queue::AttemptRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::webhook_id;
use crate::cursor;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, AppQuery, Key};
use crate::routes::schema;
use crate::state::AppState;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_attempts))
        .routes(routes!(send_test))
        .routes(routes!(resend_message))
        .routes(routes!(recover_messages))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// Only attempts with this outcome.
    #[param(value_type = Option<schema::AttemptStatus>)]
    status: Option<String>,
    /// 1..=250, default 50.
    #[param(minimum = 1, maximum = 250)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptBody {
    id: Uuid,
    /// The message (for events: the event id, also sent as `webhook-id`).
    message_id: Uuid,
    /// 1 for the first attempt of a round.
    #[schema(minimum = 1)]
    attempt: i32,
    #[schema(value_type = schema::AttemptStatus)]
    status: String,
    status_code: Option<i32>,
    duration_ms: i64,
    /// The first 4 KiB of the receiver's answer.
    response_body: Option<String>,
    error: Option<String>,
    started_at: DateTime<Utc>,
    /// When the message will be tried again (none: it succeeded or failed for good).
    next_attempt_at: Option<DateTime<Utc>>,
}

impl From<AttemptRecord> for AttemptBody {
    fn from(a: AttemptRecord) -> Self {
        Self {
            id: a.attempt_id,
            message_id: a.message_id,
            attempt: a.attempt,
            status: a.outcome,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            response_body: a.response_body,
            error: a.error,
            started_at: a.started_at,
            next_attempt_at: a.next_attempt_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    attempts: Vec<AttemptBody>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// The endpoint's delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/attempts", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)"), AttemptsQuery),
    responses(
        (status = 200, body = AttemptList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_attempts(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<AttemptsQuery>,
) -> ApiResult<Json<AttemptList>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::WEBHOOKS])
        .await?;
    let id = webhook_id(&raw)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s @ ("succeeded" | "failed")) => Some(s),
        Some(_) => return Err(ApiError::invalid("status", "must be succeeded or failed")),
    };
    let limit = cursor::limit(query.limit, 50, 250)?;
    let before = cursor::decode_id("attempts", query.cursor.as_deref())?;
    let found = state
        .services
        .webhooks
        .attempts(key.app_id, id, status, before, limit + 1)
        .await?;
    let more = found.len() as i64 > limit;
    let page: Vec<_> = found.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|a| cursor::encode_id("attempts", a.attempt_id))
        })
        .flatten();
    Ok(Json(AttemptList {
        attempts: page.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Queued {
    message_id: Uuid,
}

/// Queues a `webhook.test` message for the endpoint.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 202, body = Queued),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_test(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let id = webhook_id(&raw)?;
    let message_id = state.services.webhooks.send_test(key.app_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { message_id })))
}

/// Sends one message again, in a new round of attempts.
#[utoipa::path(post, path = "/v1/webhooks/{id}/messages/{message_id}/resend", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)"), ("message_id" = Uuid, Path, description = "The message's id (anything else is 404)")),
    responses(
        (status = 202, body = Queued),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn resend_message(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path((raw, raw_message)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let id = webhook_id(&raw)?;
    let message_id = Uuid::parse_str(&raw_message)
        .map_err(|_| ApiError::NotFound("message not found".into()))?;
    state
        .services
        .webhooks
        .resend(key.app_id, id, message_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { message_id })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// Messages created at or after this instant…
    since: DateTime<Utc>,
    /// …and before this one (default: now).
    until: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct Recovered {
    /// Failed messages put back in the queue.
    recovered: u64,
}

/// Re-queues the messages that failed for good in a window.
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    request_body = RecoverBody,
    responses(
        (status = 202, body = Recovered),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn recover_messages(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<RecoverBody>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let id = webhook_id(&raw)?;
    let recovered = state
        .services
        .webhooks
        .recover(key.app_id, id, body.since, body.until)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { recovered })))
}
