//! Webhook endpoints: create, change, rotate, enable, disable, delete
//! (commands); list, attempts (reads); test, resend, recover (the queue).
//!
//! Secrets are stored in the vault before the event that mentions their
//! fingerprint is written; if the command fails, they are removed again.

mod apply;

use chrono::{DateTime, Duration, Utc};
use domain::DomainError;
use domain::ids::{AppId, WebhookId};
use domain::user::Change;
use domain::webhook::settings::{AuthInfo, Settings};
use domain::webhook::{self, Endpoint, SettingsPatch, WebhookCommand};
use projections::webhooks::endpoints::{self, EndpointRecord};
use projections::webhooks::{self as model, NewMessage};
use serde_json::json;
use uuid::Uuid;

pub use self::apply::{Action, Desired, Plan, Step};
use super::{Reads, RequestContext};
use crate::clock::Clock;
use crate::reactors::webhooks::address::AddressPolicy;
use crate::reactors::webhooks::queue::{self, AttemptRecord};
use crate::reactors::webhooks::send::Credential;
use crate::reactors::webhooks::worker::Deliveries;
use crate::reactors::webhooks::{AUTH, SIGNING, owner, signature};
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::CommandError;
use crate::secrets::Secret;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::{Slot, VaultError};
use projections::db::Db;
use std::sync::Arc;

/// A rotated-out secret keeps signing beside the new one this long.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

impl From<VaultError> for CommandError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => s.into(),
            other => CommandError::Internal(other.to_string()),
        }
    }
}

fn slot<'a>(app_id: AppId, owner: &'a str, purpose: &'a str) -> Slot<'a> {
    Slot {
        app_id,
        owner,
        purpose,
    }
}

/// Webhook endpoints, their secrets and their deliveries.
#[derive(Clone)]
pub struct Webhooks {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    clock: Arc<dyn Clock>,
    vault: Vault,
    addresses: Arc<AddressPolicy>,
    deliveries: Arc<Deliveries>,
    /// This node has a public URL, so endpoints may use `{{callback.url}}`.
    callbacks: bool,
}

impl Webhooks {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: CommandBus,
        db: Db,
        reads: Reads,
        clock: Arc<dyn Clock>,
        vault: Vault,
        addresses: Arc<AddressPolicy>,
        deliveries: Arc<Deliveries>,
    ) -> Self {
        Self {
            commands,
            db,
            reads,
            clock,
            vault,
            addresses,
            deliveries,
            callbacks: false,
        }
    }

    /// Endpoints may use `{{callback.url}}` (this node has a public URL).
    pub fn with_callbacks(mut self, enabled: bool) -> Self {
        self.callbacks = enabled;
        self
    }
}

impl Webhooks {
    fn auth_info(&self, credential: &Credential) -> Result<(AuthInfo, Vec<u8>), CommandError> {
        let sealed =
            serde_json::to_vec(credential).map_err(|e| CommandError::Internal(e.to_string()))?;
        let (kind, header_name) = match credential {
            Credential::Bearer(_) => ("bearer", None),
            Credential::Basic { .. } => ("basic", None),
            Credential::Header { name, .. } => ("header", Some(name.to_ascii_lowercase())),
        };
        let info = AuthInfo {
            kind: kind.into(),
            header_name,
            fingerprint: self.vault.fingerprint(&sealed),
        };
        Ok((info, sealed))
    }

    /// The SSRF guard at creation time: a 400 naming the URL.
    async fn check_url(&self, url: &str) -> Result<(), CommandError> {
        self.addresses
            .check_url(url)
            .await
            .map_err(|m| DomainError::invalid("url", m).into())
    }

    /// `{{callback.url}}` needs a public URL to be issued under: without
    /// one, a 400 naming the field that asks for it.
    fn check_callbacks(&self, field: Option<&'static str>) -> Result<(), CommandError> {
        match field {
            Some(field) if !self.callbacks => Err(DomainError::invalid(
                field,
                "{{callback.url}} needs Herald's public URL: start Herald with --public-url \
                 (HERALD_PUBLIC_URL), the address receivers reach it at",
            )
            .into()),
            _ => Ok(()),
        }
    }

    async fn record(&self, app_id: AppId, id: WebhookId) -> Result<EndpointRecord, CommandError> {
        endpoints::get(&self.db, app_id.0, id.0)
            .await
            .map_err(StoreError::from)?
            .ok_or(CommandError::Domain(DomainError::NotFound("webhook")))
    }

