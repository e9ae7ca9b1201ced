//! Feature flags: changed by commands like everything else, evaluated from
//! memory. Each node keeps every app's flags (conditions parsed once) and
//! reloads an app's from the read model when it changed them itself, or
//! when its copy is older than [`REFRESH`] (so a change made on another
//! node shows within that bound). The devices flags are evaluated for are
//! kept the same way: a device's facts are read from the devices model at
//! most once per [`REFRESH`] per node (at most [`DEVICES_KEPT`] of them),
//! so evaluating a device's flags again and again costs no database round
//! trip. A request with a consistency token (`Herald-Min-Position`) waits
//! for both models to reach it and reads both afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::conditions::{Condition, Facts};
use domain::flag::{self, Change, Flag, FlagCommand, FlagName, Settings};
use domain::ids::AppId;
use domain::properties::{Properties, PropertyValue};
use projections::db::Db;
use projections::devices::DeviceRecord;
use projections::flags::{self as read, FlagRecord};
use serde_json::{Map, Value};

use super::devices::Access;
use super::{Created, Reads, RequestContext};
use crate::runtime::commands::{CommandBus, CommandError};
use crate::runtime::names;
use crate::store::StoreError;
use domain::device::By;

/// How old a node's copy of an app's flags may get.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Devices whose facts a node keeps for evaluation.
pub const DEVICES_KEPT: usize = 100_000;

/// The property `X-App-Version` stands for.
pub const VERSION_PROPERTY: &str = "app_version";

/// One flag ready to evaluate.
struct Compiled {
    name: String,
    enabled: bool,
    condition: Option<Condition>,
    metadata: Map<String, Value>,
}

struct Cached {
    loaded: Instant,
    flags: Arc<Vec<Compiled>>,
}

/// A device as read for evaluation (`None`: not registered).
struct KeptDevice {
    loaded: Instant,
    device: Option<Arc<DeviceRecord>>,
}

/// The devices a node keeps for evaluation; the devices service forgets
/// one when it changes it, so that its next evaluation on this node reads
/// it afresh.
#[derive(Clone, Default)]
pub struct KeptDevices(Arc<Mutex<HashMap<(AppId, String), KeptDevice>>>);

impl KeptDevices {
    pub fn forget(&self, app_id: AppId, external_id: &str) {
        if let Ok(mut kept) = self.0.lock() {
            kept.remove(&(app_id, external_id.to_owned()));
        }
    }

    fn get(&self, key: &(AppId, String)) -> Option<Option<Arc<DeviceRecord>>> {
        let kept = self.0.lock().ok()?;
        kept.get(key)
            .filter(|d| d.loaded.elapsed() < REFRESH)
            .map(|d| d.device.clone())
    }

    fn keep(&self, key: (AppId, String), device: Option<Arc<DeviceRecord>>) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() >= DEVICES_KEPT {
                kept.retain(|_, d| d.loaded.elapsed() < REFRESH);
                if kept.len() >= DEVICES_KEPT {
                    kept.clear();
                }
            }
            kept.insert(
                key,
                KeptDevice {
                    loaded: Instant::now(),
                    device,
                },
            );
        }
    }
}

/// One flag's answer for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub name: String,
    pub is_active: bool,
    pub metadata: Map<String, Value>,
}

/// What a device not registered yet says of itself (the `X-App-*`
/// headers), or what overrides a registered one's facts.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub device_id: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
}

#[derive(Clone)]
pub struct FeatureFlags {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    cache: Arc<Mutex<HashMap<AppId, Cached>>>,
    devices: KeptDevices,
}

/// A stable bucket in 1..=10000 for a device id that has none drawn yet.
fn bucket_of(device_id: &str) -> i64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, device_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    i64::try_from(u64::from_be_bytes(first) % u64::from(domain::device::RANDOM_BUCKETS))
        .unwrap_or(0)
        + 1
}

impl FeatureFlags {
    pub fn new(commands: CommandBus, db: Db, reads: Reads, devices: KeptDevices) -> Self {
        Self {
            commands,
            db,
            reads,
            cache: Arc::new(Mutex::new(HashMap::new())),
            devices,
        }
    }

    /// Runs the command, then reads the flag back.
    async fn run(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: &FlagName,
        command: FlagCommand,
    ) -> Result<Option<FlagRecord>, CommandError> {
        self.execute(ctx, app_id, name, command).await?;
        self.get(app_id, name.as_str()).await
    }

