//! Push credentials per provider: set (checked, stored encrypted, never
//! shown again), list and read (fingerprint and public details), remove.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::platform::SendPlatform;
use infra::services::push_credentials;
use projections::apps::PushCredentialRecord;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, Key};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials))
        .routes(routes!(
            put_credentials,
            get_credentials,
            delete_credentials
        ))
}

#[derive(Serialize, ToSchema)]
pub struct CredentialsBody {
    #[schema(value_type = schema::SendPlatform)]
    provider: String,
    /// Tells whether the credentials changed; reveals nothing of them.
    fingerprint: String,
    /// What is not secret: FCM's project, APNs' key id, team and topic,
    /// Web Push's subject and public key (for the browser's subscription).
    #[schema(value_type = Object)]
    details: Value,
    updated_at: DateTime<Utc>,
}

impl From<PushCredentialRecord> for CredentialsBody {
    fn from(r: PushCredentialRecord) -> Self {
        Self {
            provider: r.provider,
            fingerprint: r.fingerprint,
            details: r.details,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CredentialsList {
    push_credentials: Vec<CredentialsBody>,
}

fn provider(raw: &str) -> Result<SendPlatform, ApiError> {
    SendPlatform::parse(raw)
        .ok_or_else(|| ApiError::NotFound("no such provider (fcm, apns, webpush)".into()))
}

/// Sets a provider's credentials. FCM: `{"service_account": {…key file…}}`;
/// APNs: `{"key_p8", "key_id", "team_id", "topic", "environment"?}`;
/// Web Push: `{"subject"}` (a VAPID key pair is generated) or
/// `{"subject", "public_key", "private_key"}`.
#[utoipa::path(put, path = "/v1/push-credentials/{provider}", tag = "push", security(("bearer" = [])),
    params(("provider" = schema::SendPlatform, Path, description = "The provider (anything else is 404)")),
    request_body(content = Object),
    responses(
        (status = 200, body = CredentialsBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_credentials(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
    AppJson(body): AppJson<Value>,
) -> ApiResult<Json<CredentialsBody>> {
    let provider = provider(&raw)?;
    let stored =
        push_credentials::set(&state.herald, &key.ctx, key.app_id, provider, &body).await?;
    Ok(Json(stored.into()))
}

/// The fingerprint and public details of a provider's credentials.
#[utoipa::path(get, path = "/v1/push-credentials/{provider}", tag = "push", security(("bearer" = [])),
    params(("provider" = schema::SendPlatform, Path, description = "The provider (anything else is 404)")),
    responses(
        (status = 200, body = CredentialsBody),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_credentials(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<CredentialsBody>> {
    let provider = provider(&raw)?;
    push_credentials::find(&state.herald, key.app_id, provider)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| {
            ApiError::NotFound(format!("the app has no {} credentials", provider.as_str()))
        })
}

/// Removes a provider's credentials.
#[utoipa::path(delete, path = "/v1/push-credentials/{provider}", tag = "push", security(("bearer" = [])),
    params(("provider" = schema::SendPlatform, Path, description = "The provider (anything else is 404)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_credentials(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let provider = provider(&raw)?;
    push_credentials::remove(&state.herald, &key.ctx, key.app_id, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every provider the app has credentials for.
#[utoipa::path(get, path = "/v1/push-credentials", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = CredentialsList)))]
async fn list_credentials(
    State(state): State<AppState>,
    key: Key<Admin>,
) -> ApiResult<Json<CredentialsList>> {
    let all = push_credentials::list(&state.herald, key.app_id).await?;
    Ok(Json(CredentialsList {
        push_credentials: all.into_iter().map(Into::into).collect(),
    }))
}
