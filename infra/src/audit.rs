//! Verifying an app's hash chain from its first event to its head.

use domain::ids::AppId;
use projections::db::Db;
use projections::on_db;
use serde::Serialize;
use uuid::Uuid;

use crate::store::chain::ChainVerifier;
use crate::store::scan::Range;
use crate::store::{EventStore, StoreError};

/// The outcome of walking one app's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Verification {
    Intact {
        ok: bool,
        app_id: Uuid,
        /// 0 and the zero hash for an app without events.
        head_position: i64,
        head_hash: String,
        events: u64,
    },
    Broken {
        ok: bool,
        app_id: Uuid,
        /// The first position where the chain does not hold.
        position: i64,
        reason: String,
        /// Events that verified before the break.
        events: u64,
    },
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }

    /// The events checked.
    pub fn events(&self) -> u64 {
        match self {
            Self::Intact { events, .. } | Self::Broken { events, .. } => *events,
        }
    }
}

/// Walks the app's events in position order, recomputing every link.
pub async fn verify_app(store: &dyn EventStore, app_id: AppId) -> Result<Verification, StoreError> {
    verify_app_with(store, app_id, |_| {}).await
}

/// [`verify_app`], telling `progress` how many of the app's events have
/// been checked after each page.
pub async fn verify_app_with(
    store: &dyn EventStore,
    app_id: AppId,
    mut progress: impl FnMut(u64),
) -> Result<Verification, StoreError> {
    let mut chain = ChainVerifier::default();
    let mut scan = store.scan(Range::App {
        app: app_id,
        after: 0,
    });
    let mut scratch = Vec::new();
    while let Some(page) = scan.next().await {
        for event in &page? {
            if let Err(broken) = chain.push_stored(event, &mut scratch) {
                return Ok(Verification::Broken {
                    ok: false,
                    app_id: app_id.0,
                    position: broken.position,
                    reason: broken.reason,
                    events: chain.events(),
                });
            }
        }
        progress(chain.events());
    }
    Ok(Verification::Intact {
        ok: true,
        app_id: app_id.0,
        head_position: chain.head_position(),
        head_hash: chain.head_hash(),
        events: chain.events(),
    })
}

/// How many events `app` has (all apps' when `None`).
pub async fn count_events(db: &Db, app: Option<AppId>) -> Result<u64, StoreError> {
    let n: i64 = on_db!(db, |pool| {
        match app {
            Some(app) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE app_id = $1")
                    .bind(app.0)
                    .fetch_one(pool)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM events")
                    .fetch_one(pool)
                    .await?
            }
        }
    });
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every app that has events, in id order.
pub async fn apps_in_log(db: &Db) -> Result<Vec<AppId>, StoreError> {
    let ids: Vec<Uuid> = on_db!(db, |pool| {
        sqlx::query_scalar("SELECT DISTINCT app_id FROM events ORDER BY app_id")
            .fetch_all(pool)
            .await?
    });
    Ok(ids.into_iter().map(AppId).collect())
}
