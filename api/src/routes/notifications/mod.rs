//! Notifications (campaigns): create, list, read, change drafts, launch,
//! cancel, delete, set a status by hand.

mod body;
mod list_cursor;
mod send;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::notification::Status;
use projections::notifications::query::{Field, SortKey};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use self::body::NotificationBody;
use self::body::{CreateNotification, NotificationList, PatchNotification};
use super::events::AsOfQuery;
use super::schema;
use crate::cursor;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, AppQuery, Key, Read, Write};
use crate::minimal;
use crate::state::AppState;
use axum::response::Response;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_notification, list_notifications))
        .routes(routes!(send::send_now))
        .routes(routes!(
            get_notification,
            patch_notification,
            delete_notification
        ))
        .routes(routes!(launch_notification))
        .routes(routes!(cancel_notification))
        .routes(routes!(set_status))
}

fn notification_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("notification not found".into()))
}

/// Creates a notification (a draft, or launched with `launch: true`).
#[utoipa::path(post, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])),
    request_body = CreateNotification,
    responses(
        (status = 201, body = NotificationBody),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The launch would pass the app's daily quota", headers(("retry-after" = u64, description = "Seconds until the quota's UTC day ends"))),
    ))]
async fn create_notification(
    State(state): State<AppState>,
    key: Key<Write>,
    AppJson(body): AppJson<CreateNotification>,
) -> ApiResult<Response> {
    let (message, launch) = body.parse()?;
    let created = state
        .services
        .notifications
        .create(&key.ctx, key.app_id, message, launch)
        .await?;
    Ok(minimal::created(
        StatusCode::CREATED,
        format!("/v1/notifications/{}", created.id),
        created.record.map(NotificationBody::from),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only notifications with this status.
    #[param(value_type = Option<schema::NotificationStatus>)]
    status: Option<String>,
    /// Default `-created_at` (newest first).
    #[param(value_type = Option<schema::NotificationOrder>)]
    order_by: Option<String>,
    /// 1..=100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page (with the same `order_by`).
    cursor: Option<String>,
}

/// `order_by`: 1 to 4 distinct fields, comma-separated, each ascending or
/// (`-`) descending.
fn sort_keys(raw: &str) -> ApiResult<Vec<SortKey>> {
    let invalid = || {
        ApiError::invalid(
            "order_by",
            "must be 1 to 4 distinct fields, comma-separated, of created_at, updated_at, \
             scheduled_at and status, each optionally prefixed with - (descending)",
        )
    };
    let mut keys: Vec<SortKey> = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let (name, desc) = match part.strip_prefix('-') {
            Some(name) => (name, true),
            None => (part, false),
        };
        let field = Field::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(invalid)?;
        if keys.iter().any(|(f, _)| *f == field) {
            return Err(invalid());
        }
        keys.push((field, desc));
    }
    Ok(keys)
}

/// The app's notifications.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = NotificationList),
    ))]
async fn list_notifications(
    State(state): State<AppState>,
    key: Key<Read>,
    AppQuery(query): AppQuery<ListQuery>,
) -> ApiResult<Json<NotificationList>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::NOTIFICATIONS])
        .await?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(
            Status::parse(s)
                .filter(|s| *s != Status::Deleted)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "status",
                        "must be draft, queued, launched, sending, sent, error or canceled",
                    )
                })?,
        ),
    };
    let order = sort_keys(query.order_by.as_deref().unwrap_or("-created_at"))?;
    let kind = format!(
        "n-order:{}",
        query.order_by.as_deref().unwrap_or("-created_at")
    );
    let limit = cursor::limit(query.limit, 50, 100)?;
    let after = list_cursor::decode(&kind, query.cursor.as_deref(), &order)?;
    let found = state
        .services
        .notifications
        .list(key.app_id, status, &order, after.as_ref(), limit + 1)
        .await?;
    let more = found.len() as i64 > limit;
    let page: Vec<_> = found.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|(keys, n)| list_cursor::encode(&kind, keys, n.notification_id))
        })
        .flatten();
    Ok(Json(NotificationList {
        notifications: page.into_iter().map(|(_, n)| n.into()).collect(),
        next_cursor,
    }))
}

