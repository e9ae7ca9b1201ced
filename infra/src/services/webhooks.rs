//! Webhook endpoints: create, change, rotate, enable, disable, delete
//! (commands); list, attempts (reads); test, resend, recover (the queue).
//!
//! Secrets are stored in the vault before the event that mentions their
//! fingerprint is written; if the command fails, they are removed again.

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

use super::{RequestContext, settle};
use crate::commands::CommandError;
use crate::herald::Herald;
use crate::secrets::Secret;
use crate::store::StoreError;
use crate::vault::{Slot, VaultError};
use crate::webhooks::queue::{self, AttemptRecord};
use crate::webhooks::send::Credential;
use crate::webhooks::{AUTH, SIGNING, owner, signature};

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

fn auth_info(
    herald: &Herald,
    credential: &Credential,
) -> Result<(AuthInfo, Vec<u8>), CommandError> {
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
        fingerprint: herald.vault.fingerprint(&sealed),
    };
    Ok((info, sealed))
}

/// The SSRF guard at creation time: a 400 naming the URL.
async fn check_url(herald: &Herald, url: &str) -> Result<(), CommandError> {
    herald
        .config
        .webhooks
        .addresses
        .check_url(url)
        .await
        .map_err(|m| DomainError::invalid("url", m).into())
}

async fn record(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
) -> Result<EndpointRecord, CommandError> {
    endpoints::get(&herald.db, app_id.0, id.0)
        .await
        .map_err(StoreError::from)?
        .ok_or(CommandError::Domain(DomainError::NotFound("webhook")))
}

async fn run(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: WebhookId,
    command: WebhookCommand,
) -> Result<(), CommandError> {
    let done = herald
        .commands
        .execute::<Endpoint>(&webhook::stream(id), &ctx.metadata(app_id), command)
        .await?;
    settle(
        herald,
        ctx,
        &[model::NAME],
        done.appended.map(|a| a.last_position),
    )
    .await;
    herald.webhooks.forget(id.0);
    herald.webhooks.wake();
    Ok(())
}

/// A new endpoint and its signing secret (shown this once).
pub struct Created {
    pub endpoint: EndpointRecord,
    pub secret: Secret<String>,
}

