//! Devices: register, change properties, delete, read, search.

use domain::conditions::Condition;
use domain::device::{self, Device, DeviceCommand, DeviceEvent, Registration};
use domain::ids::{AppId, ExternalId, UserId};
use domain::platform::SendPlatform;
use domain::properties::PropertyPatch;
use domain::{DomainError, DomainEvent, RecordedEvent};
use projections::devices::{self as read, At, DeviceRecord, DeviceView};

use super::{RequestContext, settle};
use crate::commands::{CommandError, Executed};
use crate::herald::Herald;
use crate::push::webpush::Subscription;
use crate::secrets::random_in_1_to;

/// A device after a command, and what the command did.
#[derive(Debug, Clone)]
pub struct DeviceOutcome {
    pub device: Option<DeviceRecord>,
    /// The device did not exist before (it was registered afresh).
    pub created: bool,
    /// The position of the device stream's last event.
    pub position: Option<i64>,
}

pub async fn register(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    external_id: ExternalId,
    registration: Registration,
) -> Result<DeviceOutcome, CommandError> {
    check_push_token(herald, &registration).await?;
    let command = DeviceCommand::Register {
        external_id: external_id.clone(),
        registration,
        random_bucket: random_in_1_to(device::RANDOM_BUCKETS),
    };
    run(herald, ctx, app_id, &external_id, command).await
}

/// A Web Push token is a subscription whose endpoint anyone registering a
/// device chooses: it must parse, and its host pass the same address guard
/// as webhook URLs (public addresses only, unless allowed), so a request
/// to an internal address is refused here with a 400, not at send time.
async fn check_push_token(
    herald: &Herald,
    registration: &Registration,
) -> Result<(), CommandError> {
    if registration.send_platform != SendPlatform::Webpush {
        return Ok(());
    }
    let invalid = |m: String| CommandError::from(DomainError::invalid("push_token", m));
    let subscription = Subscription::parse(registration.push_token.as_str()).map_err(invalid)?;
    herald
        .config
        .webhooks
        .addresses
        .check_url(subscription.endpoint.as_str())
        .await
        .map_err(|m| invalid(format!("the subscription endpoint {m}")))
}

pub async fn set_properties(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    external_id: ExternalId,
    patch: PropertyPatch,
) -> Result<DeviceOutcome, CommandError> {
    let command = DeviceCommand::SetProperties {
        external_id: external_id.clone(),
        patch,
    };
    run(herald, ctx, app_id, &external_id, command).await
}

pub async fn delete(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    external_id: ExternalId,
) -> Result<DeviceOutcome, CommandError> {
    let command = DeviceCommand::Delete {
        external_id: external_id.clone(),
    };
    run(herald, ctx, app_id, &external_id, command).await
}

/// Deletes the device only if it belongs to `user_id` (else "not found").
pub async fn delete_owned(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    user_id: UserId,
    external_id: ExternalId,
) -> Result<DeviceOutcome, CommandError> {
    let command = DeviceCommand::DeleteOwned {
        external_id: external_id.clone(),
        user_id,
    };
    run(herald, ctx, app_id, &external_id, command).await
}

/// Runs a device command and answers with the device as it now is.
pub(crate) async fn run(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    external_id: &ExternalId,
    command: DeviceCommand,
) -> Result<DeviceOutcome, CommandError> {
    let done = herald
        .commands
        .execute::<Device>(&device::stream(external_id), &ctx.metadata(app_id), command)
        .await?;
    let position = done
        .appended
        .map(|a| a.last_position)
        .or(done.history.last().map(|e| e.position));
    settle(
        herald,
        ctx,
        &["devices"],
        done.appended.map(|a| a.last_position),
    )
    .await;
    let created = done
        .events
        .iter()
        .any(|e| matches!(e, DeviceEvent::Registered { .. }));
    Ok(DeviceOutcome {
        device: view_after(&done)?,
        created,
        position,
    })
}

/// The device as the history plus the new events make it.
fn view_after(done: &Executed<Device>) -> Result<Option<DeviceRecord>, CommandError> {
    let mut view = fold(&done.history)?;
    if let Some(appended) = done.appended {
        let count = done.events.len() as i64;
        for (i, event) in done.events.iter().enumerate() {
            let i = i as i64;
            view.apply(
                event,
                At {
                    position: appended.last_position - count + 1 + i,
                    recorded_at: appended.recorded_at,
                    stream_version: appended.stream_version - count + 1 + i,
                },
            );
        }
    }
    Ok(view.into_record())
}

/// Folds a device stream from its first event.
pub fn fold(history: &[RecordedEvent]) -> Result<DeviceView, CommandError> {
    let mut view = DeviceView::default();
    for recorded in history {
        let event = DeviceEvent::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        )
        .map_err(|e| CommandError::Internal(e.to_string()))?;
        view.apply(
            &event,
            At {
                position: recorded.position,
                recorded_at: recorded.recorded_at,
                stream_version: recorded.stream_version,
            },
        );
    }
    Ok(view)
}

pub async fn get(
    herald: &Herald,
    app_id: AppId,
    external_id: &ExternalId,
) -> Result<Option<DeviceRecord>, CommandError> {
    Ok(read::get_device(&herald.db, app_id, external_id.as_str()).await?)
}

/// The device as it was at `as_of`, rebuilt from its stream.
pub async fn get_as_of(
    herald: &Herald,
    app_id: AppId,
    external_id: &ExternalId,
    as_of: chrono::DateTime<chrono::Utc>,
) -> Result<Option<DeviceRecord>, CommandError> {
    let history = super::history_until(herald, app_id, &device::stream(external_id), as_of).await?;
    Ok(fold(&history)?.into_record())
}

/// The device's own stream, for auditors.
pub async fn events(
    herald: &Herald,
    app_id: AppId,
    external_id: &ExternalId,
    from_version: i64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, CommandError> {
    Ok(herald
        .store
        .read_stream(app_id, &device::stream(external_id), from_version, limit)
        .await?)
}

pub async fn search(
    herald: &Herald,
    app_id: AppId,
    condition: Option<&Condition>,
    after_key: i64,
    limit: i64,
) -> Result<read::search::Page, CommandError> {
    Ok(read::search::search(&herald.db, app_id, condition, after_key, limit).await?)
}
