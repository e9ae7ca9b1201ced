//! The log, for auditors: the caller's app's events in position order.

use axum::Json;
use axum::extract::State;
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppQuery, Audit, Key};
use crate::state::AppState;

pub const MAX_LIMIT: i64 = 1000;
pub const DEFAULT_LIMIT: i64 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return events after this position (default 0).
    after: Option<i64>,
    /// 1..=1000, default 100.
    limit: Option<i64>,
}

/// One event with its full envelope.
#[derive(Serialize, ToSchema)]
pub struct EventBody {
    position: i64,
    event_id: Uuid,
    app_id: Uuid,
    stream: String,
    stream_version: i64,
    event_type: String,
    schema_version: i32,
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// `app_id`, `actor`, `request_id`, `correlation_id`, `causation_id`, `trace_id`.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// UTC, microseconds.
    recorded_at: String,
    /// Lower-case hex SHA-256 chaining this event to the app's previous one.
    hash: String,
}

impl From<RecordedEvent> for EventBody {
    fn from(e: RecordedEvent) -> Self {
        Self {
            position: e.position,
            event_id: e.event_id,
            app_id: e.app_id.0,
            stream: e.stream,
            stream_version: e.stream_version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.data,
            metadata: e.metadata,
            recorded_at: domain::envelope::format_timestamp(e.recorded_at),
            hash: e.hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    events: Vec<EventBody>,
    /// Pass as `after` for the next page (equal to `after` when there was nothing new).
    next_after: i64,
}

impl EventPage {
    pub fn new(events: Vec<EventBody>, next_after: i64) -> Self {
        Self { events, next_after }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

pub(crate) fn limit(raw: Option<i64>) -> Result<usize, ApiError> {
    let limit = raw.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(usize::try_from(limit).unwrap_or(1))
}

/// Reads the app's events after a position.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    AppQuery(query): AppQuery<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must not be negative"));
    }
    let limit = limit(query.limit)?;
    let events = state
        .herald
        .store
        .read_app(key.app_id, after, limit)
        .await
        .map_err(infra::commands::CommandError::from)?;
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(Json(EventPage {
        events: events.into_iter().map(Into::into).collect(),
        next_after,
    }))
}
