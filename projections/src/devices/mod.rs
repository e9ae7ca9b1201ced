//! The `devices` read model: one row per live device, plus one searchable
//! row per property value (`device_properties`).
//!
//! A batch is applied by loading the rows of the devices it touches, folding
//! the events in memory (the same fold as command responses), and writing
//! the results back in bulk.

pub mod bulk;
mod fold;
mod query;
mod record;
pub mod search;
mod store;

use std::collections::HashMap;

use async_trait::async_trait;
use domain::device::DeviceEvent;
use domain::{DomainEvent, RecordedEvent};

pub use fold::{At, DeviceView, apply};
pub use query::{count_of_user, devices_of_user, get_device};
pub use record::DeviceRecord;

use self::store::DeviceId;
use crate::db::Tx;
use crate::{Projection, ProjectionError};

pub struct DevicesProjection;

impl crate::ReadModel for DevicesProjection {
    fn stream_fold(&self) -> Option<std::sync::Arc<dyn crate::bulk::StreamFold>> {
        Some(std::sync::Arc::new(bulk::DevicesBulk))
    }
}

#[async_trait]
impl Projection for DevicesProjection {
    fn name(&self) -> &'static str {
        "devices"
    }

    /// 3: a former owner's forget (`subject.forgotten` with
    /// `former_owner`) replaces what a device carried of theirs; a device
    /// whose former owner was forgotten before is rebuilt to the same.
    fn version(&self) -> i32 {
        3
    }

    fn tables(&self) -> &'static [&'static str] {
        &["device_properties", "devices"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("device.")
            || event_type == domain::personal::FORGOTTEN
            || event_type == domain::device::SECRET_ISSUED
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        let mut order: Vec<DeviceId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // `subject.forgotten` is written to users' streams too.
        for event in events.iter().filter(|e| e.stream.starts_with("device:")) {
            let device = DeviceEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?;
            let id = (event.app_id.0, external_id(&device).to_owned());
            if seen.insert(id.clone()) {
                order.push(id.clone());
            }
            decoded.push((id, device, event));
        }
        let before = store::load(tx, &order).await?;
        let mut after: HashMap<DeviceId, Option<DeviceRecord>> = order
            .iter()
            .map(|id| (id.clone(), before.get(id).cloned()))
            .collect();
        for (id, device, event) in &decoded {
            let at = At {
                position: event.position,
                recorded_at: event.recorded_at,
                stream_version: event.stream_version,
            };
            if let Some(state) = after.get_mut(id) {
                apply(state, device, at);
            }
        }

        let mut gone = Vec::new();
        let mut stale_properties = Vec::new();
        let mut upserts = Vec::new();
        let mut properties = Vec::new();
        for id in &order {
            let old = before.get(id);
            let new = after.get(id).and_then(Option::as_ref);
            if let Some(old) = old
                && new.is_none_or(|n| n.device_key != old.device_key)
            {
                gone.push(old.device_key);
            }
            let Some(new) = new else { continue };
            if old != Some(new) {
                upserts.push((id.0, new));
            }
            let same_properties = old
                .is_some_and(|o| o.device_key == new.device_key && o.properties == new.properties);
            if !same_properties {
                if old.is_some_and(|o| o.device_key == new.device_key) {
                    stale_properties.push(new.device_key);
                }
                properties.push((id.0, new));
            }
        }
        store::delete(tx, &gone, true).await?;
        store::delete(tx, &stale_properties, false).await?;
        store::upsert(tx, &upserts).await?;
        store::insert_properties(tx, &properties).await?;
        Ok(())
    }
}

fn external_id(event: &DeviceEvent) -> &str {
    match event {
        DeviceEvent::Registered { external_id, .. }
        | DeviceEvent::Updated { external_id, .. }
        | DeviceEvent::UserLinked { external_id, .. }
        | DeviceEvent::UserUnlinked { external_id, .. }
        | DeviceEvent::PropertiesChanged { external_id, .. }
        | DeviceEvent::PushTokenInvalidated { external_id, .. }
        | DeviceEvent::SecretIssued { external_id, .. }
        | DeviceEvent::Deleted { external_id }
        | DeviceEvent::Forgotten { external_id, .. } => external_id.as_str(),
    }
}
