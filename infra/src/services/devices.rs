//! Devices: register, change properties, delete, read, search.

use domain::conditions::Condition;
use domain::device::{self, By, Device, DeviceCommand, DeviceEvent, Registration};
use domain::ids::{AppId, ExternalId, UserId};
use domain::platform::SendPlatform;
use domain::properties::PropertyPatch;
use domain::{DomainError, DomainEvent, RecordedEvent};
use projections::devices::{self as read, At, DeviceRecord, DeviceView};

use super::flags::KeptDevices;
use super::{Reads, RequestContext};
use crate::reactors::push::webpush::Subscription;
use crate::reactors::webhooks::address::AddressPolicy;
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::{CommandError, Executed};
use crate::secrets::{Secret, new_device_secret, random_in_1_to, sha256_hex};
use crate::store::EventStore;
use projections::db::Db;
use std::sync::Arc;

/// A device after a command, and what the command did.
#[derive(Debug, Clone)]
pub struct DeviceOutcome {
    pub device: Option<DeviceRecord>,
    /// The device did not exist before (it was registered afresh).
    pub created: bool,
    /// A device secret was issued (a client key registered the device).
    pub issued: bool,
    /// The device's secret, when a client key just registered it (shown
    /// once, in the answer to that registration).
    pub secret: Option<Secret<String>>,
}

/// Who asks for a device change.
#[derive(Debug, Clone)]
pub enum Access {
    /// The app's server: a write key.
    Server,
    /// Code on an end user's device: a client key, with the
    /// `Herald-Device-Secret` it sent, if any.
    Client { secret: Option<Secret<String>> },
}

impl Access {
    pub(crate) fn by(&self) -> By {
        match self {
            Access::Server => By::Server,
            Access::Client { secret } => By::Client {
                presented: secret.as_ref().map(|s| sha256_hex(s.expose().as_bytes())),
            },
        }
    }
}

/// Registers devices, changes their properties, reads and searches them.
#[derive(Clone)]
pub struct Devices {
    commands: CommandBus,
    db: Db,
    store: Arc<dyn EventStore>,
    reads: Reads,
    addresses: Arc<AddressPolicy>,
    /// Devices kept for flag evaluation: forgotten when changed here.
    kept: KeptDevices,
}

impl Devices {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: CommandBus,
        db: Db,
        store: Arc<dyn EventStore>,
        reads: Reads,
        addresses: Arc<AddressPolicy>,
        kept: KeptDevices,
    ) -> Self {
        Self {
            commands,
            db,
            store,
            reads,
            addresses,
            kept,
        }
    }
}

impl Devices {
    pub async fn register(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        external_id: ExternalId,
        registration: Registration,
        access: &Access,
    ) -> Result<DeviceOutcome, CommandError> {
        self.check_push_token(&registration).await?;
        // Drawn for every client registration; kept only if the device is new.
        let secret = matches!(access, Access::Client { .. }).then(new_device_secret);
        let command = DeviceCommand::Register {
            external_id: external_id.clone(),
            registration,
            random_bucket: random_in_1_to(device::RANDOM_BUCKETS),
            by: access.by(),
            new_secret: secret.as_ref().map(|s| sha256_hex(s.as_bytes())),
        };
        let mut outcome = self.run(ctx, app_id, &external_id, command).await?;
        if outcome.issued {
            outcome.secret = secret.map(Secret::new);
        }
        Ok(outcome)
    }

    /// A Web Push token is a subscription whose endpoint anyone registering a
    /// device chooses: it must parse, and its host pass the same address guard
    /// as webhook URLs (public addresses only, unless allowed), so a request
    /// to an internal address is refused here with a 400, not at send time.
    async fn check_push_token(&self, registration: &Registration) -> Result<(), CommandError> {
        if registration.send_platform != SendPlatform::Webpush {
            return Ok(());
        }
        let invalid = |m: String| CommandError::from(DomainError::invalid("push_token", m));
        let subscription =
            Subscription::parse(registration.push_token.as_str()).map_err(invalid)?;
        self.addresses
            .check_url(subscription.endpoint.as_str())
            .await
            .map_err(|m| invalid(format!("the subscription endpoint {m}")))
    }

    pub async fn set_properties(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        external_id: ExternalId,
        patch: PropertyPatch,
    ) -> Result<DeviceOutcome, CommandError> {
        let command = DeviceCommand::SetProperties {
            external_id: external_id.clone(),
            patch,
        };
        self.run(ctx, app_id, &external_id, command).await
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        external_id: ExternalId,
        access: &Access,
    ) -> Result<DeviceOutcome, CommandError> {
        let command = DeviceCommand::Delete {
            external_id: external_id.clone(),
            by: access.by(),
        };
        self.run(ctx, app_id, &external_id, command).await
    }

    /// Deletes the device only if it belongs to `user_id` (else "not found").
    pub async fn delete_owned(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: UserId,
        external_id: ExternalId,
    ) -> Result<DeviceOutcome, CommandError> {
        let command = DeviceCommand::DeleteOwned {
            external_id: external_id.clone(),
            user_id,
        };
        self.run(ctx, app_id, &external_id, command).await
    }

    /// Runs a device command and answers with the device as it now is.
    pub(crate) async fn run(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        external_id: &ExternalId,
        command: DeviceCommand,
    ) -> Result<DeviceOutcome, CommandError> {
        let done = self
            .commands
            .execute::<Device>(&device::stream(external_id), &ctx.metadata(app_id), command)
            .await?;
        self.kept.forget(app_id, external_id.as_str());
        self.reads
            .settle(
                ctx,
                &["devices"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        let created = done
            .events
            .iter()
            .any(|e| matches!(e, DeviceEvent::Registered { .. }));
        let issued = done
            .events
            .iter()
            .any(|e| matches!(e, DeviceEvent::SecretIssued { .. }));
        Ok(DeviceOutcome {
            device: view_after(&done)?,
            created,
            issued,
            secret: None,
        })
    }

    pub async fn get(
        &self,
        app_id: AppId,
        external_id: &ExternalId,
    ) -> Result<Option<DeviceRecord>, CommandError> {
        Ok(read::get_device(&self.db, app_id, external_id.as_str()).await?)
    }

    /// The device as it was at `as_of`, rebuilt from its stream.
    pub async fn get_as_of(
        &self,
        app_id: AppId,
        external_id: &ExternalId,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<DeviceRecord>, CommandError> {
        let history = self
            .reads
            .history_until(app_id, &device::stream(external_id), as_of)
            .await?;
        Ok(fold(&history)?.into_record())
    }

    /// The device's own stream, for auditors.
    pub async fn events(
        &self,
        app_id: AppId,
        external_id: &ExternalId,
        from_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        Ok(self
            .store
            .read_stream(app_id, &device::stream(external_id), from_version, limit)
            .await?)
    }

    pub async fn search(
        &self,
        app_id: AppId,
        condition: Option<&Condition>,
        after_key: i64,
        limit: i64,
    ) -> Result<read::search::Page, CommandError> {
        Ok(read::search::search(&self.db, app_id, condition, after_key, limit).await?)
    }
}

/// The device as the history plus the new events make it.
fn view_after(done: &Executed<Device>) -> Result<Option<DeviceRecord>, CommandError> {
    let mut view = fold(&done.history)?;
    if let Some(appended) = &done.appended {
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
