//! The log, for auditors: the caller's app's events in position order,
//! filtered, by stream, as a live tail, or as an NDJSON export.

mod export;
mod live;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use domain::RecordedEvent;
use infra::runtime::commands::CommandError;
use infra::store::{EventFilter, TypePattern};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppQuery, Audit, Key};
use crate::state::AppState;

pub const MAX_LIMIT: i64 = 1000;
pub const DEFAULT_LIMIT: i64 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return events after this position (default 0).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only this stream, e.g. `device:phone-1`.
    stream: Option<String>,
    /// Recorded at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Recorded before this instant (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// `metadata.actor`: `key:<api key id>`, `root` or `system:<reactor>`.
    actor: Option<String>,
    /// `metadata.correlation_id`.
    correlation_id: Option<String>,
}

/// `type` repeats, so it is read from the raw query string.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TypeParam {
    /// Event type; repeatable (or comma-separated); `device.*` matches every
    /// device event.
    r#type: Option<Vec<String>>,
}

impl EventsQuery {
    /// The store filter, with `type` read from the raw query string (it
    /// repeats, which a struct cannot say).
    pub(crate) fn filter(&self, raw_query: Option<&str>) -> Result<EventFilter, ApiError> {
        let after = self.after.unwrap_or(0);
        if after < 0 {
            return Err(ApiError::invalid("after", "must not be negative"));
        }
        let types = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "type")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(TypePattern::parse)
                    .collect::<Vec<_>>()
            })
            .collect();
        // An empty value filters nothing, as an empty `type` does (no
        // stream, actor or correlation id is empty).
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(EventFilter {
            after,
            stream: given(&self.stream),
            types,
            since: instant("since", self.since.as_deref())?,
            until: instant("until", self.until.as_deref())?,
            actor: given(&self.actor),
            correlation_id: given(&self.correlation_id),
        })
    }
}

/// `?as_of=`: read a resource as it was at an instant, rebuilt from its
/// stream (404 if it did not exist then).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// RFC 3339, e.g. `2026-11-22T10:00:00Z`.
    #[param(format = DateTime)]
    as_of: Option<String>,
}

impl AsOfQuery {
    pub fn instant(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        instant("as_of", self.as_of.as_deref())
    }
}

pub(crate) fn instant(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|r| {
        DateTime::parse_from_rfc3339(r)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    "must be an RFC 3339 timestamp, e.g. 2026-11-22T10:00:00Z",
                )
            })
    })
    .transpose()
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
    /// The event body; its shape depends on `event_type`.
    #[schema(value_type = Object)]
    data: serde_json::Value,
    #[schema(value_type = MetadataSchema)]
    metadata: serde_json::Value,
    /// UTC, microseconds.
    #[schema(format = DateTime)]
    recorded_at: String,
    /// Lower-case hex SHA-256 chaining this event to the app's previous one.
    hash: String,
    /// Exports only, for events holding personal values: `data` is as
    /// stored (what `hash` covers, personal values sealed), this is the same
    /// body with them opened, or `"[forgotten]"` once their subject was
    /// forgotten (docs/privacy.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    opened_data: Option<serde_json::Value>,
}

impl EventBody {
    /// An exported line: the event as stored, and its opened body.
    pub fn exported(event: RecordedEvent, opened: Option<serde_json::Value>) -> Self {
        Self {
            opened_data: opened,
            ..Self::from(event)
        }
    }
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
            opened_data: None,
        }
    }
}

/// An event's metadata (`domain::envelope::Metadata`).
#[derive(ToSchema)]
#[schema(as = EventMetadata)]
#[allow(dead_code)]
struct MetadataSchema {
    app_id: Uuid,
    /// `key:<api key id>`, `root` or `system:<reactor>`.
    actor: String,
    request_id: Option<String>,
    correlation_id: Option<String>,
    /// The event that caused a reactor's command.
    causation_id: Option<Uuid>,
    trace_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    events: Vec<EventBody>,
    /// Pass as `after` for the next page (equal to `after` when there was nothing new).
    next_after: i64,
}

/// A page of one stream's events.
#[derive(Serialize, ToSchema)]
pub struct StreamPage {
    events: Vec<EventBody>,
    /// Pass as `from_version` for the next page (equal to `from_version`
    /// when there was nothing more).
    next_from_version: i64,
}

impl EventPage {
    pub fn new(events: Vec<EventBody>, next_after: i64) -> Self {
        Self { events, next_after }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
        .routes(routes!(live::live_events))
        .routes(routes!(export::export_events))
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

/// Reads the app's events after a position, optionally filtered.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery, TypeParam),
    responses(
        (status = 200, body = EventPage),
    ))]
async fn list_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    uri: Uri,
    AppQuery(query): AppQuery<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let filter = query.filter(uri.query())?;
    let limit = limit(query.limit)?;
    let events = state
        .services
        .log
        .store()
        .read_filtered(key.app_id, &filter, limit)
        .await
        .map_err(CommandError::from)?;
    let next_after = events.last().map_or(filter.after, |e| e.position);
    Ok(Json(EventPage {
        events: events.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The first stream version to return (default 1).
    #[param(minimum = 1)]
    from_version: Option<i64>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// One stream's events from a version, e.g. `device:phone-1` or `user:u1`.
#[utoipa::path(get, path = "/v1/streams/{stream}/events", tag = "events", security(("bearer" = [])),
    params(("stream" = String, Path, description = "the stream name, percent-encoded"), StreamQuery),
    responses(
        (status = 200, body = StreamPage),
    ))]
async fn stream_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    Path(stream): Path<String>,
    AppQuery(query): AppQuery<StreamQuery>,
) -> ApiResult<Json<StreamPage>> {
    let from = query.from_version.unwrap_or(1);
    if from < 1 {
        return Err(ApiError::invalid("from_version", "must be at least 1"));
    }
    let limit = limit(query.limit)?;
    let events = state
        .services
        .log
        .store()
        .read_stream(key.app_id, &stream, from, limit)
        .await
        .map_err(CommandError::from)?;
    let next_from_version = events.last().map_or(from, |e| e.stream_version + 1);
    Ok(Json(StreamPage {
        events: events.into_iter().map(Into::into).collect(),
        next_from_version,
    }))
}
