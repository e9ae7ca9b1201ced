//! The instruments the running parts update as they work: counters,
//! counters with a few fixed labels, and histograms with fixed buckets.
//! Lock-free where it matters (a request or a send updates a handful of
//! atomics); labelled counters take a short mutex.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts by `N` label values (each from a small fixed set: a provider, an
/// outcome class), e.g. `["fcm", "delivered"]`.
#[derive(Debug)]
pub struct CounterVec<const N: usize> {
    labels: [&'static str; N],
    counts: Mutex<BTreeMap<[&'static str; N], u64>>,
}

impl<const N: usize> CounterVec<N> {
    pub fn new(labels: [&'static str; N]) -> Self {
        Self {
            labels,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn add(&self, values: [&'static str; N], n: u64) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(values).or_default() += n;
        }
    }

    pub fn inc(&self, values: [&'static str; N]) {
        self.add(values, 1);
    }

    pub fn label_names(&self) -> &[&'static str; N] {
        &self.labels
    }

    /// Every label combination seen so far, with its count.
    pub fn snapshot(&self) -> Vec<([&'static str; N], u64)> {
        self.counts
            .lock()
            .map(|c| c.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// Upper bounds of histogram buckets, in seconds.
pub type Buckets = &'static [f64];

/// A request's or an append's duration: 1 ms to 10 s.
pub const LATENCY: Buckets = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// From an event to its delivery: 10 ms to an hour (retries included).
pub const DELIVERY: Buckets = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Observations of a duration, counted into fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: Buckets,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The sum in nanoseconds.
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment, cumulative as exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations at or under it)`, then `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: Buckets) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        self.observe_n(value, 1);
    }

    /// `n` observations of the same value (a batch of sends).
    pub fn observe_n(&self, value: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(n, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(10));
        h.observe(Duration::from_millis(50));
        h.observe_n(Duration::from_secs(3), 2);
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(0.01, 1), (0.1, 2), (f64::INFINITY, 4)],
            "{s:?}"
        );
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 6.06).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn counter_vec_counts_each_label_combination() {
        let c = CounterVec::new(["provider", "outcome"]);
        c.inc(["fcm", "delivered"]);
        c.add(["fcm", "delivered"], 2);
        c.inc(["apns", "invalid_token"]);
        assert_eq!(
            c.snapshot(),
            vec![(["apns", "invalid_token"], 1), (["fcm", "delivered"], 3)]
        );
    }
}
