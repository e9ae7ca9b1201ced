//! Push credentials per app: checked, sealed in the vault, announced in the
//! log by fingerprint (and the details that are not secret).

use chrono::Utc;
use domain::DomainError;
use domain::app::{self, App, AppCommand};
use domain::ids::AppId;
use domain::platform::SendPlatform;
use projections::apps::{self as read, PushCredentialRecord};
use serde_json::Value;

use super::{RequestContext, settle};
use crate::commands::CommandError;
use crate::herald::Herald;
use crate::push::credentials::{self, PURPOSE};
use crate::store::StoreError;
use crate::vault::Slot;

pub async fn set(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    provider: SendPlatform,
    body: &Value,
) -> Result<PushCredentialRecord, CommandError> {
    let parsed = credentials::parse(provider, body)?;
    let owner = credentials::owner(provider);
    let slot = Slot {
        app_id,
        owner: &owner,
        purpose: PURPOSE,
    };
    let now = Utc::now();
    let stored = herald.vault.store(slot, &parsed.secret, now).await?;
    let command = AppCommand::SetPushCredentials {
        provider,
        fingerprint: herald.vault.fingerprint(&parsed.secret),
        details: parsed.details,
    };
    let done = match herald
        .commands
        .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
        .await
    {
        Ok(done) => done,
        Err(e) => {
            let _ = herald.vault.remove(stored).await;
            return Err(e);
        }
    };
    herald.vault.expire_others(slot, stored, now).await?;
    // The answer is read from the read model, so this command always waits
    // for it (whatever the client's preference).
    let waiting = RequestContext {
        wait_for_read_models: true,
        ..ctx.clone()
    };
    settle(
        herald,
        &waiting,
        &["apps"],
        done.appended.map(|a| a.last_position),
    )
    .await;
    find(herald, app_id, provider).await?.ok_or_else(|| {
        CommandError::Unavailable("the credentials are not in the read model yet".into())
    })
}

pub async fn remove(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    provider: SendPlatform,
) -> Result<(), CommandError> {
    let done = herald
        .commands
        .execute::<App>(
            &app::stream(app_id),
            &ctx.metadata(app_id),
            AppCommand::RemovePushCredentials(provider),
        )
        .await?;
    herald
        .vault
        .remove_owner(app_id, &credentials::owner(provider), Some(PURPOSE))
        .await?;
    settle(
        herald,
        ctx,
        &["apps"],
        done.appended.map(|a| a.last_position),
    )
    .await;
    Ok(())
}

pub async fn list(
    herald: &Herald,
    app_id: AppId,
) -> Result<Vec<PushCredentialRecord>, CommandError> {
    Ok(read::push_credentials(&herald.db, app_id)
        .await
        .map_err(StoreError::from)?)
}

pub async fn find(
    herald: &Herald,
    app_id: AppId,
    provider: SendPlatform,
) -> Result<Option<PushCredentialRecord>, CommandError> {
    Ok(list(herald, app_id)
        .await?
        .into_iter()
        .find(|c| c.provider == provider.as_str()))
}

/// Root only: the app's daily push quota (`None` lifts it).
pub async fn set_daily_quota(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    quota: Option<u64>,
) -> Result<Option<i64>, CommandError> {
    let done = herald
        .commands
        .execute::<App>(
            &app::stream(app_id),
            &ctx.metadata(app_id),
            AppCommand::SetDailyQuota(quota),
        )
        .await?;
    settle(
        herald,
        ctx,
        &["apps"],
        done.appended.map(|a| a.last_position),
    )
    .await;
    if !done.state.exists() {
        return Err(DomainError::NotFound("app").into());
    }
    Ok(read::daily_quota(&herald.db, app_id)
        .await
        .map_err(StoreError::from)?)
}
