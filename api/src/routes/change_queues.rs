//! Change queues: drain-on-fetch feeds of the app's integration events.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::change_queue::{EventTypes, QueueName};
use infra::services::change_queues::{MAX_DRAIN, NewQueue};
use projections::change_queues::drain::{Change, QueueInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::schema::{self, SubjectKind};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, AppQuery, Key, Read};
use crate::state::AppState;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_queue, list_queues))
        .routes(routes!(delete_queue))
        .routes(routes!(drain_changes))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    #[schema(value_type = schema::QueueName)]
    name: String,
    /// Device, user or notification event types, or prefixes such as
    /// `device.*`; at most 50; default: all of them.
    #[serde(default)]
    #[schema(max_items = 50)]
    event_types: Vec<String>,
    /// Start after this log position (backfill) instead of the head.
    #[schema(minimum = 0)]
    from_position: Option<i64>,
    /// Changes older than this are dropped (and counted); at most ten
    /// years. Left out, changes stay until drained.
    #[schema(minimum = 1, maximum = 315_360_000)]
    max_age_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct QueueBody {
    #[schema(value_type = schema::QueueName)]
    name: String,
    event_types: Vec<String>,
    max_age_seconds: Option<i64>,
    /// Events after this log position enter the queue.
    starts_after: i64,
    /// Pending changes.
    depth: i64,
    /// When the oldest pending change was recorded.
    oldest_change_at: Option<DateTime<Utc>>,
    /// Changes dropped for being older than `max_age_seconds`.
    expired: i64,
    created_at: DateTime<Utc>,
}

impl From<QueueInfo> for QueueBody {
    fn from(q: QueueInfo) -> Self {
        Self {
            name: q.name,
            event_types: q.event_types,
            max_age_seconds: q.max_age_seconds,
            starts_after: q.starts_after,
            depth: q.depth,
            oldest_change_at: q.oldest_at,
            expired: q.expired,
            created_at: q.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueueList {
    change_queues: Vec<QueueBody>,
}

#[derive(Serialize, ToSchema)]
pub struct Subject {
    #[schema(value_type = SubjectKind)]
    kind: String,
    id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChangeBody {
    /// The event id: stable, so consumers dedupe on it.
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    subject: Subject,
    #[schema(value_type = Object)]
    data: serde_json::Value,
    at: DateTime<Utc>,
    position: i64,
}

impl From<&Change> for ChangeBody {
    fn from(c: &Change) -> Self {
        Self {
            id: c.id,
            event_type: c.event_type.clone(),
            subject: Subject {
                kind: c.subject_kind.clone(),
                id: c.subject_id.clone(),
            },
            data: c.data.clone(),
            at: c.at,
            position: c.position,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Drained {
    changes: Vec<ChangeBody>,
    /// Changes still pending after this drain.
    remaining: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrainQuery {
    /// 1 or more (default 100); values over 500 are clamped to 500.
    #[param(minimum = 1)]
    limit: Option<i64>,
}

fn queue_name(raw: &str) -> Result<QueueName, ApiError> {
    QueueName::parse("name", raw).map_err(|_| ApiError::NotFound("change queue not found".into()))
}

/// Creates a change queue.
#[utoipa::path(post, path = "/v1/change-queues", tag = "change-queues", security(("bearer" = [])),
    request_body = CreateQueue,
    responses(
        (status = 201, body = QueueBody),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_queue(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppJson(body): AppJson<CreateQueue>,
) -> ApiResult<(StatusCode, Json<QueueBody>)> {
    let name = QueueName::parse("name", &body.name);
    let types = EventTypes::parse(&body.event_types);
    let (name, event_types) = match (name, types) {
        (Ok(n), Ok(t)) => (n, t),
        (n, t) => {
            let mut errors = Vec::new();
            for e in [n.err(), t.err()].into_iter().flatten() {
                if let domain::DomainError::Invalid(mut fields) = e {
                    errors.append(&mut fields);
                }
            }
            return Err(domain::DomainError::Invalid(errors).into());
        }
    };
    let queue = NewQueue {
        name,
        event_types,
        from_position: body.from_position,
        max_age_seconds: body.max_age_seconds,
    };
    let created = state
        .services
        .change_queues
        .create(&key.ctx, key.app_id, queue)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The app's change queues, with depth and oldest pending change.
#[utoipa::path(get, path = "/v1/change-queues", tag = "change-queues", security(("bearer" = [])),
    responses((status = 200, body = QueueList)))]
async fn list_queues(State(state): State<AppState>, key: Key<Read>) -> ApiResult<Json<QueueList>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::CHANGE_QUEUES])
        .await?;
    let queues = state.services.change_queues.list(key.app_id).await?;
    Ok(Json(QueueList {
        change_queues: queues.into_iter().map(Into::into).collect(),
    }))
}

/// Deletes a change queue and its pending changes (not `default`).
#[utoipa::path(delete, path = "/v1/change-queues/{name}", tag = "change-queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "The queue's name (an unknown or malformed one is 404)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_queue(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let name = queue_name(&raw)?;
    state
        .services
        .change_queues
        .delete(&key.ctx, key.app_id, name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hands out the oldest pending changes, in log order, and deletes exactly
/// those in the same transaction. Delivery is at-least-once: dedupe on `id`.
#[utoipa::path(get, path = "/v1/change-queues/{name}/changes", tag = "change-queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "The queue's name (an unknown or malformed one is 404)"), DrainQuery),
    responses(
        (status = 200, body = Drained),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn drain_changes(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<DrainQuery>,
) -> ApiResult<Json<Drained>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::CHANGE_QUEUES])
        .await?;
    let limit = query.limit.unwrap_or(100);
    if limit < 1 {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_DRAIN} (larger values are clamped)"),
        ));
    }
    let name = queue_name(&raw)?;
    // The body is built before the deletion commits: if it cannot be, or
    // the client goes away first, the changes stay queued.
    let drained = state
        .services
        .change_queues
        .take(key.app_id, name.as_str(), limit, |changes, remaining| {
            Ok(Drained {
                changes: changes.iter().map(ChangeBody::from).collect(),
                remaining,
            })
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("change queue not found".into()))?;
    Ok(Json(drained))
}
