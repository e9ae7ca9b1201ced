//! What a Prometheus scrape of `/metrics` reads.
//!
//! Two sources. The running parts keep their own live instruments and
//! update them as they work: the appender ([`AppendMetrics`]), the webhook
//! reactor ([`WebhookMetrics`]), the push sender ([`PushMetrics`]) and, in
//! the API crate, the HTTP layer. Everything else is a gauge read when the
//! scrape comes ([`collect`]): each read model's checkpoint and lag, the
//! reactors' backlog and in-flight work, change-queue depth and the
//! database pools. Counters are this process's (they start at 0 when it
//! starts, as Prometheus expects); gauges read from the database are the
//! same on every node.
//!
//! Names follow Prometheus conventions: `herald_` prefix, `_total` for
//! counters, base units (`_seconds`). `docs/operating.md` lists them all,
//! with example alerts.

pub mod collect;
pub mod instruments;
pub mod text;

use self::instruments::{Counter, CounterVec, DELIVERY, Histogram, LATENCY};

/// The log's appends, as the appender sees them.
#[derive(Debug)]
pub struct AppendMetrics {
    /// Append requests answered (written, replayed or refused).
    pub requests: Counter,
    /// Events written.
    pub events: Counter,
    /// Append requests refused (a version conflict, invalid) or failed.
    pub refused: Counter,
    /// Transactions committed (one per group-commit batch).
    pub batches: Counter,
    /// From an append being queued to its answer.
    pub duration: Histogram,
}

impl Default for AppendMetrics {
    fn default() -> Self {
        Self {
            requests: Counter::default(),
            events: Counter::default(),
            refused: Counter::default(),
            batches: Counter::default(),
            duration: Histogram::new(LATENCY),
        }
    }
}

/// Webhook deliveries' outcomes.
#[derive(Debug)]
pub struct WebhookMetrics {
    /// By `outcome`: `delivered`, `retried` (failed, tried again later),
    /// `failed` (failed for good), `disabled` (the endpoint was disabled).
    pub outcomes: CounterVec<1>,
    /// From the event to a final outcome (delivered or failed), retries
    /// included.
    pub latency: Histogram,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            outcomes: CounterVec::new(["outcome"]),
            latency: Histogram::new(DELIVERY),
        }
    }
}

/// Push sends' outcomes.
#[derive(Debug)]
pub struct PushMetrics {
    /// By `provider` (`fcm`, `apns`, `webpush`, `log`) and `outcome`:
    /// `delivered`, `invalid_token`, `error` (failed for good: refused,
    /// misconfigured, or out of retries) once per message, and `retryable`
    /// once per attempt the provider asked to retry and that was retried.
    pub outcomes: CounterVec<2>,
    /// From the notification's launch to each message's outcome.
    pub latency: Histogram,
}

impl Default for PushMetrics {
    fn default() -> Self {
        Self {
            outcomes: CounterVec::new(["provider", "outcome"]),
            latency: Histogram::new(DELIVERY),
        }
    }
}
