//! Push credentials per provider: set (checked, stored encrypted, never
//! shown again), list and read (fingerprint and public details), remove.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::platform::SendPlatform;
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
use infra::runtime::names;

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

/// A provider's credentials, by provider (the path names it).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum CredentialsInput {
    Fcm(FcmCredentials),
    Apns(ApnsCredentials),
    Webpush(WebPushCredentials),
}

/// FCM: a service account.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct FcmCredentials {
    /// The service account's key file, as downloaded (JSON).
    #[schema(value_type = Object)]
    service_account: Value,
}

/// APNs: a token-based (`.p8`) key.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ApnsCredentials {
    /// The `.p8` file's text.
    key_p8: String,
    key_id: String,
    team_id: String,
    /// The app's bundle id.
    topic: String,
    /// Default `production`.
    #[schema(value_type = Option<ApnsEnvironment>)]
    environment: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ApnsEnvironment {
    Production,
    Sandbox,
}

/// Web Push: a VAPID subject; a key pair is generated unless one is given.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct WebPushCredentials {
    /// A `mailto:` or `https:` contact.
    subject: String,
    /// The VAPID public key (base64url), with its private key.
    public_key: Option<String>,
    private_key: Option<String>,
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
    request_body = CredentialsInput,
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
    let stored = state
        .services
        .push_credentials
        .set(&key.ctx, key.app_id, provider, &body)
        .await?;
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
    state.fresh(&key.ctx, key.app_id, &[names::APPS]).await?;
    let provider = provider(&raw)?;
    state
        .services
        .push_credentials
        .find(key.app_id, provider)
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
    state
        .services
        .push_credentials
        .remove(&key.ctx, key.app_id, provider)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every provider the app has credentials for.
#[utoipa::path(get, path = "/v1/push-credentials", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = CredentialsList)))]
async fn list_credentials(
    State(state): State<AppState>,
    key: Key<Admin>,
) -> ApiResult<Json<CredentialsList>> {
    state.fresh(&key.ctx, key.app_id, &[names::APPS]).await?;
    let all = state.services.push_credentials.list(key.app_id).await?;
    Ok(Json(CredentialsList {
        push_credentials: all.into_iter().map(Into::into).collect(),
    }))
}