pub async fn create(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    settings: Settings,
    credential: Option<Credential>,
) -> Result<Created, CommandError> {
    check_url(herald, settings.url.as_str()).await?;
    let id = WebhookId::generate();
    let owner = owner(id);
    let now = Utc::now();
    let secret = signature::new_secret();
    let mut stored = vec![
        herald
            .vault
            .store(slot(app_id, &owner, SIGNING), secret.as_bytes(), now)
            .await?,
    ];
    let auth = match &credential {
        Some(c) => {
            let (info, sealed) = auth_info(herald, c)?;
            stored.push(
                herald
                    .vault
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
        secret_fingerprint: herald.vault.fingerprint(secret.as_bytes()),
    };
    if let Err(e) = run(herald, ctx, app_id, id, command).await {
        for s in stored {
            let _ = herald.vault.remove(s).await;
        }
        return Err(e);
    }
    Ok(Created {
        endpoint: record(herald, app_id, id).await?,
        secret: Secret::new(secret),
    })
}

pub async fn update(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: WebhookId,
    mut patch: SettingsPatch,
    credential: Change<Credential>,
) -> Result<EndpointRecord, CommandError> {
    if let Some(url) = &patch.url {
        check_url(herald, url.as_str()).await?;
    }
    let owner = owner(id);
    let now = Utc::now();
    let mut new_auth = None;
    match &credential {
        Change::Keep => {}
        Change::Clear => patch.auth = Change::Clear,
        Change::Set(c) => {
            record(herald, app_id, id).await?;
            let (info, sealed) = auth_info(herald, c)?;
            new_auth = Some(
                herald
                    .vault
                    .store(slot(app_id, &owner, AUTH), &sealed, now)
                    .await?,
            );
            patch.auth = Change::Set(info);
        }
    }
    let result = run(
        herald,
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
            let _ = herald.vault.remove(stored).await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
        (Ok(()), Some(stored)) => {
            herald
                .vault
                .expire_others(slot(app_id, &owner, AUTH), stored, now)
                .await?;
        }
        (Ok(()), None) => {
            if credential == Change::Clear {
                herald
                    .vault
                    .remove_owner(app_id, &owner, Some(AUTH))
                    .await?;
            }
        }
    }
    herald.webhooks.forget(id.0);
    record(herald, app_id, id).await
}

pub async fn delete(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: WebhookId,
) -> Result<(), CommandError> {
    run(
        herald,
        ctx,
        app_id,
        id,
        WebhookCommand::Delete { webhook_id: id },
    )
    .await?;
    herald.vault.remove_owner(app_id, &owner(id), None).await?;
    Ok(())
}

pub async fn set_enabled(
    herald: &Herald,
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
    run(herald, ctx, app_id, id, command).await?;
    record(herald, app_id, id).await
}

/// A new signing secret; the previous ones keep signing for 24 hours.
pub async fn rotate_secret(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: WebhookId,
) -> Result<Created, CommandError> {
    record(herald, app_id, id).await?;
    let owner = owner(id);
    let now = Utc::now();
    let secret = signature::new_secret();
    let stored = herald
        .vault
        .store(slot(app_id, &owner, SIGNING), secret.as_bytes(), now)
        .await?;
    let command = WebhookCommand::RotateSecret {
        webhook_id: id,
        secret_fingerprint: herald.vault.fingerprint(secret.as_bytes()),
    };
    if let Err(e) = run(herald, ctx, app_id, id, command).await {
        let _ = herald.vault.remove(stored).await;
        return Err(e);
    }
    herald
        .vault
        .expire_others(
            slot(app_id, &owner, SIGNING),
            stored,
            now + Duration::hours(ROTATION_OVERLAP_HOURS),
        )
        .await?;
    herald.webhooks.forget(id.0);
    Ok(Created {
        endpoint: record(herald, app_id, id).await?,
        secret: Secret::new(secret),
    })
}

/// The newest signing secret.
pub async fn secret(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
) -> Result<Secret<String>, CommandError> {
    record(herald, app_id, id).await?;
    let owner = owner(id);
    let active = herald
        .vault
        .active(slot(app_id, &owner, SIGNING), Utc::now())
        .await?;
    let newest = active
        .first()
        .ok_or_else(|| CommandError::Internal("the endpoint has no signing secret".into()))?;
    Ok(Secret::new(
        String::from_utf8_lossy(newest.expose()).into_owned(),
    ))
}

pub async fn get(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
) -> Result<EndpointRecord, CommandError> {
    record(herald, app_id, id).await
}

pub async fn list(
    herald: &Herald,
    app_id: AppId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<EndpointRecord>, CommandError> {
    Ok(endpoints::list(&herald.db, app_id.0, after, limit)
        .await
        .map_err(StoreError::from)?)
}

/// Queues a `webhook.test` message for the endpoint; returns its id.
pub async fn send_test(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
) -> Result<Uuid, CommandError> {
    record(herald, app_id, id).await?;
    let message_id = Uuid::now_v7();
    let now = herald.config.clock.now();
    let body = json!({
        "type": "webhook.test",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {"webhook_id": id.to_string()},
    });
    let message = NewMessage {
        endpoint_id: id.0,
        message_id,
        app_id: app_id.0,
        seq: 0,
        event_type: "webhook.test".into(),
        user_id: None,
        from_webhooks: false,
        body: body.to_string(),
        created_at: now.timestamp_micros(),
    };
    let mut tx = herald.db.begin().await?;
    model::insert_messages(&mut tx, &[message])
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    tx.commit().await?;
    herald.webhooks.wake();
    Ok(message_id)
}

/// Sends one message again, in a new round of attempts.
pub async fn resend(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
    message_id: Uuid,
) -> Result<(), CommandError> {
    record(herald, app_id, id).await?;
    let found = queue::resend(&herald.db, id.0, message_id, herald.config.clock.now()).await?;
    if !found {
        return Err(DomainError::NotFound("message").into());
    }
    herald.webhooks.wake();
    Ok(())
}

/// Re-queues the messages that failed for good in `[since, until)`.
pub async fn recover(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<u64, CommandError> {
    record(herald, app_id, id).await?;
    let now = herald.config.clock.now();
    // Messages are dated by their events, which the log dates in real time.
    let until = until.unwrap_or_else(|| Utc::now() + Duration::seconds(1));
    if until <= since {
        return Err(DomainError::invalid("until", "must be after since").into());
    }
    let n = queue::recover(&herald.db, id.0, since, until, now).await?;
    herald.webhooks.wake();
    Ok(n)
}

pub async fn attempts(
    herald: &Herald,
    app_id: AppId,
    id: WebhookId,
    outcome: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AttemptRecord>, CommandError> {
    record(herald, app_id, id).await?;
    Ok(queue::attempts(&herald.db, id.0, outcome, before, limit).await?)
}
