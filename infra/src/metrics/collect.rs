//! The scrape: live instruments as they stand, and gauges read now from
//! the running parts and the database. A gauge whose query fails is left
//! out of this scrape (and `herald_database_up` says why); the rest is
//! still answered.

use projections::db::Db;
use projections::on_db;

use super::text::{Exposition, Kind};
use super::{AppendMetrics, PushMetrics, WebhookMetrics};
use crate::runtime::status::ProjectionStatus;

/// A reactor as the scrape sees it.
pub struct ReactorView<'a> {
    pub name: &'static str,
    /// Items being worked on by this node now.
    pub in_flight: usize,
    /// Delivery latency, event to outcome.
    pub latency: &'a super::instruments::Histogram,
}

/// What one scrape reads.
pub struct Sources<'a> {
    pub db: &'a Db,
    pub database_up: bool,
    pub head: Option<i64>,
    /// Every projection's standing (`None`: the database did not answer).
    pub projections: Option<Vec<(ProjectionStatus, bool)>>,
    pub appends: &'a AppendMetrics,
    pub webhooks: &'a WebhookMetrics,
    pub push: &'a PushMetrics,
    pub reactors: Vec<ReactorView<'a>>,
    /// Microseconds since the epoch, on Herald's clock.
    pub now_micros: i64,
}

pub async fn render(s: Sources<'_>, out: &mut Exposition) {
    out.family(
        "herald_build_info",
        Kind::Gauge,
        "Always 1; the version of this build.",
    );
    out.sample(
        "herald_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out.single(
        "herald_database_up",
        Kind::Gauge,
        "1 when the database answers this node's probe, else 0.",
        if s.database_up { 1.0 } else { 0.0 },
    );
    log(&s, out);
    if let Some(projections) = &s.projections {
        projection_gauges(projections, out);
    }
    reactors(&s, out).await;
    change_queues(s.db, out).await;
    pools(s.db, out);
}

fn log(s: &Sources<'_>, out: &mut Exposition) {
    if let Some(head) = s.head {
        out.single(
            "herald_log_head_position",
            Kind::Gauge,
            "The last committed position of the log.",
            head as f64,
        );
    }
    let a = s.appends;
    let counters = [
        (
            "herald_appends_total",
            "Append requests answered by this node's appender.",
            &a.requests,
        ),
        (
            "herald_appended_events_total",
            "Events written to the log by this node.",
            &a.events,
        ),
        (
            "herald_append_refusals_total",
            "Append requests refused (version conflicts, invalid) or failed.",
            &a.refused,
        ),
        (
            "herald_append_batches_total",
            "Group-commit transactions committed.",
            &a.batches,
        ),
    ];
    for (name, help, counter) in counters {
        out.single(name, Kind::Counter, help, counter.get() as f64);
    }
    out.family(
        "herald_append_duration_seconds",
        Kind::Histogram,
        "From an append being queued to its answer.",
    );
    out.histogram(
        "herald_append_duration_seconds",
        &[],
        &a.duration.snapshot(),
    );
}

