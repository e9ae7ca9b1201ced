//! The delivery queue's bookkeeping: claiming due messages under a lease,
//! recording attempts, re-queuing. Operational state, not the log.
//!
//! A claim reserves a message until its lease runs out. A worker that dies
//! mid-delivery simply lets the lease lapse; the next claim takes the
//! message again, with the same id. Completing an attempt checks the lease
//! token, so a worker that overran its lease cannot overwrite the outcome of
//! the one that took over. On PostgreSQL the claim locks rows with
//! `FOR UPDATE SKIP LOCKED`, so any number of nodes share the queue.

use std::collections::hash_map::Entry;

use chrono::{DateTime, Duration, Utc};
use projections::db::{Backend, Db, Tx, insert_chunks, values_list};
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
    /// When the event was recorded (the message queued, for test messages).
    pub created_at: DateTime<Utc>,
    /// The trace the event was written in, continued by the delivery.
    pub trace_id: Option<String>,
    /// The message's own URL (rendered from its event), else the endpoint's.
    pub url: Option<String>,
}

/// The part of an event's metadata a delivery continues.
#[derive(serde::Deserialize)]
struct Traced {
    trace_id: Option<String>,
}

fn trace_of(metadata: Option<&str>) -> Option<String> {
    serde_json::from_str::<Traced>(metadata?).ok()?.trace_id
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
    i64,
    Option<String>,
    Option<String>,
);

/// Claims up to `limit` due messages of enabled endpoints: ordered
/// endpoints only their oldest pending message, rate-limited ones only what
/// fits their rate within the next second.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
    node: Uuid,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE OF m SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let claimable = crate::runtime::nodes::claimable("m.lease_until", "m.lease_node");
    let sql = format!(
        "SELECT m.endpoint_id, m.message_id, m.app_id, m.event_type, m.user_id, m.from_webhooks, \
         m.body, m.attempts, e.rate_limit, m.created_at, ev.metadata, m.url \
         FROM webhook_messages m JOIN webhook_endpoints e ON e.webhook_id = m.endpoint_id \
         LEFT JOIN events ev ON m.seq > 0 AND ev.position = m.seq \
         WHERE m.status = 'pending' AND m.next_attempt_at <= $1 \
         AND {claimable} AND e.enabled \
         AND (NOT e.ordered OR m.seq = 0 OR NOT EXISTS ( \
             SELECT 1 FROM webhook_messages p WHERE p.endpoint_id = m.endpoint_id \
             AND p.status = 'pending' AND p.seq > 0 AND p.seq < m.seq)) \
         ORDER BY m.next_attempt_at, m.seq LIMIT $2{lock}"
    );
    let candidates: Vec<Candidate> = on_tx!(&mut tx, |c| {
        sqlx::query_as(&sql)
            .bind(micros(now))
            .bind(limit)
            .bind(node)
            .bind(crate::runtime::nodes::dead_before(now))
            .fetch_all(c)
            .await?
    });
    let mut slots = RateSlots::default();
    let mut claimed = Vec::with_capacity(candidates.len());
    let token = Uuid::now_v7();
    let lease = lease.num_microseconds().unwrap_or(i64::MAX / 4);
    for (
        endpoint_id,
        message_id,
        app_id,
        event_type,
        user_id,
        from_webhooks,
        body,
        attempts,
        rate,
        created_at,
        metadata,
        url,
    ) in candidates
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
            created_at: at(created_at),
            trace_id: trace_of(metadata.as_deref()),
            url,
        });
    }
    // One statement leases them all; a rate-limited message's lease runs
    // from its send slot.
    for chunk in claimed.chunks(200) {
        let mut sql = String::from(
            "UPDATE webhook_messages SET lease_token = $1, attempts = attempts + 1, updated_at = $2, \
             lease_node = $4, lease_until = $3 + CASE ",
        );
        let mut params = 4;
        for _ in chunk {
            sql.push_str(&format!(
                "WHEN endpoint_id = ${} AND message_id = ${} THEN ${} ",
                params + 1,
                params + 2,
                params + 3
            ));
            params += 3;
        }
        // Equalities joined by OR, which both databases answer from the
        // primary key (a row-value IN list is a full scan on SQLite).
        sql.push_str("ELSE 0 END WHERE ");
        let mut p = 4;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str(&format!(
                "(endpoint_id = ${} AND message_id = ${})",
                p + 1,
                p + 2
            ));
            p += 3;
        }
        on_tx!(&mut tx, |c| {
            let mut query = sqlx::query(sql.as_str())
                .bind(token)
                .bind(micros(now))
                .bind(micros(now).saturating_add(lease))
                .bind(node);
            for m in chunk {
                query = query
                    .bind(m.endpoint_id)
                    .bind(m.message_id)
                    .bind(micros(m.send_at) - micros(now));
            }
            query.execute(c).await?;
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
        let tat = match self.tat.entry(endpoint_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                let lock = match tx.backend() {
                    Backend::Postgres => " FOR UPDATE",
                    Backend::Sqlite => "",
                };
                let sql =
                    format!("SELECT tat FROM webhook_endpoint_state WHERE endpoint_id = $1{lock}");
                let stored: Option<i64> = on_tx!(tx, |c| {
                    sqlx::query_scalar(&sql)
                        .bind(endpoint_id)
                        .fetch_optional(c)
                        .await?
                });
                slot.insert(stored.unwrap_or(0))
            }
        };
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
    Done {
        failing_since: Option<DateTime<Utc>>,
    },
    /// Another worker took the message over (or it was deleted): nothing written.
    LeaseLost,
}

