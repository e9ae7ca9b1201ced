//! Registering and reading devices.

use domain::device::{self, Device, DeviceCommand, Registration};
use domain::ids::{AppId, ExternalId};
use domain::{DomainEvent, RecordedEvent};
use projections::devices::{self as read, DeviceRecord, DeviceView};

use super::{RequestContext, settle};
use crate::commands::{CommandError, Executed};
use crate::herald::Herald;
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
    let command = DeviceCommand::Register {
        external_id: external_id.clone(),
        registration,
        random_bucket: random_in_1_to(device::RANDOM_BUCKETS),
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
    settle(herald, "devices", done.appended.map(|a| a.last_position)).await;
    let created = done
        .events
        .iter()
        .any(|e| matches!(e, device::DeviceEvent::Registered { .. }));
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
        let first_version = appended.stream_version - done.events.len() as i64 + 1;
        for (i, event) in done.events.iter().enumerate() {
            view.apply(event, appended.recorded_at, first_version + i as i64);
        }
    }
    Ok(view.into_record())
}

pub fn fold(history: &[RecordedEvent]) -> Result<DeviceView, CommandError> {
    let mut view = DeviceView::default();
    for recorded in history {
        let event = device::DeviceEvent::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        )
        .map_err(|e| CommandError::Internal(e.to_string()))?;
        view.apply(&event, recorded.recorded_at, recorded.stream_version);
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
