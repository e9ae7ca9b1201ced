//! An app's API keys (admin).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::FieldError;
use domain::ids::ApiKeyId;
use domain::role::Role;
use domain::text::Name;
use infra::services::tenancy::IssuedKey;
use projections::apps::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::schema::Role as RoleSchema;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, AppJson, Key};
use crate::state::AppState;
use infra::runtime::names;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// At least one; `client` only alone (see docs/client-keys.md).
    #[schema(value_type = Vec<RoleSchema>, min_items = 1)]
    roles: Vec<String>,
}

/// A key as issued; the token is shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct IssuedKeyBody {
    id: Uuid,
    name: String,
    #[schema(value_type = Vec<RoleSchema>)]
    roles: Vec<String>,
    /// The bearer token; shown only in this response.
    token: String,
    created_at: DateTime<Utc>,
}

impl From<IssuedKey> for IssuedKeyBody {
    fn from(k: IssuedKey) -> Self {
        Self {
            id: k.key_id.0,
            name: k.name,
            roles: k.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            token: k.token.expose().clone(),
            created_at: k.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyBody {
    id: Uuid,
    name: String,
    #[schema(value_type = Vec<RoleSchema>)]
    roles: Vec<String>,
    created_at: DateTime<Utc>,
}

impl From<ApiKeyRecord> for ApiKeyBody {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.key_id.0,
            name: k.name,
            roles: k.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            created_at: k.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    api_keys: Vec<ApiKeyBody>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

fn parse_roles(raw: &[String]) -> Result<Vec<Role>, ApiError> {
    let mut errors = Vec::new();
    let mut roles = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match Role::parse(r) {
            Some(role) => roles.push(role),
            None => errors.push(FieldError::new(
                format!("roles[{i}]"),
                format!("'{r}' is not a role; use admin, write, read, audit or client"),
            )),
        }
    }
    if raw.is_empty() {
        errors.push(FieldError::new("roles", "must name at least one role"));
    }
    if roles.contains(&Role::Client) && roles.iter().any(|r| *r != Role::Client) {
        errors.push(FieldError::new(
            "roles",
            "'client' stands alone: a key shipped inside an app must hold no other role",
        ));
    }
    if errors.is_empty() {
        Ok(roles)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Creates an API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    request_body = CreateApiKey,
    responses(
        (status = 201, body = IssuedKeyBody),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppJson(body): AppJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<IssuedKeyBody>)> {
    let name = Name::parse("name", &body.name);
    let roles = parse_roles(&body.roles);
    let (name, roles) = match (name, roles) {
        (Ok(n), Ok(r)) => (n, r),
        (name, roles) => {
            let mut errors = Vec::new();
            if let Err(domain::DomainError::Invalid(e)) = name {
                errors.extend(e);
            }
            if let Err(ApiError::Validation(e)) = roles {
                errors.extend(e);
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let issued = state
        .services
        .tenancy
        .create_api_key(&key.ctx, key.app_id, name, roles)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// Lists the app's active API keys (never their tokens).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyList)))]
async fn list_api_keys(
    State(state): State<AppState>,
    key: Key<Admin>,
) -> ApiResult<Json<ApiKeyList>> {
    state.fresh(&key.ctx, key.app_id, &[names::APPS]).await?;
    let keys = state.services.tenancy.list_api_keys(key.app_id).await?;
    Ok(Json(ApiKeyList {
        api_keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key_id: ApiKeyId = id
        .parse()
        .map_err(|_| ApiError::NotFound("api key not found".into()))?;
    state
        .services
        .tenancy
        .revoke_api_key(&key.ctx, key.app_id, key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
