//! Notification histories: `GET /v1/devices/{external_id}/notifications`
//! and `GET /v1/users/{user_id}/notifications` (every device of the user).

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use domain::ids::{ExternalId, UserId};
use infra::runtime::names;
use projections::notifications::timeline::{History, HistoryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::DeliveryOutcome;
use crate::cursor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppQuery, Key, Read};
use crate::state::AppState;

const CURSOR_KIND: &str = "notification-history";
const OUTCOMES: [&str; 3] = ["delivered", "failed", "invalid_token"];
const MAX_NAMES: usize = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1..=250, default 50.
    #[param(minimum = 1, maximum = 250)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page (with the same filters).
    cursor: Option<String>,
    /// Only these outcomes, comma-separated: `delivered`, `failed`,
    /// `invalid_token`.
    outcome: Option<String>,
    /// `newest` (default) or `oldest` first.
    order: Option<String>,
    /// Only notifications with one of these names, comma-separated (at
    /// most 100).
    names: Option<String>,
    /// Only entries recorded at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
}

/// The notification an entry is about.
#[derive(Serialize, ToSchema)]
pub struct HistoryNotification {
    id: uuid::Uuid,
    /// Null when the notification has no name, or was deleted.
    name: Option<String>,
    /// Null once the notification was deleted.
    title: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntryBody {
    notification_id: uuid::Uuid,
    notification: HistoryNotification,
    /// The device the entry is about.
    external_id: String,
    #[schema(value_type = DeliveryOutcome)]
    outcome: String,
    reason: Option<String>,
    at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceNotificationList {
    notifications: Vec<HistoryEntryBody>,
    /// Entries matching the filters, on every page.
    total: i64,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(device_notifications))
        .routes(routes!(user_notifications))
}

fn comma_list(raw: Option<&str>) -> Vec<String> {
    raw.map(|r| {
        r.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

impl HistoryQuery {
    fn filter(&self, external_ids: Vec<String>) -> ApiResult<HistoryFilter> {
        let outcomes = comma_list(self.outcome.as_deref());
        if let Some(bad) = outcomes.iter().find(|o| !OUTCOMES.contains(&o.as_str())) {
            return Err(ApiError::invalid(
                "outcome",
                format!("{bad:?} is not one of delivered, failed, invalid_token"),
            ));
        }
        let oldest_first = match self.order.as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(_) => return Err(ApiError::invalid("order", "must be newest or oldest")),
        };
        let names = comma_list(self.names.as_deref());
        if names.len() > MAX_NAMES {
            return Err(ApiError::invalid(
                "names",
                format!("at most {MAX_NAMES} names"),
            ));
        }
        Ok(HistoryFilter {
            external_ids,
            outcomes,
            names,
            since: self.since,
            oldest_first,
            after: cursor::decode_keyed(CURSOR_KIND, self.cursor.as_deref())?,
            limit: cursor::limit(self.limit, 50, 250)? + 1,
        })
    }
}

fn list(history: History, limit: i64) -> DeviceNotificationList {
    let more = history.entries.len() as i64 > limit;
    let page: Vec<_> = history.entries.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|e| cursor::encode_keyed(CURSOR_KIND, e.position, &e.external_id))
        })
        .flatten();
    DeviceNotificationList {
        notifications: page
            .into_iter()
            .map(|e| HistoryEntryBody {
                notification_id: e.notification_id,
                notification: HistoryNotification {
                    id: e.notification_id,
                    name: e.name,
                    title: e.title,
                },
                external_id: e.external_id,
                outcome: e.outcome,
                reason: e.reason,
                at: e.at,
            })
            .collect(),
        total: history.total,
        next_cursor,
    }
}

/// The notifications sent to a device and what became of each (newest
/// first unless `order=oldest`), with a total.
#[utoipa::path(get, path = "/v1/devices/{external_id}/notifications", tag = "devices", security(("bearer" = [])),
    params(("external_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), HistoryQuery),
    responses(
        (status = 200, body = DeviceNotificationList),
    ))]
async fn device_notifications(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> ApiResult<Json<DeviceNotificationList>> {
    state
        .fresh(
            &key.ctx,
            key.app_id,
            &[names::DEVICE_NOTIFICATIONS, names::NOTIFICATIONS],
        )
        .await?;
    let external_id = ExternalId::parse(raw_id)?;
    answer(&state, &key, &query, vec![external_id.as_str().to_owned()]).await
}

/// The history of these devices, as `query` asks.
async fn answer(
    state: &AppState,
    key: &Key<Read>,
    query: &HistoryQuery,
    devices: Vec<String>,
) -> ApiResult<Json<DeviceNotificationList>> {
    let filter = query.filter(devices)?;
    let history = state
        .services
        .notifications
        .history(key.app_id, &filter)
        .await?;
    Ok(Json(list(history, filter.limit - 1)))
}

/// The notifications sent to the user's devices (those linked to them
/// now) and what became of each, filtered by name, time and outcome.
#[utoipa::path(get, path = "/v1/users/{user_id}/notifications", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded"), HistoryQuery),
    responses(
        (status = 200, body = DeviceNotificationList),
    ))]
async fn user_notifications(
    State(state): State<AppState>,
    key: Key<Read>,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> ApiResult<Json<DeviceNotificationList>> {
    state
        .fresh(
            &key.ctx,
            key.app_id,
            &[
                names::DEVICE_NOTIFICATIONS,
                names::NOTIFICATIONS,
                names::DEVICES,
            ],
        )
        .await?;
    let user_id = UserId::parse(raw_id)?;
    let devices = state
        .services
        .notifications
        .devices_of_user(key.app_id, user_id.as_str())
        .await?;
    answer(&state, &key, &query, devices).await
}
