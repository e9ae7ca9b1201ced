//! Who is calling. `Key<R>` admits an app's API key that has role `R`;
//! `KeyOrClient<R>` also a client key (the few routes code on end users'
//! devices may call); `Root` admits the root token. A missing, unknown or
//! revoked token is 401; a valid one without the role is 403.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use domain::ids::{ApiKeyId, AppId};
use domain::role::Role;
use infra::auth::Principal;
use infra::services::RequestContext;

use super::context::from_parts;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub trait RequiredRole: Send + Sync + 'static {
    const ROLE: Role;
}

macro_rules! role {
    ($name:ident, $role:expr) => {
        pub struct $name;
        impl RequiredRole for $name {
            const ROLE: Role = $role;
        }
    };
}

role!(Admin, Role::Admin);
role!(Write, Role::Write);
role!(Read, Role::Read);
role!(Audit, Role::Audit);

/// An app's API key holding role `R`.
pub struct Key<R> {
    pub app_id: AppId,
    pub key_id: ApiKeyId,
    pub ctx: RequestContext,
    _role: PhantomData<R>,
}

/// The root token.
pub struct Root {
    pub ctx: RequestContext,
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("send an API key as 'Authorization: Bearer <key>'".into())
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be 'Bearer <key>'".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be 'Bearer <key>'".into(),
        ));
    }
    Ok(token.trim())
}

async fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    // Resolved already by the middleware in front (see `caller`).
    if let Some(Caller(Some(principal))) = parts.extensions.get::<Caller>() {
        return Ok(principal.clone());
    }
    let token = bearer(parts)?;
    state
        .services
        .auth
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the API key is unknown or revoked".into()))
}

/// An app's API key holding role `R`, or a client key (role `client`).
pub struct KeyOrClient<R> {
    pub app_id: AppId,
    pub key_id: ApiKeyId,
    pub ctx: RequestContext,
    /// The caller holds a client key (else a key with role `R`).
    pub client: bool,
    _role: PhantomData<R>,
}

/// The app key a request carries, if it holds `role` (or, with
/// `or_client`, the client role: then `.3` is true).
async fn app_key(
    parts: &Parts,
    state: &AppState,
    role: Role,
    or_client: bool,
) -> Result<(AppId, ApiKeyId, RequestContext, bool), ApiError> {
    match principal(parts, state).await? {
        Principal::Root => Err(ApiError::Forbidden(
            "the root token manages apps only; use one of the app's API keys".into(),
        )),
        Principal::Key {
            app_id,
            key_id,
            roles,
        } => {
            let client = !roles.contains(&role) && or_client && roles.contains(&Role::Client);
            if !roles.contains(&role) && !client {
                return Err(ApiError::Forbidden(if roles.contains(&Role::Client) {
                    "a client key may only evaluate feature flags and register its own device"
                        .into()
                } else {
                    format!("this API key lacks the '{role}' role")
                }));
            }
            let ctx = from_parts(parts, format!("key:{key_id}"))?;
            Ok((app_id, key_id, ctx, client))
        }
    }
}

impl<R: RequiredRole> FromRequestParts<AppState> for Key<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (app_id, key_id, ctx, _) = app_key(parts, state, R::ROLE, false).await?;
        Ok(Key {
            app_id,
            key_id,
            ctx,
            _role: PhantomData,
        })
    }
}

impl<R: RequiredRole> FromRequestParts<AppState> for KeyOrClient<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (app_id, key_id, ctx, client) = app_key(parts, state, R::ROLE, true).await?;
        Ok(KeyOrClient {
            app_id,
            key_id,
            ctx,
            client,
            _role: PhantomData,
        })
    }
}

impl FromRequestParts<AppState> for Root {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Root => Ok(Root {
                ctx: from_parts(parts, "root".into())?,
            }),
            Principal::Key { .. } => Err(ApiError::Forbidden("this needs the root token".into())),
        }
    }
}
