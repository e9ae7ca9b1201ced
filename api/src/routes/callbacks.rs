//! `POST /v1/callbacks/{token}`: a webhook receiver calling back through a
//! message's `{{callback.url}}` to set the status of the user the message
//! was about. No API key: the URL's token is the credential, good once
//! (docs/webhooks.md, "Callback URLs").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use domain::user::UserStatus;
use infra::services::callbacks::CallbackError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{self, ClientId};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{AppJson, request_context};
use crate::state::AppState;

/// Where callback URLs live (their token follows).
pub const PATH: &str = "/v1/callbacks/";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The user's new status.
    #[schema(value_type = schema::UserStatus)]
    status: String,
    /// Why (at most 500 characters); recorded in the event.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CallbackAnswer {
    /// The user the message was about.
    #[schema(value_type = ClientId)]
    user_id: String,
    /// Their status now.
    #[schema(value_type = schema::UserStatus)]
    status: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(call_back))
}

/// A webhook receiver sets the status of the user a message was about,
/// through the message's `{{callback.url}}`. No API key: the token in the
/// URL is the credential. It is good once, within the callback TTL (24 h
/// by default) of the last time its message was sent. The change is an
/// event by `callback:<endpoint id>`, caused by the message's event.
#[utoipa::path(post, path = "/v1/callbacks/{token}", tag = "webhooks",
    params(("token" = String, Path, description = "The callback URL's token (`hcb_…`)")),
    request_body = CallbackRequest,
    responses(
        (status = 200, body = CallbackAnswer),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such callback URL (or its user was forgotten, or deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Used already, expired, or its endpoint deleted", body = Problem, content_type = "application/problem+json"),
    ))]
async fn call_back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    AppJson(body): AppJson<CallbackRequest>,
) -> ApiResult<Json<CallbackAnswer>> {
    let status = UserStatus::parse(&body.status)?;
    let ctx = request_context(&headers, String::new());
    let done = state
        .services
        .callbacks
        .call(&ctx, &token, status, body.reason)
        .await
        .map_err(|e| match e {
            CallbackError::Unknown => ApiError::NotFound(e.to_string()),
            CallbackError::Gone(m) => ApiError::Gone(m.into()),
            CallbackError::Command(c) => c.into(),
        })?;
    Ok(Json(CallbackAnswer {
        user_id: done.user_id,
        status: done.status.as_str().to_owned(),
    }))
}
