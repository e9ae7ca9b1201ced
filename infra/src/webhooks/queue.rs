//! The delivery queue's bookkeeping: claiming due messages under a lease,
//! recording attempts, re-queuing. Operational state, not the log.
//!
//! A claim reserves a message until its lease runs out. A worker that dies
//! mid-delivery simply lets the lease lapse; the next claim takes the
//! message again, with the same id. Completing an attempt checks the lease
//! token, so a worker that overran its lease cannot overwrite the outcome of
//! the one that took over. On PostgreSQL the claim locks rows with
//! `FOR UPDATE SKIP LOCKED`, so any number of nodes share the queue.

use chrono::{DateTime, Duration, Utc};
use projections::db::{Backend, Db, Tx};
use projections::{on_db, on_tx};
use uuid::Uuid;

/// Messages claimed per round.
pub const CLAIM_BATCH: i64 = 64;

/// How far ahead a rate-limited endpoint's send slots may be reserved.
const RATE_HORIZON_MICROS: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct Claimed {
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub app_id: Uuid,
    pub event_type: String,
    pub user_id: Option<String>,
    pub from_webhooks: bool,
    pub body: String,
    /// This attempt's number in the current round (1-based).
    pub attempt: i32,
    pub lease_token: Uuid,
    /// Not before this instant (the endpoint's rate limit).
    pub send_at: DateTime<Utc>,
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

type Candidate = (
    Uuid,
    Uuid,
    Uuid,
    String,
    Option<String>,
    bool,
    String,
    i32,
    Option<i64>,
);

/// Claims up to `limit` due messages of enabled endpoints: ordered
/// endpoints only their oldest pending message, rate-limited ones only what
/// fits their rate within the next second.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE OF m SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT m.endpoint_id, m.message_id, m.app_id, m.event_type, m.user_id, m.from_webhooks, \
         m.body, m.attempts, e.rate_limit \
         FROM webhook_messages m JOIN webhook_endpoints e ON e.webhook_id = m.endpoint_id \
         WHERE m.status = 'pending' AND m.next_attempt_at <= $1 \
         AND (m.lease_until IS NULL OR m.lease_until <= $1) AND e.enabled \
         AND (NOT e.ordered OR m.seq = 0 OR NOT EXISTS ( \
             SELECT 1 FROM webhook_messages p WHERE p.endpoint_id = m.endpoint_id \
             AND p.status = 'pending' AND p.seq > 0 AND p.seq < m.seq)) \
         ORDER BY m.next_attempt_at, m.seq LIMIT $2{lock}"
    );
    let candidates: Vec<Candidate> = on_tx!(&mut tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(micros(now))
            .bind(limit)
            .fetch_all(c)
            .await?
    });
    let mut slots = RateSlots::default();
    let mut claimed = Vec::with_capacity(candidates.len());
    for (endpoint_id, message_id, app_id, event_type, user_id, from_webhooks, body, attempts, rate) in
        candidates
    {
        let send_at = match rate {
            Some(rate) if rate > 0 => {
                match slots.take(&mut tx, endpoint_id, rate, micros(now)).await? {
                    Ok(slot) => slot,
                    Err(next_free) => {
                        // Not this round: out of the way of other endpoints'
                        // messages until the endpoint has a slot again.
                        on_tx!(&mut tx, |c| {
                            sqlx::query(
                                "UPDATE webhook_messages SET next_attempt_at = $3 \
                                 WHERE endpoint_id = $1 AND message_id = $2",
                            )
                            .bind(endpoint_id)
                            .bind(message_id)
                            .bind(next_free)
                            .execute(c)
                            .await?;
                        });
                        continue;
                    }
                }
            }
            _ => micros(now),
        };
        let token = Uuid::now_v7();
        let lease_until = send_at + lease.num_microseconds().unwrap_or(i64::MAX / 4);
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE webhook_messages SET lease_until = $3, lease_token = $4, attempts = attempts + 1, \
                 updated_at = $5 WHERE endpoint_id = $1 AND message_id = $2",
            )
            .bind(endpoint_id)
            .bind(message_id)
            .bind(lease_until)
            .bind(token)
            .bind(micros(now))
            .execute(c)
            .await?;
        });
        claimed.push(Claimed {
            endpoint_id,
            message_id,
            app_id,
            event_type,
            user_id,
            from_webhooks,
            body,
            attempt: attempts + 1,
            lease_token: token,
            send_at: at(send_at),
        });
    }
    slots.save(&mut tx).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Send slots of rate-limited endpoints (a GCRA: each endpoint's
/// theoretical arrival time moves 1/rate per message), read and written in
/// the claim's transaction so that nodes share one limit.
#[derive(Default)]
struct RateSlots {
    /// endpoint -> next free slot (µs). `take` answers `Ok(slot)`, or
    /// `Err(next free slot)` when that is beyond the horizon.
    tat: std::collections::HashMap<Uuid, i64>,
}

impl RateSlots {
    async fn take(
        &mut self,
        tx: &mut Tx,
        endpoint_id: Uuid,
        rate: i64,
        now: i64,
    ) -> Result<Result<i64, i64>, sqlx::Error> {
        if !self.tat.contains_key(&endpoint_id) {
            let lock = match tx.backend() {
                Backend::Postgres => " FOR UPDATE",
                Backend::Sqlite => "",
            };
            let sql = format!("SELECT tat FROM webhook_endpoint_state WHERE endpoint_id = $1{lock}");
            let stored: Option<i64> = on_tx!(tx, |c| {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(endpoint_id)
                    .fetch_optional(c)
                    .await?
            });
            self.tat.insert(endpoint_id, stored.unwrap_or(0));
        }
        let tat = self.tat.entry(endpoint_id).or_insert(0);
        let slot = (*tat).max(now);
        if slot > now + RATE_HORIZON_MICROS {
            return Ok(Err(slot));
        }
        *tat = slot + 1_000_000 / rate;
        Ok(Ok(slot))
    }

    async fn save(self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        for (endpoint_id, tat) in self.tat {
            on_tx!(tx, |c| {
                sqlx::query(
                    "INSERT INTO webhook_endpoint_state (endpoint_id, tat, failing_since) VALUES ($1, $2, NULL) \
                     ON CONFLICT (endpoint_id) DO UPDATE SET tat = excluded.tat",
                )
                .bind(endpoint_id)
                .bind(tat)
                .execute(c)
                .await?;
            });
        }
        Ok(())
    }
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub succeeded: bool,
    /// When to try again; `None` after a success or the last attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What recording an outcome found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; after a failure, since when the endpoint has been failing.
    Done { failing_since: Option<DateTime<Utc>> },
    /// Another worker took the message over (or it was deleted): nothing written.
    LeaseLost,
}

/// Records an attempt and moves the message on, if the lease is still ours.
pub async fn complete(
    db: &Db,
    message: &Claimed,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<Recorded, sqlx::Error> {
    let status = match (outcome.succeeded, outcome.next_attempt_at) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let mut tx = db.begin().await?;
    let updated = on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE webhook_messages SET status = $4, next_attempt_at = $5, lease_until = NULL, \
             lease_token = NULL, updated_at = $6 \
             WHERE endpoint_id = $1 AND message_id = $2 AND lease_token = $3",
        )
        .bind(message.endpoint_id)
        .bind(message.message_id)
        .bind(message.lease_token)
        .bind(status)
        .bind(outcome.next_attempt_at.map_or(0, micros))
        .bind(micros(now))
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    if updated == 0 {
        return Ok(Recorded::LeaseLost);
    }
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "INSERT INTO webhook_attempts (attempt_id, endpoint_id, message_id, attempt, started_at, \
             duration_ms, status_code, response_body, error, outcome, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::now_v7())
        .bind(message.endpoint_id)
        .bind(message.message_id)
        .bind(message.attempt)
        .bind(micros(outcome.started_at))
        .bind(outcome.duration_ms)
        .bind(outcome.status_code.map(i32::from))
        .bind(outcome.response_body.as_deref())
        .bind(outcome.error.as_deref())
        .bind(if outcome.succeeded { "succeeded" } else { "failed" })
        .bind(outcome.next_attempt_at.map(micros))
        .execute(&mut *c)
        .await?;
    });
    let failing_since: Option<i64> = if outcome.succeeded {
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE webhook_endpoint_state SET failing_since = NULL WHERE endpoint_id = $1")
                .bind(message.endpoint_id)
                .execute(c)
                .await?;
        });
        None
    } else {
        on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO webhook_endpoint_state (endpoint_id, tat, failing_since) VALUES ($1, 0, $2) \
                 ON CONFLICT (endpoint_id) DO UPDATE \
                 SET failing_since = COALESCE(webhook_endpoint_state.failing_since, excluded.failing_since) \
                 RETURNING failing_since",
            )
            .bind(message.endpoint_id)
            .bind(micros(outcome.started_at))
            .fetch_one(c)
            .await?
        })
    };
    tx.commit().await?;
    Ok(Recorded::Done {
        failing_since: failing_since.map(at),
    })
}

