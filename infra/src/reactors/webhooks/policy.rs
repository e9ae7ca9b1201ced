//! How webhook delivery behaves: timeouts, the retry schedule, when an
//! endpoint is given up on. Pure; the worker applies it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::address::AddressPolicy;
use super::callbacks::{self, PublicUrl};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// A delivery succeeds with a 2xx within this time.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// An endpoint failing without a single success this long is disabled.
    pub disable_after: Duration,
    pub addresses: AddressPolicy,
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// How often to look for due work that no local event announced
    /// (another node's writes, retries coming due).
    pub poll_interval: Duration,
    /// Whether this process runs the delivery worker.
    pub deliver: bool,
    /// Where receivers reach this Herald: the origin of `{{callback.url}}`s
    /// (none: endpoints cannot use that placeholder).
    pub public_url: Option<PublicUrl>,
    /// How long a callback URL stays good after its message was last sent.
    pub callback_ttl: Duration,
    /// How long a finished message (and its attempts) is kept after its
    /// last change; `None`: for ever.
    pub retention: Option<Duration>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            addresses: AddressPolicy::default(),
            concurrency: 64,
            poll_interval: Duration::from_secs(1),
            deliver: true,
            public_url: None,
            callback_ttl: callbacks::DEFAULT_TTL,
            retention: Some(super::retention::DEFAULT_RETENTION),
        }
    }
}

impl WebhookConfig {
    /// How long a claimed delivery is reserved before another worker may
    /// take it over (the worker died): well past the request timeout.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(30)
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The wait after the 1st, 2nd, ... failure; one attempt more than delays.
    pub delays: Vec<Duration>,
    /// Each wait varies by up to this fraction either way.
    pub jitter: f64,
    /// `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: 8 attempts over ~27.6 h.
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        Self {
            delays: [5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(24 * h),
        }
    }
}

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The wait before the next attempt, after `failed` attempts have failed
    /// in this round, or `None` when none are left. `random` is uniform in
    /// [0, 1); a receiver's `Retry-After` may lengthen the wait, never
    /// shorten it.
    pub fn next_delay(
        &self,
        failed: u32,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        if failed == 0 || failed >= self.max_attempts() {
            return None;
        }
        let base = self.delays[(failed - 1) as usize];
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * random.clamp(0.0, 1.0);
        let jittered = base.mul_f64(factor.max(0.0));
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        })
    }
}

/// A schedule such as `5s,5m,30m,2h`: durations in s, m, h or d.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    let delays: Vec<Duration> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (number, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{s:?} is not a duration like 30s, 5m, 2h"))?;
            let seconds = match unit {
                "s" | "" => n,
                "m" => n.saturating_mul(60),
                "h" => n.saturating_mul(3600),
                "d" => n.saturating_mul(86_400),
                _ => return Err(format!("{s:?} is not a duration like 30s, 5m, 2h")),
            };
            Ok(Duration::from_secs(seconds))
        })
        .collect::<Result<_, String>>()?;
    if delays.is_empty() {
        return Err("name at least one wait".into());
    }
    Ok(delays)
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(raw: &str, now: DateTime<Utc>) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_27_6_hours_over_8_attempts() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 8);
        let total: Duration = (1..8).filter_map(|f| p.next_delay(f, None, 0.5)).sum();
        assert_eq!(
            total.as_secs(),
            5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000
        );
        assert!((total.as_secs_f64() / 3600.0 - 27.6).abs() < 0.05);
        assert_eq!(p.next_delay(8, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        let low = p.next_delay(2, None, 0.0).unwrap_or_default();
        let high = p.next_delay(2, None, 0.999_999).unwrap_or_default();
        assert_eq!(low.as_secs(), 240);
        assert!(high.as_secs() >= 359 && high.as_secs() <= 360, "{high:?}");
    }

    #[test]
    fn retry_after_lengthens_within_bounds() {
        let p = RetryPolicy::default();
        let asked = |s| p.next_delay(1, Some(Duration::from_secs(s)), 0.5);
        assert_eq!(asked(3600), Some(Duration::from_secs(3600)));
        assert_eq!(asked(1), Some(Duration::from_secs(5)));
        assert_eq!(asked(10 * 24 * 3600), Some(Duration::from_secs(24 * 3600)));
    }

    #[test]
    fn schedules_are_read_with_units() {
        let d = parse_schedule("5s, 5m,2h,1d,7").unwrap_or_default();
        let secs: Vec<u64> = d.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 300, 7200, 86_400, 7]);
        assert!(parse_schedule("5x").is_err() && parse_schedule("").is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
