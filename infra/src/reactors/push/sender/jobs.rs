//! The sender's work list (`notification_jobs`, fed by a projection):
//! claimed under a lease so that any number of nodes share it, each job
//! worked by one node at a time.

use chrono::{DateTime, Duration, Utc};
use projections::db::{Backend, Db};
use projections::{on_db, on_tx};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Job {
    pub notification_id: Uuid,
    pub app_id: Uuid,
    /// `launch` or `send`.
    pub stage: String,
    pub batch_size: Option<i64>,
    pub lease_token: Uuid,
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Claims up to `limit` due jobs.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
    node: Uuid,
) -> Result<Vec<Job>, sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let claimable = crate::runtime::nodes::claimable("lease_until", "lease_node");
    let sql = format!(
        "SELECT notification_id, app_id, stage, batch_size FROM notification_jobs \
         WHERE due_at <= $1 AND {claimable} ORDER BY due_at LIMIT $2{lock}"
    );
    let found: Vec<(Uuid, Uuid, String, Option<i64>)> = on_tx!(&mut tx, |c| {
        sqlx::query_as(&sql)
            .bind(micros(now))
            .bind(limit)
            .bind(node)
            .bind(crate::runtime::nodes::dead_before(now))
            .fetch_all(c)
            .await?
    });
    let until = micros(now) + lease.num_microseconds().unwrap_or(i64::MAX / 4);
    let mut jobs = Vec::with_capacity(found.len());
    for (notification_id, app_id, stage, batch_size) in found {
        let token = Uuid::now_v7();
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE notification_jobs SET lease_until = $2, lease_token = $3, lease_node = $4 WHERE notification_id = $1")
                .bind(notification_id)
                .bind(until)
                .bind(token)
                .bind(node)
                .execute(c)
                .await?;
        });
        jobs.push(Job {
            notification_id,
            app_id,
            stage,
            batch_size,
            lease_token: token,
        });
    }
    tx.commit().await?;
    Ok(jobs)
}

/// Extends a lease (a heartbeat); `false` when it is no longer ours.
pub async fn extend(db: &Db, job: &Job, until: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE notification_jobs SET lease_until = $3 WHERE notification_id = $1 AND lease_token = $2")
            .bind(job.notification_id)
            .bind(job.lease_token)
            .bind(micros(until))
            .execute(c)
            .await?
            .rows_affected()
    });
    tx.commit().await?;
    Ok(n > 0)
}

/// Lets the job go (another round may take it at once).
pub async fn release(db: &Db, job: &Job) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE notification_jobs SET lease_until = NULL, lease_token = NULL \
             WHERE notification_id = $1 AND lease_token = $2",
        )
        .bind(job.notification_id)
        .bind(job.lease_token)
        .execute(c)
        .await?;
    });
    tx.commit().await?;
    Ok(())
}

/// Drops a job that has nothing left to do.
pub async fn drop_job(db: &Db, job: &Job) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "DELETE FROM notification_jobs WHERE notification_id = $1 AND lease_token = $2",
        )
        .bind(job.notification_id)
        .bind(job.lease_token)
        .execute(c)
        .await?;
    });
    tx.commit().await?;
    Ok(())
}

/// When the next job comes due (a scheduled launch, or a lapsed lease).
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let due: Option<i64> = on_db!(db, |p| {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > due_at THEN lease_until ELSE due_at END) \
             FROM notification_jobs",
        )
        .fetch_one(p)
        .await?
    });
    Ok(due.and_then(DateTime::from_timestamp_micros))
}
