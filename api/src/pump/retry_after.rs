//! `Retry-After` (RFC 9110, section 10.2.3): delta-seconds, or an HTTP-date.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long the header asks to wait, from `now`. A date in the past is no
/// wait; a number too large for a `u64` is the longest wait there is.
/// `None` if the value is neither form.
pub fn parse(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn seconds_and_dates_are_understood() {
        assert_eq!(parse("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 22 Nov 2026 10:01:30 GMT", now()),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse("Sun, 22 Nov 2026 09:00:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(
            parse("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn anything_else_is_not_a_wait() {
        for bad in ["", "-1", "1.5", "soon", "10s"] {
            assert_eq!(parse(bad, now()), None, "{bad:?}");
        }
    }
}