/// The earliest instant at which a pending message of an enabled endpoint
/// may be claimed (its retry time, or its lease's end).
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let due: Option<i64> = on_db!(db, |p| {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN m.lease_until IS NOT NULL AND m.lease_until > m.next_attempt_at \
             THEN m.lease_until ELSE m.next_attempt_at END) \
             FROM webhook_messages m JOIN webhook_endpoints e ON e.webhook_id = m.endpoint_id \
             WHERE m.status = 'pending' AND e.enabled",
        )
        .fetch_one(p)
        .await?
    });
    Ok(due.map(at))
}

/// Puts one message of an endpoint back in the queue for a new round.
/// Returns whether the message exists.
pub async fn resend(
    db: &Db,
    endpoint_id: Uuid,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = $3, \
             lease_until = NULL, lease_token = NULL, updated_at = $3 \
             WHERE endpoint_id = $1 AND message_id = $2",
        )
        .bind(endpoint_id)
        .bind(message_id)
        .bind(micros(now))
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(n > 0)
}

/// Re-queues the endpoint's failed messages created in `[since, until)`.
/// Returns how many.
pub async fn recover(
    db: &Db,
    endpoint_id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = $4, \
             lease_until = NULL, lease_token = NULL, updated_at = $4 \
             WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3",
        )
        .bind(endpoint_id)
        .bind(micros(since))
        .bind(micros(until))
        .bind(micros(now))
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(n)
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt_id: Uuid,
    pub message_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