    async fn run(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: WebhookId,
        command: WebhookCommand,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<Endpoint>(&webhook::stream(id), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &[model::NAME],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        self.deliveries.forget(id.0);
        self.deliveries.wake();
        Ok(())
    }

    pub async fn create(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        settings: Settings,
        credential: Option<Credential>,
    ) -> Result<Created, CommandError> {
        self.check_callbacks(settings.callback_field())?;
        self.check_url(settings.url.as_str()).await?;
        let id = WebhookId::generate();
        let owner = owner(id);
        let now = self.clock.now();
        let secret = signature::new_secret();
        let mut stored = vec![
            self.vault
                .store(slot(app_id, &owner, SIGNING), secret.as_bytes(), now)
                .await?,
        ];
        let auth = match &credential {
            Some(c) => {
                let (info, sealed) = self.auth_info(c)?;
                stored.push(
                    self.vault
                        .store(slot(app_id, &owner, AUTH), &sealed, now)
                        .await?,
                );
                Some(info)
            }
            None => None,
        };
        let command = WebhookCommand::Create {
            webhook_id: id,
            settings,
            auth,
            secret_fingerprint: self.vault.fingerprint(secret.as_bytes()),
        };
        if let Err(e) = self.run(ctx, app_id, id, command).await {
            for s in stored {
                let _ = self.vault.remove(s).await;
            }
            return Err(e);
        }
        let endpoint = if ctx.wait_for_read_models {
            Some(self.record(app_id, id).await?)
        } else {
            None
        };
        Ok(Created {
            id,
            endpoint,
            secret: Secret::new(secret),
        })
    }

    pub async fn update(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: WebhookId,
        mut patch: SettingsPatch,
        credential: Change<Credential>,
    ) -> Result<EndpointRecord, CommandError> {
        self.check_callbacks(patch.callback_field())?;
        if let Some(url) = &patch.url {
            self.check_url(url.as_str()).await?;
        }
        let owner = owner(id);
        let now = self.clock.now();
        let mut new_auth = None;
        match &credential {
            Change::Keep => {}
            Change::Clear => patch.auth = Change::Clear,
            Change::Set(c) => {
                self.record(app_id, id).await?;
                let (info, sealed) = self.auth_info(c)?;
                new_auth = Some(
                    self.vault
                        .store(slot(app_id, &owner, AUTH), &sealed, now)
                        .await?,
                );
                patch.auth = Change::Set(info);
            }
        }
        let result = self
            .run(
                ctx,
                app_id,
                id,
                WebhookCommand::Update {
                    webhook_id: id,
                    patch,
                },
            )
            .await;
        match (result, new_auth) {
            (Err(e), Some(stored)) => {
                let _ = self.vault.remove(stored).await;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
            (Ok(()), Some(stored)) => {
                self.vault
                    .expire_others(slot(app_id, &owner, AUTH), stored, now)
                    .await?;
            }
            (Ok(()), None) => {
                if credential == Change::Clear {
                    self.vault.remove_owner(app_id, &owner, Some(AUTH)).await?;
                }
            }
        }
        self.deliveries.forget(id.0);
        self.record(app_id, id).await
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: WebhookId,
    ) -> Result<(), CommandError> {
        self.run(ctx, app_id, id, WebhookCommand::Delete { webhook_id: id })
            .await?;
        self.vault.remove_owner(app_id, &owner(id), None).await?;
        Ok(())
    }

    pub async fn set_enabled(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: WebhookId,
        enabled: bool,
    ) -> Result<EndpointRecord, CommandError> {
        let command = if enabled {
            WebhookCommand::Enable { webhook_id: id }
        } else {
            WebhookCommand::Disable {
                webhook_id: id,
                reason: "disabled by request".into(),
            }
        };
        self.run(ctx, app_id, id, command).await?;
        self.record(app_id, id).await
    }

    /// A new signing secret; the previous ones keep signing for 24 hours.
    pub async fn rotate_secret(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: WebhookId,
    ) -> Result<Rotated, CommandError> {
        self.record(app_id, id).await?;
        let owner = owner(id);
        let now = self.clock.now();
        let secret = signature::new_secret();
        let stored = self
            .vault
            .store(slot(app_id, &owner, SIGNING), secret.as_bytes(), now)
            .await?;
        let command = WebhookCommand::RotateSecret {
            webhook_id: id,
            secret_fingerprint: self.vault.fingerprint(secret.as_bytes()),
        };
        if let Err(e) = self.run(ctx, app_id, id, command).await {
            let _ = self.vault.remove(stored).await;
            return Err(e);
        }
        self.vault
            .expire_others(
                slot(app_id, &owner, SIGNING),
                stored,
                now + Duration::hours(ROTATION_OVERLAP_HOURS),
            )
            .await?;
        self.deliveries.forget(id.0);
        Ok(Rotated {
            endpoint: self.record(app_id, id).await?,
            secret: Secret::new(secret),
        })
    }

    /// The newest signing secret.
    pub async fn secret(
        &self,
        app_id: AppId,
        id: WebhookId,
    ) -> Result<Secret<String>, CommandError> {
        self.record(app_id, id).await?;
        let owner = owner(id);
        let active = self
            .vault
            .active(slot(app_id, &owner, SIGNING), self.clock.now())
            .await?;
        let newest = active
            .first()
            .ok_or_else(|| CommandError::Internal("the endpoint has no signing secret".into()))?;
        Ok(Secret::new(
            String::from_utf8_lossy(newest.expose()).into_owned(),
        ))
    }

    pub async fn get(&self, app_id: AppId, id: WebhookId) -> Result<EndpointRecord, CommandError> {
        self.record(app_id, id).await
    }

    /// The endpoint as it was at `as_of`, rebuilt from its stream.
    pub async fn get_as_of(
        &self,
        app_id: AppId,
        id: WebhookId,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<EndpointRecord, CommandError> {
        let history = self
            .reads
            .history_until(app_id, &domain::webhook::stream(id), as_of)
            .await?;
        endpoints::as_of(&history)
            .map_err(CommandError::Internal)?
            .ok_or(CommandError::Domain(DomainError::NotFound("webhook")))
    }

    pub async fn list(
        &self,
        app_id: AppId,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<EndpointRecord>, CommandError> {
        Ok(endpoints::list(&self.db, app_id.0, after, limit)
            .await
            .map_err(StoreError::from)?)
    }

    /// Queues a `webhook.test` message for the endpoint; returns its id.
    pub async fn send_test(&self, app_id: AppId, id: WebhookId) -> Result<Uuid, CommandError> {
        let settings = self.record(app_id, id).await?.settings;
        let message_id = Uuid::now_v7();
        let now = self.clock.now();
        let body = json!({
            "type": "webhook.test",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": {"webhook_id": id.to_string()},
        });
        // No event, so no subject: only the webhook's own id fills the URL.
        let url = settings.url.has_placeholders().then(|| {
            settings.url.render(&|name| match name {
                "webhook.id" => json!(id.to_string()),
                "event.type" => json!("webhook.test"),
                _ => serde_json::Value::Null,
            })
        });
        let body = if settings.method.has_body() {
            body.to_string()
        } else {
            String::new()
        };
        let message = NewMessage {
            endpoint_id: id.0,
            message_id,
            app_id: app_id.0,
            seq: 0,
            event_type: "webhook.test".into(),
            user_id: None,
            from_webhooks: false,
            body,
            url,
            created_at: now.timestamp_micros(),
        };
        let mut tx = self.db.begin().await?;
        model::insert_messages(&mut tx, &[message])
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        tx.commit().await?;
        self.deliveries.wake();
        Ok(message_id)
    }

    /// Sends one message again, in a new round of attempts.
    pub async fn resend(
        &self,
        app_id: AppId,
        id: WebhookId,
        message_id: Uuid,
    ) -> Result<(), CommandError> {
        self.record(app_id, id).await?;
        let found = queue::resend(&self.db, id.0, message_id, self.clock.now()).await?;
        if !found {
            return Err(DomainError::NotFound("message").into());
        }
        self.deliveries.wake();
        Ok(())
    }

    /// Re-queues the messages that failed for good in `[since, until)`.
    pub async fn recover(
        &self,
        app_id: AppId,
        id: WebhookId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<u64, CommandError> {
        self.record(app_id, id).await?;
        let now = self.clock.now();
        // Messages are dated by their events, which the log dates in real time.
        let (field, message) = match until {
            Some(_) => ("until", "must be after since"),
            None => ("since", "must be in the past (until defaults to now)"),
        };
        let until = until.unwrap_or_else(|| now + Duration::seconds(1));
        if until <= since {
            return Err(DomainError::invalid(field, message).into());
        }
        let n = queue::recover(&self.db, id.0, since, until, now).await?;
        self.deliveries.wake();
        Ok(n)
    }

    pub async fn attempts(
        &self,
        app_id: AppId,
        id: WebhookId,
        outcome: Option<&str>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, CommandError> {
        self.record(app_id, id).await?;
        Ok(queue::attempts(&self.db, id.0, outcome, before, limit).await?)
    }
}

/// An endpoint and its new signing secret (shown this once).
pub struct Rotated {
    pub endpoint: EndpointRecord,
    pub secret: Secret<String>,
}

/// A new endpoint and its signing secret (shown this once).
pub struct Created {
    pub id: WebhookId,
    /// As the read model shows it; `None` on a creation whose client did
    /// not wait for the read models (`Prefer: return=minimal`).
    pub endpoint: Option<EndpointRecord>,
    pub secret: Secret<String>,
}
