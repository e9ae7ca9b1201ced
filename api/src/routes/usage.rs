//! `GET /v1/usage`: push messages handed to providers, per UTC day.

use axum::Json;
use axum::extract::State;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppQuery, Key, Read};
use crate::state::AppState;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD` (default: 30 days before `to`); at most 366
    /// days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, inclusive (default: today, UTC).
    #[param(format = Date)]
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Day {
    #[schema(format = Date)]
    date: String,
    /// Messages handed to providers (delivered or not).
    push_messages: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    #[schema(format = Date)]
    from: String,
    #[schema(format = Date)]
    to: String,
    /// Every day of the range, oldest first (days without messages count 0).
    days: Vec<Day>,
    total: i64,
    daily_quota: Option<i64>,
}

fn day(field: &str, raw: Option<&str>, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match raw {
        None => Ok(default),
        Some(r) => NaiveDate::parse_from_str(r, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(field, "must be a date YYYY-MM-DD")),
    }
}

/// Push messages per UTC day.
#[utoipa::path(get, path = "/v1/usage", tag = "push", security(("bearer" = [])),
    params(UsageQuery),
    responses(
        (status = 200, body = Usage),
    ))]
async fn usage(
    State(state): State<AppState>,
    key: Key<Read>,
    AppQuery(query): AppQuery<UsageQuery>,
) -> ApiResult<Json<Usage>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::NOTIFICATIONS])
        .await?;
    let today = state.services.notifications.today();
    let to = day("to", query.to.as_deref(), today)?;
    // Checked: the calendar ends somewhere (a date at its edge is a
    // valid question, not a reason to fail).
    let month_before = to.checked_sub_days(Days::new(30)).unwrap_or(NaiveDate::MIN);
    let from = day("from", query.from.as_deref(), month_before)?;
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::invalid(
            "from",
            "the range may span at most 366 days",
        ));
    }
    let (f, t) = (from.to_string(), to.to_string());
    let counted = state
        .services
        .notifications
        .usage(key.app_id, &f, &t)
        .await?;
    let mut days = Vec::new();
    let mut next = Some(from);
    while let Some(d) = next.filter(|d| *d <= to) {
        let date = d.to_string();
        let push_messages = counted
            .iter()
            .find(|(k, _)| *k == date)
            .map_or(0, |(_, n)| *n);
        days.push(Day {
            date,
            push_messages,
        });
        next = d.succ_opt();
    }
    let total = days.iter().map(|d| d.push_messages).sum();
    let daily_quota = state.services.notifications.daily_quota(key.app_id).await?;
    Ok(Json(Usage {
        from: f,
        to: t,
        days,
        total,
        daily_quota,
    }))
}
