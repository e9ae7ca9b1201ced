//! `POST /v1/devices/search`: devices matching a condition tree.

use axum::Json;
use axum::extract::State;
use domain::conditions::Condition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DeviceBody;
use crate::cursor;
use crate::error::ApiResult;
use crate::extract::{AppJson, Key, Read};
use crate::state::AppState;
use infra::runtime::names;

const CURSOR_KIND: &str = "devices";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchDevices {
    /// A condition tree: a group `{join_type: "AND"|"OR", conditions: [...]}`,
    /// a negation `{not: ...}`, or a leaf `{key, operator, value}`. Absent: all devices.
    #[schema(schema_with = crate::routes::schema::nullable_condition)]
    conditions: Option<serde_json::Value>,
    /// 1..=1000, default 100.
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceSearchPage {
    devices: Vec<DeviceBody>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// A search body, checked.
#[derive(Debug)]
struct SearchQuery {
    condition: Option<Condition>,
    limit: i64,
    /// Where the page starts (0: the first page).
    after: i64,
}

impl SearchDevices {
    fn check(self) -> ApiResult<SearchQuery> {
        let condition = match self.conditions.as_ref().filter(|c| !c.is_null()) {
            Some(raw) => Some(Condition::parse(raw)?),
            None => None,
        };
        Ok(SearchQuery {
            condition,
            limit: cursor::limit(self.limit, 100, 1000)?,
            after: cursor::decode(CURSOR_KIND, self.cursor.as_deref())?,
        })
    }
}

/// Devices matching the conditions, in a stable order.
#[utoipa::path(post, path = "/v1/devices/search", tag = "devices", security(("bearer" = [])),
    request_body = SearchDevices,
    responses(
        (status = 200, body = DeviceSearchPage),
    ))]
pub(super) async fn search_devices(
    State(state): State<AppState>,
    key: Key<Read>,
    AppJson(body): AppJson<SearchDevices>,
) -> ApiResult<Json<DeviceSearchPage>> {
    let SearchQuery {
        condition,
        limit,
        after,
    } = body.check()?;
    state.fresh(&key.ctx, key.app_id, &[names::DEVICES]).await?;
    let page = state
        .services
        .devices
        .search(key.app_id, condition.as_ref(), after, limit)
        .await?;
    Ok(Json(DeviceSearchPage {
        devices: page.devices.into_iter().map(Into::into).collect(),
        next_cursor: page.next_after.map(|k| cursor::encode(CURSOR_KIND, k)),
    }))
}

#[cfg(test)]
mod proptests;
