//! Apps, API keys, and who a bearer token belongs to.

use chrono::{DateTime, Utc};
use domain::app::{self, App, AppCommand, NewApiKey};
use domain::ids::{ApiKeyId, AppId};
use domain::role::Role;
use domain::text::Name;
use projections::apps::{self as read, ApiKeyRecord};

use super::{RequestContext, settle};
use crate::commands::CommandError;
use crate::herald::Herald;
use crate::secrets::{Secret, constant_time_eq, new_api_token, sha256_hex};

/// A key as issued: the only time its token is shown.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key_id: ApiKeyId,
    pub name: String,
    pub roles: Vec<Role>,
    pub token: Secret<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CreatedApp {
    pub app_id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub key: IssuedKey,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
    Key {
        app_id: AppId,
        key_id: ApiKeyId,
        roles: Vec<Role>,
    },
}

fn new_key(name: Name, roles: Vec<Role>) -> (NewApiKey, Secret<String>) {
    let token = new_api_token();
    let key = NewApiKey {
        key_id: ApiKeyId::generate(),
        name,
        roles,
        token_sha256: sha256_hex(token.as_bytes()),
    };
    (key, Secret::new(token))
}

fn issued(key: &NewApiKey, token: Secret<String>, at: DateTime<Utc>) -> IssuedKey {
    let mut roles = key.roles.clone();
    roles.sort();
    roles.dedup();
    IssuedKey {
        key_id: key.key_id,
        name: key.name.as_str().to_owned(),
        roles,
        token,
        created_at: at,
    }
}

pub async fn create_app(
    herald: &Herald,
    ctx: &RequestContext,
    name: Name,
) -> Result<CreatedApp, CommandError> {
    let app_id = AppId::generate();
    let key_name = Name::parse("name", "default")?;
    let (first_key, token) = new_key(key_name, Role::ALL.to_vec());
    let command = AppCommand::Create {
        app_id,
        name: name.clone(),
        first_key: first_key.clone(),
    };
    let done = herald
        .commands
        .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
        .await?;
    let appended = done
        .appended
        .ok_or_else(|| CommandError::Internal("app creation wrote nothing".into()))?;
    settle(herald, ctx, &["apps"], Some(appended.last_position)).await;
    Ok(CreatedApp {
        app_id,
        name: name.as_str().to_owned(),
        created_at: appended.recorded_at,
        key: issued(&first_key, token, appended.recorded_at),
    })
}

pub async fn create_api_key(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    name: Name,
    roles: Vec<Role>,
) -> Result<IssuedKey, CommandError> {
    let (key, token) = new_key(name, roles);
    let command = AppCommand::CreateApiKey(key.clone());
    let done = herald
        .commands
        .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
        .await?;
    let appended = done
        .appended
        .ok_or_else(|| CommandError::Internal("key creation wrote nothing".into()))?;
    settle(herald, ctx, &["apps"], Some(appended.last_position)).await;
    Ok(issued(&key, token, appended.recorded_at))
}

pub async fn revoke_api_key(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    key_id: ApiKeyId,
) -> Result<(), CommandError> {
    let command = AppCommand::RevokeApiKey(key_id);
    let done = herald
        .commands
        .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
        .await?;
    settle(
        herald,
        ctx,
        &["apps"],
        done.appended.map(|a| a.last_position),
    )
    .await;
    herald.keys.clear();
    Ok(())
}

pub async fn list_api_keys(
    herald: &Herald,
    app_id: AppId,
) -> Result<Vec<ApiKeyRecord>, CommandError> {
    Ok(read::list_keys(&herald.db, app_id).await?)
}

/// The principal a bearer token stands for; `None` for an unknown or
/// revoked token.
pub async fn authenticate(herald: &Herald, token: &str) -> Result<Option<Principal>, CommandError> {
    if constant_time_eq(token.as_bytes(), herald.root_token.expose().as_bytes()) {
        return Ok(Some(Principal::Root));
    }
    let hash = sha256_hex(token.as_bytes());
    if let Some(principal) = herald.keys.get(&hash) {
        return Ok(Some(principal));
    }
    let key = read::key_by_token_hash(&herald.db, &hash).await?;
    let principal = key
        .filter(|k| k.revoked_at.is_none())
        .map(|k| Principal::Key {
            app_id: k.app_id,
            key_id: k.key_id,
            roles: k.roles,
        });
    if let Some(p) = &principal {
        herald.keys.put(hash, p.clone());
    }
    Ok(principal)
}
