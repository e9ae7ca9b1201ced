//! One batch of a campaign: every member sent to its provider, at most
//! `concurrency` requests in flight per provider, retryable failures
//! retried with exponential backoff and jitter (at least what the provider
//! asked with Retry-After, within bounds), and the outcome per device.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::ids::ExternalId;
use domain::notification::{BatchOutcome, Miss, PerPlatform};
use domain::platform::SendPlatform;
use futures::FutureExt;
use tokio::sync::Semaphore;

use super::audience::Member;
use crate::metrics::PushMetrics;
use crate::reactors::push::config::PushConfig;
use crate::reactors::push::credentials::AppProviders;
use crate::reactors::push::{Outcome, PushMessage};
use crate::secrets::random_in_1_to;

/// Requests in flight, per provider, shared by every campaign of the process.
#[derive(Clone)]
pub struct Limits(Arc<HashMap<&'static str, Arc<Semaphore>>>);

impl Limits {
    pub fn new(per_provider: usize) -> Self {
        let names = ["fcm", "apns", "webpush", "log"];
        Self(Arc::new(
            names
                .into_iter()
                .map(|n| (n, Arc::new(Semaphore::new(per_provider.max(1)))))
                .collect(),
        ))
    }

    fn of(&self, provider: &str) -> Option<Arc<Semaphore>> {
        self.0.get(provider).cloned()
    }
}

/// What a batch came to.
pub struct Sent {
    pub outcome: BatchOutcome,
    /// Dead tokens: (device, the token that failed).
    pub invalid_tokens: Vec<(ExternalId, String)>,
    /// A configuration error, if a provider reported one.
    pub misconfigured: Option<String>,
}

fn count(p: &mut PerPlatform, device_platform: &str) {
    match device_platform {
        "android" => p.android += 1,
        "ios" => p.ios += 1,
        _ => p.web += 1,
    }
}

/// The wait before retry `attempt` (1-based).
fn backoff(config: &PushConfig, attempt: u32, asked: Option<Duration>) -> Duration {
    let exp = config
        .retry_base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let jitter = f64::from(random_in_1_to(1000)) / 1000.0; // (0, 1]
    let wait = exp.mul_f64(0.5 + jitter * 0.5);
    wait.max(asked.unwrap_or_default())
        .min(config.max_retry_wait)
}

async fn send_one(
    providers: &AppProviders,
    limits: &Limits,
    config: &PushConfig,
    message: &PushMessage,
    member: &Member,
    halted: &AtomicBool,
    metrics: &PushMetrics,
) -> Outcome {
    if halted.load(Ordering::Relaxed) {
        return Outcome::Failed(
            "not sent: the notification stopped on a configuration error".into(),
        );
    }
    let provider = match SendPlatform::parse(&member.send_platform).map(|p| providers.get(p)) {
        Some(Ok(p)) => p,
        Some(Err(reason)) => return Outcome::Failed(reason),
        None => return Outcome::Failed(format!("unknown send platform {}", member.send_platform)),
    };
    let Some(slots) = limits.of(provider.name()) else {
        return Outcome::Failed("no provider".into());
    };
    let mut attempt = 0;
    loop {
        let outcome = {
            let Ok(_slot) = slots.acquire().await else {
                return Outcome::Failed("shutting down".into());
            };
            provider.send(message, &member.push_token).await
        };
        let class = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::InvalidToken(_) => "invalid_token",
            Outcome::Retry { .. } if attempt < config.max_retries => "retryable",
            _ => "error",
        };
        metrics.outcomes.inc([provider.name(), class]);
        match outcome {
            Outcome::Retry {
                reason,
                retry_after,
            } => {
                attempt += 1;
                if attempt > config.max_retries {
                    return Outcome::Failed(format!(
                        "{reason} (gave up after {} retries)",
                        config.max_retries
                    ));
                }
                tokio::time::sleep(backoff(config, attempt, retry_after)).await;
            }
            Outcome::Misconfigured(reason) => {
                halted.store(true, Ordering::Relaxed);
                return Outcome::Misconfigured(reason);
            }
            other => return other,
        }
    }
}

/// Sends batch `n` to its members: as many worker tasks as requests may be
/// in flight, each taking the next member when its last send is done (not
/// a task per member: a thousand runnable tasks would queue the provider
/// connection's own task behind them, and over HTTP/2 every send waits on
/// that one task).
pub async fn send(
    n: u64,
    members: Vec<Member>,
    message: &Arc<PushMessage>,
    providers: &Arc<AppProviders>,
    limits: &Limits,
    config: &Arc<PushConfig>,
    metrics: &Arc<PushMetrics>,
) -> Sent {
    let halted = Arc::new(AtomicBool::new(false));
    let workers = members.len().min(config.concurrency).max(1);
    let queue = Arc::new(Mutex::new(members.into_iter()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (queue, message, providers, limits, config, halted, metrics) = (
            queue.clone(),
            message.clone(),
            providers.clone(),
            limits.clone(),
            config.clone(),
            halted.clone(),
            metrics.clone(),
        );
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(member) = next else { break };
                // A panic in one send must not lose the other members' outcomes.
                let outcome = AssertUnwindSafe(send_one(
                    &providers, &limits, &config, &message, &member, &halted, &metrics,
                ))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Outcome::Failed("not sent: an internal error".into()));
                done.push((member, outcome));
            }
            done
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(pairs) => outcomes.extend(pairs),
            Err(e) => tracing::error!(error = %e, "a send task failed"),
        }
    }
    let mut sent = Sent {
        outcome: BatchOutcome {
            batch: n,
            delivered: Vec::new(),
            failed: Vec::new(),
            invalid: Vec::new(),
            sent: PerPlatform::default(),
            failures: PerPlatform::default(),
        },
        invalid_tokens: Vec::new(),
        misconfigured: None,
    };
    let mut ordered = outcomes;
    ordered.sort_by_key(|(m, _)| m.seq);
    for (member, outcome) in ordered {
        let Ok(external_id) = ExternalId::parse(member.external_id.clone()) else {
            continue;
        };
        let o = &mut sent.outcome;
        match outcome {
            Outcome::Delivered => {
                o.delivered.push(external_id);
                count(&mut o.sent, &member.device_platform);
            }
            Outcome::InvalidToken(reason) => {
                sent.invalid_tokens
                    .push((external_id.clone(), member.push_token.clone()));
                o.invalid.push(Miss {
                    external_id,
                    reason,
                });
                count(&mut o.failures, &member.device_platform);
            }
            Outcome::Misconfigured(reason) => {
                sent.misconfigured.get_or_insert(reason.clone());
                o.failed.push(Miss {
                    external_id,
                    reason,
                });
                count(&mut o.failures, &member.device_platform);
            }
            Outcome::Failed(reason) | Outcome::Retry { reason, .. } => {
                o.failed.push(Miss {
                    external_id,
                    reason,
                });
                count(&mut o.failures, &member.device_platform);
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_honours_retry_after_and_is_capped() {
        let config = PushConfig::default();
        let first = backoff(&config, 1, None);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        let third = backoff(&config, 3, None);
        assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2));
        assert_eq!(
            backoff(&config, 1, Some(Duration::from_secs(10))),
            Duration::from_secs(10)
        );
        assert_eq!(
            backoff(&config, 1, Some(Duration::from_secs(999))),
            config.max_retry_wait
        );
        assert_eq!(backoff(&config, 30, None), config.max_retry_wait);
    }
}
