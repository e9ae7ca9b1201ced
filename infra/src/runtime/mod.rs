//! The runtime: what runs Herald's projections beside the log. Every
//! projection — read model or reactor feed — follows the log on its own
//! task, with its own checkpoint and transaction (`follower`); a failing
//! one stops for the failing event's app alone (`faults`). `Followers` is
//! what the rest of the system sees: waits for read-your-writes, the read
//! gate, status. On PostgreSQL with many nodes each projection has one
//! owner that applies it (`ownership`).

pub mod checkpoints;
pub mod commands;
mod fault_replay;
pub mod faults;
mod follower;
mod followers;
mod histories;
pub mod nodes;
pub mod ownership;
pub mod reached;
pub mod reactor;
pub mod rebuild;
pub mod rebuild_guard;
pub mod status;

use std::sync::Arc;

use projections::apps::AppsProjection;
use projections::change_queues::ChangeQueuesProjection;
use projections::devices::DevicesProjection;
use projections::flags::FeatureFlagsProjection;
use projections::notifications::NotificationsProjection;
use projections::notifications::history::DeviceNotificationsProjection;
use projections::notifications::jobs::NotificationJobsProjection;
use projections::users::UsersProjection;
use projections::webhooks::WebhooksProjection;
use projections::webhooks::callbacks::IssueCallback;
use projections::{Projection, ProjectionError, ReactorFeed, ReadModel, Unseal};
use serde::Serialize;

pub use self::follower::Stall;
pub use self::followers::{Followers, NotReady, Trouble};
use crate::store::StoreError;

/// Which kind of projection: see `projections::ReadModel` and
/// `projections::ReactorFeed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ReadModel,
    ReactorFeed,
}

/// A projection this build runs, and its kind.
#[derive(Clone)]
pub struct Registered {
    pub kind: Kind,
    pub projection: Arc<dyn Projection>,
}

/// The read models: derived data, rebuildable.
pub fn read_models() -> Vec<Arc<dyn ReadModel>> {
    vec![
        Arc::new(AppsProjection),
        Arc::new(DevicesProjection),
        Arc::new(UsersProjection),
        Arc::new(NotificationsProjection),
        Arc::new(DeviceNotificationsProjection),
        Arc::new(FeatureFlagsProjection),
    ]
}

/// The reactor feeds: delivery state, never rebuilt. The change queues and
/// webhooks read the log's table themselves (backfills, templates' context)
/// and open its sealed values with `unseal`.
pub fn reactor_feeds(
    unseal: Arc<dyn Unseal>,
    callbacks: Option<Arc<dyn IssueCallback>>,
) -> Vec<Arc<dyn ReactorFeed>> {
    vec![
        Arc::new(ChangeQueuesProjection::new(unseal.clone())),
        Arc::new(WebhooksProjection::new(unseal, callbacks)),
        Arc::new(NotificationJobsProjection),
    ]
}

/// Stands in for the data keys where projections are listed, not run: a
/// projection that needs to open a sealed value stops (and says why)
/// rather than read it sealed.
struct NoKeys;

#[async_trait::async_trait]
impl Unseal for NoKeys {
    async fn open(
        &self,
        _: domain::ids::AppId,
        _: &str,
        _: &str,
        _: &mut serde_json::Value,
    ) -> Result<(), ProjectionError> {
        Err(ProjectionError::Unavailable(
            "this projection runs without the subjects' data keys".into(),
        ))
    }
}

/// Every projection this build runs, for listing (names, kinds, status).
pub fn registered() -> Vec<Registered> {
    registered_with(Arc::new(NoKeys), None)
}

/// Every projection this build runs, to run them; `callbacks` issues the
/// webhooks' callback URLs (`None` without a public URL).
pub fn registered_with(
    unseal: Arc<dyn Unseal>,
    callbacks: Option<Arc<dyn IssueCallback>>,
) -> Vec<Registered> {
    let models = read_models().into_iter().map(|m| Registered {
        kind: Kind::ReadModel,
        projection: m,
    });
    let feeds = reactor_feeds(unseal, callbacks)
        .into_iter()
        .map(|f| Registered {
            kind: Kind::ReactorFeed,
            projection: f,
        });
    models.chain(feeds).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// Another rebuild holds the database's rebuild lock.
    #[error("{0}")]
    Busy(String),
}

impl From<sqlx::Error> for RuntimeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<RuntimeError> for crate::runtime::commands::CommandError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Store(e) => e.into(),
            RuntimeError::Projection(e) => Self::Internal(e.to_string()),
            RuntimeError::Busy(e) => Self::Internal(e),
        }
    }
}

/// The projections' names, as reads declare the ones they use.
pub mod names {
    pub const APPS: &str = "apps";
    pub const DEVICES: &str = "devices";
    pub const USERS: &str = "users";
    pub const NOTIFICATIONS: &str = "notifications";
    pub const DEVICE_NOTIFICATIONS: &str = "device_notifications";
    pub const CHANGE_QUEUES: &str = "change_queues";
    pub const WEBHOOKS: &str = "webhooks";
    pub const FEATURE_FLAGS: &str = "feature_flags";
}
