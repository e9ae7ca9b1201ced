//! A notification's audience: every permitted device with a live token that
//! matches its condition tree, belongs to one of its users, or is named —
//! resolved once, in one statement, into `notification_audience`, numbered
//! in device order so that batch N is always the same devices.

use domain::ids::AppId;
use domain::notification::PerPlatform;
use domain::notification::message::Targets;
use projections::db::{Db, Tx};
use projections::devices::search::{Bind, Compiled, compile};
use projections::{bind_search, on_db, on_tx};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Member {
    pub seq: i64,
    pub external_id: String,
    pub send_platform: String,
    pub device_platform: String,
    pub push_token: String,
}

fn push(compiled: &mut Compiled, bind: Bind) -> String {
    compiled.binds.push(bind);
    format!("${}", compiled.binds.len())
}

/// `WHERE` over `devices d` for the targets (`$1` is the app).
fn matching(app_id: AppId, targets: &Targets) -> Compiled {
    let condition = targets.condition();
    let mut compiled = match &condition {
        Some(c) => compile(app_id, Some(c)),
        None => {
            let mut c = compile(app_id, None);
            c.sql = "FALSE".into();
            c
        }
    };
    let mut parts = vec![format!("({})", compiled.sql)];
    if !targets.user_ids.is_empty() {
        let list: Vec<String> = targets
            .user_ids
            .iter()
            .map(|u| push(&mut compiled, Bind::Str(u.as_str().to_owned())))
            .collect();
        parts.push(format!("d.user_id IN ({})", list.join(", ")));
    }
    if !targets.external_ids.is_empty() {
        let list: Vec<String> = targets
            .external_ids
            .iter()
            .map(|e| push(&mut compiled, Bind::Str(e.as_str().to_owned())))
            .collect();
        parts.push(format!("d.external_id IN ({})", list.join(", ")));
    }
    compiled.sql = format!(
        "d.app_id = $1 AND d.has_permission AND d.token_valid AND ({})",
        parts.join(" OR ")
    );
    compiled
}

/// How many devices the targets match now (for the quota).
pub async fn count(db: &Db, app_id: AppId, targets: &Targets) -> Result<i64, sqlx::Error> {
    let compiled = matching(app_id, targets);
    let sql = format!("SELECT COUNT(*) FROM devices d WHERE {}", compiled.sql);
    Ok(on_db!(db, |p| {
        bind_search!(sqlx::query_scalar(sql.as_str()), &compiled.binds)
            .fetch_one(p)
            .await?
    }))
}

/// Resolves the audience (replacing any earlier, unsent resolution) and
/// records the batch size with the job, in one transaction. Returns the
/// total and the count per device platform.
///
/// Members are numbered in external id order, so each batch's devices are
/// neighbours in the per-device history (`device_notifications`, keyed by
/// app and external id): a batch's rows land on a few index pages rather
/// than one page each (in registration order they would be scattered, as
/// external ids are in no relation to when devices registered).
pub async fn resolve(
    db: &Db,
    app_id: AppId,
    notification_id: Uuid,
    targets: &Targets,
    batch_size: i64,
) -> Result<(u64, PerPlatform), sqlx::Error> {
    let mut compiled = matching(app_id, targets);
    let id = push(&mut compiled, Bind::Uuid(notification_id));
    let sql = format!(
        "INSERT INTO notification_audience (notification_id, seq, device_key, external_id, send_platform, \
         device_platform, push_token) \
         SELECT {id}, ROW_NUMBER() OVER (ORDER BY d.external_id), d.device_key, d.external_id, \
         d.send_platform, d.device_platform, d.push_token FROM devices d WHERE {}",
        compiled.sql
    );
    let mut tx: Tx = db.begin_relaxed().await?;
    let counts: Vec<(String, i64)> = on_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM notification_audience WHERE notification_id = $1")
            .bind(notification_id)
            .execute(&mut *c)
            .await?;
        bind_search!(sqlx::query(sql.as_str()), &compiled.binds)
            .execute(&mut *c)
            .await?;
        sqlx::query("UPDATE notification_jobs SET batch_size = $2 WHERE notification_id = $1")
            .bind(notification_id)
            .bind(batch_size)
            .execute(&mut *c)
            .await?;
        sqlx::query_as(
            "SELECT device_platform, COUNT(*) FROM notification_audience WHERE notification_id = $1 \
             GROUP BY device_platform",
        )
        .bind(notification_id)
        .fetch_all(&mut *c)
        .await?
    });
    tx.commit().await?;
    let mut by_platform = PerPlatform::default();
    for (platform, n) in counts {
        let n = u64::try_from(n).unwrap_or(0);
        match platform.as_str() {
            "android" => by_platform.android += n,
            "ios" => by_platform.ios += n,
            _ => by_platform.web += n,
        }
    }
    Ok((by_platform.total(), by_platform))
}

/// Batch `n` (1-based) of `size` members.
pub async fn batch(
    db: &Db,
    notification_id: Uuid,
    n: u64,
    size: i64,
) -> Result<Vec<Member>, sqlx::Error> {
    let from = (i64::try_from(n).unwrap_or(i64::MAX) - 1) * size;
    let rows: Vec<(i64, String, String, String, String)> = on_db!(db, |p| {
        sqlx::query_as(
            "SELECT seq, external_id, send_platform, device_platform, push_token FROM notification_audience \
             WHERE notification_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(notification_id)
        .bind(from)
        .bind(from + size)
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(seq, external_id, send_platform, device_platform, push_token)| Member {
                seq,
                external_id,
                send_platform,
                device_platform,
                push_token,
            },
        )
        .collect())
}
