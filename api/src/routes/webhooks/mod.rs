//! Webhook endpoints: create, list, read, change, delete, and their
//! secrets. Deliveries (attempts, test, resend, recover) are in
//! [`deliveries`].

mod apply;
mod body;
mod deliveries;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::ids::WebhookId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::body::{CreateWebhook, PatchWebhook, WebhookBody, WebhookList, WebhookWithSecret};
use super::events::AsOfQuery;
use crate::cursor;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, AppQuery, Key};
use crate::minimal;
use crate::state::AppState;
use axum::response::Response;
use infra::runtime::names;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(get_secret))
        .routes(routes!(enable_webhook))
        .routes(routes!(disable_webhook))
        .routes(routes!(apply::apply_webhooks))
        .merge(deliveries::router())
}

/// A webhook id from the path; anything else is simply not found.
pub(crate) fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    Uuid::parse_str(raw)
        .map(WebhookId)
        .map_err(|_| ApiError::NotFound("webhook not found".into()))
}

/// Creates an endpoint. The answer carries its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookWithSecret),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppJson(body): AppJson<CreateWebhook>,
) -> ApiResult<Response> {
    let (settings, credential) = body.parse()?;
    let created = state
        .services
        .webhooks
        .create(&key.ctx, key.app_id, settings, credential)
        .await?;
    let secret = created.secret.expose().clone();
    Ok(minimal::created(
        StatusCode::CREATED,
        format!("/v1/webhooks/{}", created.id.0),
        created.endpoint.map(|endpoint| WebhookWithSecret {
            webhook: endpoint.into(),
            secret,
        }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1..=100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The app's endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = WebhookList)))]
async fn list_webhooks(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppQuery(query): AppQuery<ListQuery>,
) -> ApiResult<Json<WebhookList>> {
    state
        .fresh(&key.ctx, key.app_id, &[names::WEBHOOKS])
        .await?;
    let limit = cursor::limit(query.limit, 50, 100)?;
    let after = cursor::decode_id("webhooks", query.cursor.as_deref())?;
    let found = state
        .services
        .webhooks
        .list(key.app_id, after, limit + 1)
        .await?;
    let more = found.len() as i64 > limit;
    let page: Vec<_> = found.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|w| cursor::encode_id("webhooks", w.webhook_id.0))
        })
        .flatten();
    Ok(Json(WebhookList {
        webhooks: page.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Reads an endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)"), AsOfQuery),
    responses(
        (status = 200, body = WebhookBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppQuery(query): AppQuery<AsOfQuery>,
) -> ApiResult<Json<WebhookBody>> {
    let id = webhook_id(&raw)?;
    let webhooks = &state.services.webhooks;
    let record = match query.instant()? {
        None => {
            state
                .fresh(&key.ctx, key.app_id, &[names::WEBHOOKS])
                .await?;
            webhooks.get(key.app_id, id).await?
        }
        Some(as_of) => webhooks.get_as_of(key.app_id, id, as_of).await?,
    };
    Ok(Json(record.into()))
}

/// Changes an endpoint: absent fields stay, `null` clears the nullable ones.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    request_body = PatchWebhook,
    responses(
        (status = 200, body = WebhookBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn patch_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<PatchWebhook>,
) -> ApiResult<Json<WebhookBody>> {
    let id = webhook_id(&raw)?;
    let (patch, credential) = body.parse()?;
    let updated = state
        .services
        .webhooks
        .update(&key.ctx, key.app_id, id, patch, credential)
        .await?;
    Ok(Json(updated.into()))
}

/// Deletes an endpoint, its queued messages and its secrets (the log keeps its history).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let id = webhook_id(&raw)?;
    state
        .services
        .webhooks
        .delete(&key.ctx, key.app_id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the previous one keeps signing beside it for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 200, body = WebhookWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let id = webhook_id(&raw)?;
    let rotated = state
        .services
        .webhooks
        .rotate_secret(&key.ctx, key.app_id, id)
        .await?;
    Ok(Json(WebhookWithSecret {
        webhook: rotated.endpoint.into(),
        secret: rotated.secret.expose().clone(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SecretBody {
    /// The newest signing secret.
    secret: String,
}

/// The endpoint's current signing secret.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 200, body = SecretBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_secret(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<SecretBody>> {
    let id = webhook_id(&raw)?;
    state
        .fresh(&key.ctx, key.app_id, &[names::WEBHOOKS])
        .await?;
    let secret = state.services.webhooks.secret(key.app_id, id).await?;
    Ok(Json(SecretBody {
        secret: secret.expose().clone(),
    }))
}

/// Turns delivery back on; messages still queued resume.
#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 200, body = WebhookBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn enable_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<WebhookBody>> {
    let id = webhook_id(&raw)?;
    let record = state
        .services
        .webhooks
        .set_enabled(&key.ctx, key.app_id, id, true)
        .await?;
    Ok(Json(record.into()))
}

/// Pauses delivery: queued messages wait, new events are not queued for it.
#[utoipa::path(post, path = "/v1/webhooks/{id}/disable", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id (anything else is 404)")),
    responses(
        (status = 200, body = WebhookBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn disable_webhook(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<WebhookBody>> {
    let id = webhook_id(&raw)?;
    let record = state
        .services
        .webhooks
        .set_enabled(&key.ctx, key.app_id, id, false)
        .await?;
    Ok(Json(record.into()))
}
