//! `POST /v1/devices/search`: devices matching a condition tree.

use axum::Json;
use axum::extract::State;
use domain::conditions::Condition;
use infra::services::devices;
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
    state.fresh(&key.ctx, key.app_id, &[names::DEVICES]).await?;
    let condition = match body.conditions.as_ref().filter(|c| !c.is_null()) {
        Some(raw) => Some(Condition::parse(raw)?),
        None => None,
    };
    let limit = cursor::limit(body.limit, 100, 1000)?;
    let after = cursor::decode(CURSOR_KIND, body.cursor.as_deref())?;
    let page = devices::search(&state.herald, key.app_id, condition.as_ref(), after, limit).await?;
    Ok(Json(DeviceSearchPage {
        devices: page.devices.into_iter().map(Into::into).collect(),
        next_cursor: page.next_after.map(|k| cursor::encode(CURSOR_KIND, k)),
    }))
}
