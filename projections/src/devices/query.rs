//! Reading devices.

use domain::ids::AppId;

use super::DeviceRecord;
use super::record::{COLUMNS, from_row};
use crate::db::Db;
use crate::on_db;

pub async fn get_device(
    db: &Db,
    app_id: AppId,
    external_id: &str,
) -> Result<Option<DeviceRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE app_id = $1 AND external_id = $2");
    on_db!(db, |pool| {
        let row = sqlx::query(sql.as_str())
            .bind(app_id.0)
            .bind(external_id)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    })
}

/// A user's devices, oldest registration first, at most `limit` after `after_key`.
pub async fn devices_of_user(
    db: &Db,
    app_id: AppId,
    user_id: &str,
    after_key: i64,
    limit: i64,
) -> Result<Vec<DeviceRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE app_id = $1 AND user_id = $2 AND device_key > $3 \
         ORDER BY device_key LIMIT $4"
    );
    on_db!(db, |pool| {
        let rows = sqlx::query(sql.as_str())
            .bind(app_id.0)
            .bind(user_id)
            .bind(after_key)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(from_row).collect()
    })
}

/// How many live devices a user has.
pub async fn count_of_user(db: &Db, app_id: AppId, user_id: &str) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE app_id = $1 AND user_id = $2")
            .bind(app_id.0)
            .bind(user_id)
            .fetch_one(pool)
            .await
    })
}