fn projection_gauges(projections: &[(ProjectionStatus, bool)], out: &mut Exposition) {
    type Value = fn(&ProjectionStatus, bool) -> f64;
    let families: [(&str, &str, Value); 5] = [
        (
            "herald_projection_checkpoint",
            "The last log position the projection applied.",
            |p, _| p.position as f64,
        ),
        (
            "herald_projection_lag_events",
            "Events in the log the projection has not applied yet.",
            |p, _| p.lag_events as f64,
        ),
        (
            "herald_projection_lag_seconds",
            "Age of the oldest event the projection has not applied (0 when caught up).",
            |p, _| p.lag_seconds,
        ),
        (
            "herald_projection_faults",
            "Apps the projection is stopped for (an event it cannot apply).",
            |p, _| p.faults.len() as f64,
        ),
        (
            "herald_projection_stalled",
            "1 while the projection is stalled as a whole on this node (retried with back-off).",
            |_, stalled| if stalled { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, value) in families {
        out.family(name, Kind::Gauge, help);
        for (p, stalled) in projections {
            let kind = match p.kind {
                crate::runtime::Kind::ReadModel => "read_model",
                crate::runtime::Kind::ReactorFeed => "reactor_feed",
            };
            out.sample(
                name,
                &[("projection", p.name), ("kind", kind)],
                value(p, *stalled),
            );
        }
    }
}

async fn reactors(s: &Sources<'_>, out: &mut Exposition) {
    out.family(
        "herald_reactor_in_flight",
        Kind::Gauge,
        "Work items this node's reactor is handling now.",
    );
    for r in &s.reactors {
        out.sample(
            "herald_reactor_in_flight",
            &[("reactor", r.name)],
            r.in_flight as f64,
        );
    }
    out.family(
        "herald_reactor_delivery_latency_seconds",
        Kind::Histogram,
        "From the event to the outcome of the delivery it caused (webhooks: final outcome; push: each message).",
    );
    for r in &s.reactors {
        out.histogram(
            "herald_reactor_delivery_latency_seconds",
            &[("reactor", r.name)],
            &r.latency.snapshot(),
        );
    }
    out.counter_vec(
        "herald_webhook_deliveries_total",
        "Webhook delivery attempts by outcome: delivered, retried, failed (for good), disabled (the endpoint).",
        &s.webhooks.outcomes,
    );
    out.counter_vec(
        "herald_push_sends_total",
        "Push sends by provider and outcome: delivered, invalid_token, error (per message, final), retryable (per attempt retried).",
        &s.push.outcomes,
    );
    match backlog(s.db).await {
        Ok(b) => {
            out.family(
                "herald_reactor_backlog",
                Kind::Gauge,
                "Work waiting for a reactor, across nodes (webhooks: messages pending; push: notifications to launch or send).",
            );
            out.sample(
                "herald_reactor_backlog",
                &[("reactor", "webhooks")],
                b.webhooks as f64,
            );
            out.sample(
                "herald_reactor_backlog",
                &[("reactor", "push")],
                b.push as f64,
            );
            out.single(
                "herald_webhook_paused_messages",
                Kind::Gauge,
                "Webhook messages held while their endpoint is disabled.",
                b.paused as f64,
            );
            let oldest = b
                .oldest_pending
                .map_or(0.0, |at| ((s.now_micros - at).max(0) as f64) / 1e6);
            out.single(
                "herald_webhook_backlog_oldest_seconds",
                Kind::Gauge,
                "Age of the oldest webhook message still pending (0 when none).",
                oldest,
            );
        }
        Err(e) => tracing::debug!(error = %e, "metrics: cannot read the reactor backlog"),
    }
}

struct Backlog {
    webhooks: i64,
    paused: i64,
    oldest_pending: Option<i64>,
    push: i64,
}

async fn backlog(db: &Db) -> Result<Backlog, sqlx::Error> {
    let messages: Vec<(String, i64, Option<i64>)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT status, COUNT(*), MIN(created_at) FROM webhook_messages \
             WHERE status IN ('pending', 'paused') GROUP BY status",
        )
        .fetch_all(pool)
        .await?
    });
    let push: i64 = on_db!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM notification_jobs")
            .fetch_one(pool)
            .await?
    });
    let of = |status: &str| messages.iter().find(|(s, _, _)| s == status);
    Ok(Backlog {
        webhooks: of("pending").map_or(0, |(_, n, _)| *n),
        paused: of("paused").map_or(0, |(_, n, _)| *n),
        oldest_pending: of("pending").and_then(|(_, _, at)| *at),
        push,
    })
}

async fn change_queues(db: &Db, out: &mut Exposition) {
    let read: Result<(i64, i64, i64), sqlx::Error> = async {
        Ok(on_db!(db, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(depth), 0) AS BIGINT), COALESCE(MAX(depth), 0) \
                 FROM change_queues",
            )
            .fetch_one(pool)
            .await?
        }))
    }
    .await;
    match read {
        Ok((queues, depth, deepest)) => {
            out.single(
                "herald_change_queues",
                Kind::Gauge,
                "Change queues, across apps.",
                queues as f64,
            );
            out.single(
                "herald_change_queue_depth",
                Kind::Gauge,
                "Changes waiting to be drained, all queues together.",
                depth as f64,
            );
            out.single(
                "herald_change_queue_depth_max",
                Kind::Gauge,
                "Changes waiting in the deepest single queue.",
                deepest as f64,
            );
        }
        Err(e) => tracing::debug!(error = %e, "metrics: cannot read change-queue depth"),
    }
}

fn pools(db: &Db, out: &mut Exposition) {
    let mut rows: Vec<(&str, u32, usize, u32)> = Vec::new();
    match db {
        Db::Sqlite(s) => {
            for (name, pool) in [
                ("sqlite_writer", &s.writer),
                ("sqlite_relaxed", &s.relaxed),
                ("sqlite_reader", &s.reader),
            ] {
                rows.push((
                    name,
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                ));
            }
        }
        Db::Postgres(p) => rows.push((
            "postgres",
            p.pool.size(),
            p.pool.num_idle(),
            p.pool.options().get_max_connections(),
        )),
    }
    out.family(
        "herald_db_pool_connections",
        Kind::Gauge,
        "Open database connections by pool and state (in_use, idle).",
    );
    for (name, size, idle, _) in &rows {
        let idle = u32::try_from(*idle).unwrap_or(u32::MAX);
        out.sample(
            "herald_db_pool_connections",
            &[("pool", name), ("state", "in_use")],
            f64::from(size.saturating_sub(idle)),
        );
        out.sample(
            "herald_db_pool_connections",
            &[("pool", name), ("state", "idle")],
            f64::from(idle),
        );
    }
    out.family(
        "herald_db_pool_max_connections",
        Kind::Gauge,
        "The most connections each pool opens.",
    );
    for (name, _, _, max) in &rows {
        out.sample(
            "herald_db_pool_max_connections",
            &[("pool", name)],
            f64::from(*max),
        );
    }
}
