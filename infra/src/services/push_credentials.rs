//! Push credentials per app: checked, sealed in the vault, announced in the
//! log by fingerprint (and the details that are not secret).

use domain::app::{self, App, AppCommand};
use domain::ids::AppId;
use domain::platform::SendPlatform;
use projections::apps::{self as read, PushCredentialRecord};
use serde_json::Value;

use super::{Reads, RequestContext};
use crate::clock::Clock;
use crate::reactors::push::credentials::{self, PURPOSE};
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::CommandError;
use crate::store::StoreError;
use crate::vault::Slot;
use crate::vault::Vault;
use projections::db::Db;
use std::sync::Arc;

/// Provider credentials, sealed in the vault; the daily quota.
#[derive(Clone)]
pub struct PushCredentials {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    vault: Vault,
    clock: Arc<dyn Clock>,
}

impl PushCredentials {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: CommandBus,
        db: Db,
        reads: Reads,
        vault: Vault,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            commands,
            db,
            reads,
            vault,
            clock,
        }
    }
}

impl PushCredentials {
    pub async fn set(
        &self,
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
        let now = self.clock.now();
        let stored = self.vault.store(slot, &parsed.secret, now).await?;
        let command = AppCommand::SetPushCredentials {
            provider,
            fingerprint: self.vault.fingerprint(&parsed.secret),
            details: parsed.details,
        };
        let done = match self
            .commands
            .execute::<App>(&app::stream(app_id), &ctx.metadata(app_id), command)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                let _ = self.vault.remove(stored).await;
                return Err(e);
            }
        };
        self.vault.expire_others(slot, stored, now).await?;
        // The answer is read from the read model, so this command always waits
        // for it (whatever the client's preference).
        let waiting = RequestContext {
            wait_for_read_models: true,
            ..ctx.clone()
        };
        self.reads
            .settle(
                &waiting,
                &["apps"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        self.find(app_id, provider).await?.ok_or_else(|| {
            CommandError::Unavailable("the credentials are not in the read model yet".into())
        })
    }

    pub async fn remove(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        provider: SendPlatform,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<App>(
                &app::stream(app_id),
                &ctx.metadata(app_id),
                AppCommand::RemovePushCredentials(provider),
            )
            .await?;
        self.vault
            .remove_owner(app_id, &credentials::owner(provider), Some(PURPOSE))
            .await?;
        self.reads
            .settle(
                ctx,
                &["apps"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        Ok(())
    }

    pub async fn list(&self, app_id: AppId) -> Result<Vec<PushCredentialRecord>, CommandError> {
        Ok(read::push_credentials(&self.db, app_id)
            .await
            .map_err(StoreError::from)?)
    }

    pub async fn find(
        &self,
        app_id: AppId,
        provider: SendPlatform,
    ) -> Result<Option<PushCredentialRecord>, CommandError> {
        Ok(self
            .list(app_id)
            .await?
            .into_iter()
            .find(|c| c.provider == provider.as_str()))
    }
}
