//! Apps, API keys, and who a bearer token belongs to.

use chrono::{DateTime, Utc};
use domain::DomainError;
use domain::app::{self, App, AppCommand, NewApiKey};
use domain::ids::{ApiKeyId, AppId};
use domain::role::Role;
use domain::text::Name;
use projections::apps::{self as read, ApiKeyRecord};

use super::{Reads, RequestContext};
use crate::auth::KeyCache;
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::CommandError;
use crate::secrets::{Secret, new_api_token, sha256_hex};
use projections::db::Db;
use std::sync::Arc;

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

/// Apps and their API keys.
#[derive(Clone)]
pub struct Tenancy {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    keys: Arc<KeyCache>,
}

impl Tenancy {
    #[allow(clippy::too_many_arguments)]
    pub fn new(commands: CommandBus, db: Db, reads: Reads, keys: Arc<KeyCache>) -> Self {
        Self {
            commands,
            db,
            reads,
            keys,
        }
    }
}

impl Tenancy {
    pub async fn create_app(
        &self,
        ctx: &RequestContext,
        name: Name,
    ) -> Result<CreatedApp, CommandError> {
        let app_id = AppId::generate();
        let key_name = Name::parse("name", "default")?;
        let (first_key, token) = new_key(key_name, Role::SERVER.to_vec());
        let command = AppCommand::Create {
            app_id,
            name: name.clone(),
            first_key: first_key.clone(),
        };
        let done = self
            .commands
            .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
            .await?;
        let appended = done
            .appended
            .ok_or_else(|| CommandError::Internal("app creation wrote nothing".into()))?;
        self.reads
            .settle(ctx, &["apps"], Some(appended.last_position))
            .await;
        Ok(CreatedApp {
            app_id,
            name: name.as_str().to_owned(),
            created_at: appended.recorded_at,
            key: issued(&first_key, token, appended.recorded_at),
        })
    }

    pub async fn create_api_key(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: Name,
        roles: Vec<Role>,
    ) -> Result<IssuedKey, CommandError> {
        let (key, token) = new_key(name, roles);
        let command = AppCommand::CreateApiKey(key.clone());
        let done = self
            .commands
            .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
            .await?;
        let appended = done
            .appended
            .ok_or_else(|| CommandError::Internal("key creation wrote nothing".into()))?;
        self.reads
            .settle(ctx, &["apps"], Some(appended.last_position))
            .await;
        Ok(issued(&key, token, appended.recorded_at))
    }

    pub async fn revoke_api_key(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        key_id: ApiKeyId,
    ) -> Result<(), CommandError> {
        let command = AppCommand::RevokeApiKey(key_id);
        let done = self
            .commands
            .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &["apps"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        self.keys.clear();
        Ok(())
    }

    pub async fn list_api_keys(&self, app_id: AppId) -> Result<Vec<ApiKeyRecord>, CommandError> {
        Ok(read::list_keys(&self.db, app_id).await?)
    }

    /// Root only: the app's daily push quota (`None` lifts it). Returns
    /// the stored value.
    pub async fn set_daily_quota(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        quota: Option<u64>,
    ) -> Result<Option<i64>, CommandError> {
        self.change_app(ctx, app_id, AppCommand::SetDailyQuota(quota))
            .await?;
        Ok(read::daily_quota(&self.db, app_id).await?)
    }

    /// Root only: the app's API rate limit per key (`None`: the node's
    /// default). Returns the stored value.
    pub async fn set_rate_limit(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        per_second: Option<u32>,
    ) -> Result<Option<i64>, CommandError> {
        self.change_app(ctx, app_id, AppCommand::SetRateLimit(per_second))
            .await?;
        Ok(read::rate_limit(&self.db, app_id).await?)
    }

    /// Runs a command on an existing app and waits for the apps model.
    async fn change_app(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        command: AppCommand,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &["apps"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        if !done.state.exists() {
            return Err(DomainError::NotFound("app").into());
        }
        Ok(())
    }

    /// The app's own API rate limit, if it has one.
    pub async fn rate_limit(&self, app_id: AppId) -> Result<Option<i64>, CommandError> {
        Ok(read::rate_limit(&self.db, app_id).await?)
    }
}
