//! `POST /v1/devices/search`: devices matching a condition tree.

use axum::Json;
use axum::extract::State;
use domain::conditions::{Condition, MAX_IN_VALUES};
use domain::ids::ExternalId;
use domain::{DomainError, FieldError};
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
    /// Only these devices (1 to 1000 ids; alone, or with `conditions`: the
    /// devices among them that match). Ids of no device match nothing.
    #[schema(min_items = 1, max_items = 1000)]
    external_ids: Option<Vec<String>>,
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
        let condition = match self.external_ids {
            Some(ids) => Some(Condition::external_ids(checked_ids(ids)?, condition)),
            None => condition,
        };
        Ok(SearchQuery {
            condition,
            limit: cursor::limit(self.limit, 100, 1000)?,
            after: cursor::decode(CURSOR_KIND, self.cursor.as_deref())?,
        })
    }
}

/// `external_ids`: 1 to 1000 valid ids (each error names its index).
fn checked_ids(ids: Vec<String>) -> ApiResult<Vec<String>> {
    if ids.is_empty() || ids.len() > MAX_IN_VALUES {
        return Err(DomainError::invalid(
            "external_ids",
            format!("must hold 1 to {MAX_IN_VALUES} ids"),
        )
        .into());
    }
    let mut errors = Vec::new();
    let mut valid = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        match ExternalId::parse(id) {
            Ok(id) => valid.push(id.as_str().to_owned()),
            Err(DomainError::Invalid(fields)) => {
                errors.extend(fields.into_iter().map(|f| FieldError {
                    field: format!("external_ids[{i}]"),
                    message: f.message,
                }))
            }
            Err(other) => return Err(other.into()),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(DomainError::Invalid(errors).into())
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