/// Reads a notification, with its counters.
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)"), AsOfQuery),
    responses(
        (status = 200, body = NotificationBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_notification(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<AsOfQuery>,
) -> ApiResult<Json<NotificationBody>> {
    let id = notification_id(&raw)?;
    let notifications = &state.services.notifications;
    let record = match query.instant()? {
        None => {
            state
                .fresh(&key.ctx, key.app_id, &[names::NOTIFICATIONS])
                .await?;
            notifications.get(key.app_id, id).await?
        }
        Some(as_of) => notifications.get_as_of(key.app_id, id, as_of).await?,
    };
    Ok(Json(record.into()))
}

/// Changes a draft (absent fields stay; `null` clears the optional ones).
#[utoipa::path(patch, path = "/v1/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)")),
    request_body = PatchNotification,
    responses(
        (status = 200, body = NotificationBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not a draft"),
    ))]
async fn patch_notification(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PatchNotification>,
) -> ApiResult<Json<NotificationBody>> {
    let id = notification_id(&raw)?;
    let (status, current) = state.services.notifications.current(key.app_id, id).await?;
    if status != Status::Draft {
        return Err(ApiError::Conflict(format!(
            "the notification is {}; only drafts can be changed",
            status.as_str()
        )));
    }
    let message = body.apply(current)?;
    let updated = state
        .services
        .notifications
        .update(&key.ctx, key.app_id, id, message)
        .await?;
    Ok(Json(updated.into()))
}

/// Deletes a draft or a finished notification (the log keeps it).
#[utoipa::path(delete, path = "/v1/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_notification(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let id = notification_id(&raw)?;
    state
        .services
        .notifications
        .delete(&key.ctx, key.app_id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Launches now, or queues until `scheduled_at`.
#[utoipa::path(post, path = "/v1/notifications/{id}/launch", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)")),
    responses(
        (status = 202, body = NotificationBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The launch would pass the app's daily quota", headers(("retry-after" = u64, description = "Seconds until the quota's UTC day ends"))),
    ))]
async fn launch_notification(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, Json<NotificationBody>)> {
    let id = notification_id(&raw)?;
    let launched = state
        .services
        .notifications
        .launch(&key.ctx, key.app_id, id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(launched.into())))
}

/// Cancels a draft, queued or sending notification (what was sent stays sent).
#[utoipa::path(post, path = "/v1/notifications/{id}/cancel", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)")),
    responses(
        (status = 200, body = NotificationBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_notification(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
) -> ApiResult<Json<NotificationBody>> {
    let id = notification_id(&raw)?;
    Ok(Json(
        state
            .services
            .notifications
            .cancel(&key.ctx, key.app_id, id)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    #[schema(value_type = schema::NotificationTarget)]
    status: String,
}

/// Moves a notification to a status by hand (the transitions allowed).
#[utoipa::path(put, path = "/v1/notifications/{id}/status", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification's id (anything else is 404)")),
    request_body = SetStatus,
    responses(
        (status = 200, body = NotificationBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The launch would pass the app's daily quota", headers(("retry-after" = u64, description = "Seconds until the quota's UTC day ends"))),
    ))]
async fn set_status(
    State(state): State<AppState>,
    key: Key<Write>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<SetStatus>,
) -> ApiResult<Json<NotificationBody>> {
    let id = notification_id(&raw)?;
    let status = Status::parse(&body.status).ok_or_else(|| {
        ApiError::invalid(
            "status",
            "must be one of draft, queued, launched, sending, sent, error, canceled, deleted",
        )
    })?;
    let record = state
        .services
        .notifications
        .set_status(&key.ctx, key.app_id, id, status)
        .await?;
    Ok(Json(record.into()))
}
