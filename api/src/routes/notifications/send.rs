//! `POST /v1/notifications/send`: a synchronous send to at most 100 named
//! devices or users, answered with each device's outcome.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use domain::FieldError;
use infra::services::send_now::Sent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{CreateNotification, NotificationBody};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, AppQuery, Key, Write};
use crate::minimal;
use crate::routes::schema::DeliveryOutcome;
use crate::state::AppState;
use axum::response::Response;

/// Devices and users one synchronous send may name, together.
pub const MAX_TARGETS: usize = 100;
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
const MAX_TIMEOUT_SECONDS: u64 = 120;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SendQuery {
    /// How long to wait for every provider's answer: 1..=120 s, default 30.
    #[param(minimum = 1, maximum = 120)]
    timeout_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct OutcomeBody {
    external_id: String,
    #[schema(value_type = DeliveryOutcome)]
    outcome: String,
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SendResult {
    notification: NotificationBody,
    /// True when delivery is over and `outcomes` holds every device's.
    complete: bool,
    /// One per device reached, by external id.
    outcomes: Vec<OutcomeBody>,
}

/// Sends now to at most 100 devices (`external_ids`) or users
/// (`user_ids`, every permitted device of theirs) and answers once every
/// provider has answered: 200 with each device's outcome, or 202 with those
/// known so far when `timeout_seconds` passes first (delivery goes on; the
/// notification's id tells how it ended). Same body as a campaign, without
/// `conditions`, `scheduled_at` or `launch`; recorded in the log and counted
/// against the daily quota like any campaign.
#[utoipa::path(post, path = "/v1/notifications/send", tag = "notifications", security(("bearer" = [])),
    params(SendQuery),
    request_body = CreateNotification,
    responses(
        (status = 200, body = SendResult, description = "Every device's outcome"),
        (status = 202, body = SendResult, description = "The timeout passed first: the outcomes known so far"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The send would pass the app's daily quota", headers(("retry-after" = u64, description = "Seconds until the quota's UTC day ends"))),
    ))]
pub(super) async fn send_now(
    State(state): State<AppState>,
    key: Key<Write>,
    AppQuery(query): AppQuery<SendQuery>,
    AppJson(body): AppJson<CreateNotification>,
) -> ApiResult<Response> {
    let timeout = query.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
        return Err(ApiError::invalid(
            "timeout_seconds",
            format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
        ));
    }
    let mut refused = Vec::new();
    if body.conditions.as_ref().is_some_and(|c| !c.is_null()) {
        refused.push(FieldError::new(
            "conditions",
            "a synchronous send names its devices (external_ids) or users (user_ids); use POST /v1/notifications for a campaign",
        ));
    }
    if body.scheduled_at.is_some() {
        refused.push(FieldError::new(
            "scheduled_at",
            "a synchronous send goes now",
        ));
    }
    if body.launch {
        refused.push(FieldError::new(
            "launch",
            "a synchronous send always launches",
        ));
    }
    if body.external_ids.len() + body.user_ids.len() > MAX_TARGETS {
        refused.push(FieldError::new(
            "external_ids",
            format!("at most {MAX_TARGETS} devices and users together"),
        ));
    }
    if !refused.is_empty() {
        return Err(ApiError::Validation(refused));
    }
    let (message, _) = body.parse()?;
    let sent = state
        .services
        .notifications
        .send_now(&key.ctx, key.app_id, message, Duration::from_secs(timeout))
        .await?;
    let location = format!("/v1/notifications/{}", sent.id);
    let Some(Sent {
        notification,
        outcomes,
        complete,
    }) = sent.record
    else {
        // `return=minimal`: answered once the send is in the log.
        return Ok(minimal::created::<SendResult>(
            StatusCode::ACCEPTED,
            location,
            None,
        ));
    };
    let status = if complete {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = SendResult {
        notification: notification.into(),
        complete,
        outcomes: outcomes
            .into_iter()
            .map(|o| OutcomeBody {
                external_id: o.external_id,
                outcome: o.outcome,
                reason: o.reason,
            })
            .collect(),
    };
    Ok(minimal::created(status, location, Some(body)))
}