type AttemptRow = (
    Uuid,
    Uuid,
    i32,
    i64,
    i64,
    Option<i32>,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
);

/// An endpoint's attempts, newest first, before the `before` attempt id.
pub async fn attempts(
    db: &Db,
    endpoint_id: Uuid,
    outcome: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AttemptRecord>, sqlx::Error> {
    let rows: Vec<AttemptRow> = on_db!(db, |p| {
        sqlx::query_as(
            "SELECT attempt_id, message_id, attempt, started_at, duration_ms, status_code, \
             response_body, error, outcome, next_attempt_at FROM webhook_attempts \
             WHERE endpoint_id = $1 AND ($2 IS NULL OR outcome = $2) AND attempt_id < $3 \
             ORDER BY attempt_id DESC LIMIT $4",
        )
        .bind(endpoint_id)
        .bind(outcome)
        .bind(before.unwrap_or(Uuid::max()))
        .bind(limit)
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(id, message_id, attempt, started, duration, code, body, error, outcome, next)| {
                AttemptRecord {
                    attempt_id: id,
                    message_id,
                    attempt,
                    started_at: at(started),
                    duration_ms: duration,
                    status_code: code,
                    response_body: body,
                    error,
                    outcome,
                    next_attempt_at: next.map(at),
                }
            },
        )
        .collect())
}