/// Records attempts and moves their messages on, each only if its lease is
/// still ours, all in one transaction (one commit for a whole batch of
/// deliveries). Answers in the order given.
pub async fn complete(
    db: &Db,
    done: &[(&Claimed, &Outcome)],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut tx = db.begin_relaxed().await?;
    let mut recorded = Vec::with_capacity(done.len());
    for (message, outcome) in done {
        let status = match (outcome.succeeded, outcome.next_attempt_at) {
            (true, _) => "succeeded",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
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
            .execute(c)
            .await?
            .rows_affected()
        });
        recorded.push(if updated == 0 {
            Recorded::LeaseLost
        } else {
            Recorded::Done {
                failing_since: None,
            }
        });
    }
    let kept: Vec<&(&Claimed, &Outcome)> = done
        .iter()
        .zip(&recorded)
        .filter(|(_, r)| **r != Recorded::LeaseLost)
        .map(|(d, _)| d)
        .collect();
    insert_attempts(&mut tx, &kept).await?;
    // Each endpoint's failure streak, by its last outcome in the batch.
    let mut last: Vec<(Uuid, bool, i64)> = Vec::new();
    for (message, outcome) in &kept {
        let entry = (
            message.endpoint_id,
            outcome.succeeded,
            micros(outcome.started_at),
        );
        match last.iter_mut().find(|(e, ..)| *e == message.endpoint_id) {
            Some(slot) => *slot = entry,
            None => last.push(entry),
        }
    }
    let mut streaks = std::collections::HashMap::new();
    for (endpoint_id, succeeded, started) in last {
        if succeeded {
            on_tx!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE webhook_endpoint_state SET failing_since = NULL WHERE endpoint_id = $1",
                )
                .bind(endpoint_id)
                .execute(c)
                .await?;
            });
        } else {
            let since: Option<i64> = on_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                    "INSERT INTO webhook_endpoint_state (endpoint_id, tat, failing_since) VALUES ($1, 0, $2) \
                     ON CONFLICT (endpoint_id) DO UPDATE \
                     SET failing_since = COALESCE(webhook_endpoint_state.failing_since, excluded.failing_since) \
                     RETURNING failing_since",
                )
                .bind(endpoint_id)
                .bind(started)
                .fetch_one(c)
                .await?
            });
            streaks.insert(endpoint_id, since);
        }
    }
    tx.commit().await?;
    for ((message, outcome), r) in done.iter().zip(recorded.iter_mut()) {
        if let Recorded::Done { failing_since } = r
            && !outcome.succeeded
        {
            *failing_since = streaks.get(&message.endpoint_id).copied().flatten().map(at);
        }
    }
    Ok(recorded)
}

/// Inserts attempt records, in statements small enough for PostgreSQL.
async fn insert_attempts(tx: &mut Tx, done: &[&(&Claimed, &Outcome)]) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 11;
    let backend = tx.backend();
    for chunk in insert_chunks(backend, done, COLUMNS) {
        let sql = format!(
            "INSERT INTO webhook_attempts (attempt_id, endpoint_id, message_id, attempt, started_at, \
             duration_ms, status_code, response_body, error, outcome, next_attempt_at) VALUES {}",
            values_list(backend, chunk.len(), COLUMNS, "")
        );
        on_tx!(tx, |c| {
            let mut query = sqlx::query(sql.as_str());
            for (message, outcome) in chunk.iter().map(|d| **d) {
                query = query
                    .bind(Uuid::now_v7())
                    .bind(message.endpoint_id)
                    .bind(message.message_id)
                    .bind(message.attempt)
                    .bind(micros(outcome.started_at))
                    .bind(outcome.duration_ms)
                    .bind(outcome.status_code.map(i32::from))
                    .bind(outcome.response_body.as_deref())
                    .bind(outcome.error.as_deref())
                    .bind(if outcome.succeeded {
                        "succeeded"
                    } else {
                        "failed"
                    })
                    .bind(outcome.next_attempt_at.map(micros));
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}

/// The earliest instant at which a pending message of an enabled endpoint
/// may be claimed: its retry time, or the end of a lapsed worker's lease.
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let (due, lease): (Option<i64>, Option<i64>) = on_db!(db, |p| {
        let due = sqlx::query_scalar(
            "SELECT m.next_attempt_at FROM webhook_messages m \
             JOIN webhook_endpoints e ON e.webhook_id = m.endpoint_id \
             WHERE m.status = 'pending' AND m.lease_until IS NULL AND e.enabled \
             ORDER BY m.next_attempt_at LIMIT 1",
        )
        .fetch_optional(p)
        .await?;
        let lease = sqlx::query_scalar(
            "SELECT lease_until FROM webhook_messages WHERE lease_until IS NOT NULL \
             ORDER BY lease_until LIMIT 1",
        )
        .fetch_optional(p)
        .await?;
        (due, lease)
    });
    Ok(match (due, lease) {
        (Some(a), Some(b)) => Some(at(a.min(b))),
        (a, b) => a.or(b).map(at),
    })
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
