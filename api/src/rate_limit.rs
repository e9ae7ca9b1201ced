//! API rate limits per key: GCRA (a token bucket kept as one timestamp per
//! key) at `HERALD_API_RATE_LIMIT` requests per second with a burst of the
//! same size, or the app's own limit (`PATCH /v1/apps/{id}`
//! `{"rate_limit_per_second": n}`). Every answer to an app key carries
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds
//! until the bucket is full again); over the limit: 429, problem+json,
//! `Retry-After`. The root token is not limited.
//!
//! The buckets live in the node's memory: with N nodes behind a balancer a
//! key may make up to N times the limit (documented in docs/operating.md).
//! An app's own limit is re-read from its read model at most every
//! [`OVERRIDE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::ids::{ApiKeyId, AppId};
use infra::auth::Principal;
use infra::clock::Clock;

use crate::caller::resolve;
use crate::error::ApiError;
use crate::state::AppState;

/// How long an app's own limit is used before it is read again.
pub const OVERRIDE_TTL: chrono::Duration = chrono::Duration::seconds(5);

/// The outcome of taking one request from a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// When refused: seconds until one request is allowed.
    pub retry_after_seconds: u64,
}

/// GCRA buckets by key: the theoretical arrival time of the next request.
#[derive(Default)]
pub struct Buckets {
    tat: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
}

impl Buckets {
    /// Takes one request for `key` at `now` under `limit` per second (burst
    /// `limit`).
    pub fn take(&self, key: ApiKeyId, limit: u32, now: DateTime<Utc>) -> Decision {
        let interval = 1_000_000 / i64::from(limit.max(1));
        let burst = interval * i64::from(limit.max(1));
        let Ok(mut tats) = self.tat.lock() else {
            return Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_seconds: 0,
                retry_after_seconds: 0,
            };
        };
        let tat = tats.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + chrono::Duration::microseconds(interval);
        let ahead = (next - now).num_microseconds().unwrap_or(i64::MAX);
        let seconds_up = |us: i64| u64::try_from((us + 999_999) / 1_000_000).unwrap_or(0);
        if ahead > burst {
            let held = (tat - now).num_microseconds().unwrap_or(0);
            return Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_seconds: seconds_up(held),
                retry_after_seconds: seconds_up(ahead - burst).max(1),
            };
        }
        tats.insert(key, next);
        let remaining = u32::try_from((burst - ahead) / interval).unwrap_or(0);
        Decision {
            allowed: true,
            limit,
            remaining,
            reset_seconds: seconds_up(ahead),
            retry_after_seconds: 0,
        }
    }
}

/// An app's own limit as last read, and when.
type Cached = (Option<u32>, DateTime<Utc>);

/// The limits: the node's default, the apps' own, the buckets.
pub struct RateLimits {
    default: u32,
    clock: Arc<dyn Clock>,
    buckets: Buckets,
    overrides: Mutex<HashMap<AppId, Cached>>,
}

impl RateLimits {
    pub fn new(default: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            default,
            clock,
            buckets: Buckets::default(),
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the app's cached limit (after a change on this node).
    pub fn forget(&self, app: AppId) {
        if let Ok(mut o) = self.overrides.lock() {
            o.remove(&app);
        }
    }

    fn cached(&self, app: AppId, now: DateTime<Utc>) -> Option<Option<u32>> {
        let o = self.overrides.lock().ok()?;
        o.get(&app)
            .filter(|(_, at)| now - *at < OVERRIDE_TTL)
            .map(|(limit, _)| *limit)
    }

    /// The limit for `app` (0: none).
    async fn limit_for(&self, state: &AppState, app: AppId) -> u32 {
        let now = self.clock.now();
        if let Some(limit) = self.cached(app, now) {
            return limit.unwrap_or(self.default);
        }
        let own = match state.services.tenancy.rate_limit(app).await {
            Ok(own) => own.and_then(|l| u32::try_from(l).ok()),
            // The database is away: the default, tried again next time.
            Err(_) => return self.default,
        };
        if let Ok(mut o) = self.overrides.lock() {
            o.insert(app, (own, now));
        }
        own.unwrap_or(self.default)
    }
}

pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let limits = state.rate_limits.clone();
    let caller = resolve(&state, request.headers(), request.extensions()).await;
    request.extensions_mut().insert(caller.clone());
    let Some(Principal::Key { app_id, key_id, .. }) = caller.0 else {
        return next.run(request).await;
    };
    let per_second = limits.limit_for(&state, app_id).await;
    if per_second == 0 {
        return next.run(request).await;
    }
    let decision = limits.buckets.take(key_id, per_second, limits.clock.now());
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        ApiError::TooManyRequests {
            detail: format!(
                "this API key is over its limit of {per_second} requests per second; \
                 retry after {} s",
                decision.retry_after_seconds
            ),
            retry_after: std::time::Duration::from_secs(decision.retry_after_seconds),
        }
        .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", u64::from(decision.limit)),
        ("ratelimit-remaining", u64::from(decision.remaining)),
        ("ratelimit-reset", decision.reset_seconds),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap_or_default()
    }

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval() {
        let b = Buckets::default();
        let key = ApiKeyId(uuid::Uuid::nil());
        let taken: Vec<Decision> = (0..5).map(|_| b.take(key, 4, at(0))).collect();
        assert_eq!(
            taken
                .iter()
                .map(|d| (d.allowed, d.remaining))
                .collect::<Vec<_>>(),
            [(true, 3), (true, 2), (true, 1), (true, 0), (false, 0)]
        );
        assert_eq!(taken[4].retry_after_seconds, 1);
        assert_eq!(taken[3].reset_seconds, 1);
        // A quarter second later one more is allowed, not two.
        assert!(b.take(key, 4, at(250)).allowed);
        assert!(!b.take(key, 4, at(250)).allowed);
        // After a full second of silence the whole burst is back.
        let later: Vec<bool> = (0..5).map(|_| b.take(key, 4, at(1_300)).allowed).collect();
        assert_eq!(later, [true, true, true, true, false]);
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let b = Buckets::default();
        let one = ApiKeyId(uuid::Uuid::nil());
        let two = ApiKeyId(uuid::Uuid::max());
        assert!(b.take(one, 1, at(0)).allowed);
        assert!(!b.take(one, 1, at(0)).allowed);
        assert!(b.take(two, 1, at(0)).allowed);
    }
}