    async fn execute(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: &FlagName,
        command: FlagCommand,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<Flag>(&flag::stream(name), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &[names::FEATURE_FLAGS],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        self.forget(app_id);
        Ok(())
    }

    pub async fn create(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: FlagName,
        settings: Settings,
    ) -> Result<Created<FlagName, Option<FlagRecord>>, CommandError> {
        let command = FlagCommand::Create {
            name: name.clone(),
            settings,
        };
        // Not read back for a client that did not wait for the read model.
        let record = if ctx.wait_for_read_models {
            Some(self.run(ctx, app_id, &name, command).await?)
        } else {
            self.execute(ctx, app_id, &name, command).await?;
            None
        };
        Ok(Created { id: name, record })
    }

    pub async fn change(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: FlagName,
        change: Change,
    ) -> Result<Option<FlagRecord>, CommandError> {
        let command = FlagCommand::Change {
            name: name.clone(),
            change,
        };
        self.run(ctx, app_id, &name, command).await
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: FlagName,
    ) -> Result<(), CommandError> {
        let command = FlagCommand::Delete { name: name.clone() };
        self.execute(ctx, app_id, &name, command).await
    }

    pub async fn list(&self, app_id: AppId) -> Result<Vec<FlagRecord>, CommandError> {
        Ok(read::flags_of(&self.db, app_id.0)
            .await
            .map_err(StoreError::from)?)
    }

    pub async fn get(&self, app_id: AppId, name: &str) -> Result<Option<FlagRecord>, CommandError> {
        Ok(read::flag_of(&self.db, app_id.0, name)
            .await
            .map_err(StoreError::from)?)
    }

    fn forget(&self, app_id: AppId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&app_id);
        }
    }

    /// The app's flags from memory, reloaded when older than [`REFRESH`]
    /// (or when `fresh`).
    async fn compiled(
        &self,
        app_id: AppId,
        fresh: bool,
    ) -> Result<Arc<Vec<Compiled>>, CommandError> {
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.get(&app_id)
            && c.loaded.elapsed() < REFRESH
            && !fresh
        {
            return Ok(c.flags.clone());
        }
        let flags: Vec<Compiled> = self
            .list(app_id)
            .await?
            .into_iter()
            .map(|f| Compiled {
                condition: f.settings.condition(),
                name: f.name,
                enabled: f.settings.enabled,
                metadata: f.settings.metadata,
            })
            .collect();
        let flags = Arc::new(flags);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                app_id,
                Cached {
                    loaded: Instant::now(),
                    flags: flags.clone(),
                },
            );
        }
        Ok(flags)
    }

    /// A registered device's facts, from memory when read less than
    /// [`REFRESH`] ago (and not `fresh`).
    async fn device(
        &self,
        app_id: AppId,
        external_id: &str,
        fresh: bool,
    ) -> Result<Option<Arc<DeviceRecord>>, CommandError> {
        let key = (app_id, external_id.to_owned());
        if !fresh && let Some(device) = self.devices.get(&key) {
            return Ok(device);
        }
        let device = projections::devices::get_device(&self.db, app_id, external_id)
            .await
            .map_err(StoreError::from)?
            .map(Arc::new);
        self.devices.keep(key, device.clone());
        Ok(device)
    }

    /// Every flag (or only `only`) for one device: the registered device
    /// `external_id` if there is one, with what it claims on top (a newer
    /// app version, say); else the claims alone. With a consistency token
    /// in `ctx`, once the flags and devices models have reached it.
    pub async fn evaluate(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        external_id: Option<&str>,
        claimed: &Claimed,
        only: Option<&str>,
        access: &Access,
    ) -> Result<Vec<Evaluation>, CommandError> {
        let fresh = ctx.min_position.is_some();
        if fresh {
            self.reads
                .fresh(ctx, app_id, &[names::FEATURE_FLAGS, names::DEVICES])
                .await?;
        }
        let flags = self.compiled(app_id, fresh).await?;
        let device = match external_id {
            Some(id) => self.device(app_id, id, fresh).await?,
            None => None,
        };
        // A client key evaluates for a registered device only if it is its
        // own (its flags follow from the device's properties).
        if let (Some(d), By::Client { presented }) = (&device, access.by()) {
            domain::device::client_may(d.secret_sha256.as_deref(), presented.as_deref())?;
        }
        let mut properties: Properties = device
            .as_ref()
            .map(|d| d.properties.clone())
            .unwrap_or_default();
        if let Some(v) = &claimed.version {
            properties.insert(VERSION_PROPERTY.to_owned(), PropertyValue::Str(v.clone()));
        }
        let device_id = external_id
            .map(str::to_owned)
            .or_else(|| claimed.device_id.clone())
            .unwrap_or_default();
        let facts = Facts {
            external_id: &device_id,
            properties: &properties,
            device_platform: claimed
                .platform
                .as_deref()
                .or(device.as_ref().map(|d| d.device_platform.as_str())),
            send_platform: device.as_ref().map(|d| d.send_platform.as_str()),
            user_id: device.as_ref().and_then(|d| d.user_id.as_deref()),
            random_bucket: device
                .as_ref()
                .map_or_else(|| bucket_of(&device_id), |d| d.random_bucket),
            has_permission: device.as_ref().is_none_or(|d| d.has_permission),
        };
        let answer = |f: &Compiled| Evaluation {
            name: f.name.clone(),
            is_active: flag::is_active(f.enabled, f.condition.as_ref(), &facts),
            metadata: f.metadata.clone(),
        };
        Ok(match only {
            Some(name) => vec![
                flags
                    .iter()
                    .find(|f| f.name == name)
                    .map(answer)
                    .unwrap_or_else(|| Evaluation {
                        name: name.to_owned(),
                        is_active: false,
                        metadata: Map::new(),
                    }),
            ],
            None => flags.iter().map(answer).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_id_has_one_bucket_in_range() {
        let a = bucket_of("device-a");
        assert_eq!(a, bucket_of("device-a"));
        assert!((1..=10_000).contains(&a));
        let spread: std::collections::HashSet<i64> =
            (0..100).map(|i| bucket_of(&format!("d{i}"))).collect();
        assert!(spread.len() > 90);
    }
}
