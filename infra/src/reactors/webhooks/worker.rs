//! The delivery reactor: claims due messages, sends them, records each
//! attempt, schedules retries, and turns what it learns into commands
//! (an endpoint disabled, a user's status set to `webhook_error`).
//!
//! A reactor (`runtime::reactor`): its loop wakes when the webhooks feed
//! queues new messages, when an API call re-queues some, when a delivery
//! finishes, when the next retry comes due on the clock, and every poll
//! interval (work queued by other nodes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use domain::Metadata;
use domain::ids::{AppId, UserId, WebhookId};
use domain::user::{User, UserCommand, UserStatus};
use domain::webhook::settings::Settings;
use domain::webhook::{self, Endpoint, WebhookCommand};
use projections::db::Db;
use projections::webhooks::{ACTOR, endpoints};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use uuid::Uuid;

use super::policy::WebhookConfig;
use super::queue::{self, CLAIM_BATCH, Claimed, Outcome, Recorded};
use super::send::{self, Credential, Request};
use super::signature;
use super::{AUTH, SIGNING, owner};
use crate::clock::Clock;
use crate::metrics::WebhookMetrics;
use crate::runtime::commands::CommandBus;
use crate::runtime::reactor::{self, Reactor, ReactorHandle};
use crate::secrets::{Secret, random_in_1_to};
use crate::store::StoreError;
use crate::telemetry::context;
use crate::vault::{Slot, Vault};
use tracing::Instrument;

/// How long an endpoint's settings and secrets are reused between deliveries.
const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// An endpoint as a delivery needs it.
struct Target {
    settings: Settings,
    signing_keys: Vec<Vec<u8>>,
    credential: Option<Secret<Credential>>,
    /// The receiver's key, parsed once per fetch (not per delivery).
    encrypt_to: Option<super::jwe::ReceiverKey>,
    fetched: Instant,
    /// When the first of its secrets expires (on the reactor's clock).
    stale_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct Worker {
    db: Db,
    vault: Vault,
    commands: CommandBus,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
    http: reqwest::Client,
    addresses: Arc<super::address::AddressPolicy>,
    /// Deliveries in flight (messages claimed wait here for a slot).
    slots: Arc<Semaphore>,
    targets: Mutex<HashMap<Uuid, Arc<Target>>>,
    /// Finished deliveries, recorded in batches (one commit for many).
    done: mpsc::Sender<Done>,
    done_rx: Mutex<Option<mpsc::Receiver<Done>>>,
    metrics: WebhookMetrics,
    /// This node, the holder of its leases.
    node: Uuid,
}

/// A finished delivery waiting to be recorded.
struct Done {
    message: Claimed,
    outcome: Outcome,
    reply: oneshot::Sender<Result<Recorded, String>>,
}

/// Deliveries recorded per transaction, at most.
const RECORD_BATCH: usize = 256;

/// The running reactor; stops when dropped.
pub struct Deliveries {
    worker: Arc<Worker>,
    running: Mutex<Option<(ReactorHandle, tokio::task::JoinHandle<()>)>>,
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Deliveries {
    pub fn new(
        db: Db,
        vault: Vault,
        commands: CommandBus,
        clock: Arc<dyn Clock>,
        config: WebhookConfig,
        node: Uuid,
    ) -> anyhow::Result<Self> {
        let addresses = Arc::new(config.addresses.clone());
        let http = send::client(config.timeout, addresses.clone())?;
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let (done, done_rx) = mpsc::channel(RECORD_BATCH * 4);
        Ok(Self {
            worker: Arc::new(Worker {
                db,
                vault,
                commands,
                clock,
                config,
                http,
                addresses,
                slots,
                targets: Mutex::new(HashMap::new()),
                done,
                done_rx: Mutex::new(Some(done_rx)),
                metrics: WebhookMetrics::default(),
                node,
            }),
            running: Mutex::new(None),
        })
    }

    /// Starts delivering; `queued` changes whenever the feed may have
    /// queued messages.
    pub fn start(&self, queued: watch::Receiver<i64>) {
        let Some(done) = self.worker.done_rx.lock().ok().and_then(|mut d| d.take()) else {
            return;
        };
        let recorder = tokio::spawn(record(Arc::downgrade(&self.worker), done));
        let poll = self.worker.config.poll_interval;
        let handle = reactor::spawn(self.worker.clone(), Some(queued), poll);
        if let Ok(mut running) = self.running.lock() {
            *running = Some((handle, recorder));
        }
    }

    /// Stops delivering: deliveries in flight are abandoned (their leases
    /// lapse and they are sent again, by this node or another).
    pub fn stop(&self) {
        if let Ok(mut running) = self.running.lock()
            && let Some((handle, recorder)) = running.take()
        {
            handle.stop();
            recorder.abort();
        }
    }

    /// Stops claiming and lets the deliveries in flight finish and record
    /// their outcome (at most `timeout`), so that no other node sends them
    /// again; then stops. Returns how many were abandoned at the deadline.
    pub async fn drain(&self, timeout: std::time::Duration) -> usize {
        let running = self.running.lock().ok().and_then(|mut r| r.take());
        let Some((handle, recorder)) = running else {
            return 0;
        };
        let left = handle.drain(timeout).await;
        recorder.abort();
        left
    }

    /// Looks for due work now (messages re-queued by an API call).
    pub fn wake(&self) {
        if let Ok(running) = self.running.lock()
            && let Some((handle, _)) = running.as_ref()
        {
            handle.wake();
        }
    }

    /// Resolves once nothing is due now and nothing is in flight (at once
    /// when the reactor is not running).
    pub async fn idle(&self) {
        let signal = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|(h, _)| h.idle_signal()));
        if let Some(idle) = signal {
            idle.await;
        }
    }

    /// Deliveries' outcomes so far (for `/metrics`).
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.worker.metrics
    }

    /// Messages being delivered by this node now.
    pub fn in_flight(&self) -> usize {
        self.running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|(h, _)| h.in_flight()))
            .unwrap_or(0)
    }

    /// Forgets cached settings and secrets of an endpoint (it changed).
    pub fn forget(&self, endpoint_id: Uuid) {
        if let Ok(mut targets) = self.worker.targets.lock() {
            targets.remove(&endpoint_id);
        }
    }
}

#[async_trait]
impl Reactor for Worker {
    type Work = Claimed;

    fn name(&self) -> &'static str {
        "webhooks"
    }

    /// Claimed and not yet finished: twice the deliveries in flight, so the
    /// next ones are ready when a slot frees.
    fn capacity(&self) -> usize {
        self.config.concurrency.max(1) * 2
    }

    fn batch(&self) -> usize {
        usize::try_from(CLAIM_BATCH)
            .unwrap_or(64)
            .min(self.config.concurrency.max(1))
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        let lease =
            chrono::Duration::from_std(self.config.lease()).unwrap_or(chrono::Duration::minutes(1));
        let limit = i64::try_from(limit).unwrap_or(1);
        Ok(queue::claim(&self.db, self.clock.now(), lease, limit, self.node).await?)
    }

    async fn handle(self: Arc<Self>, message: Claimed) {
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        // The delivery continues the trace of the event it carries.
        let span = tracing::info_span!(
            "webhook.deliver",
            endpoint = %message.endpoint_id,
            message = %message.message_id,
            attempt = message.attempt,
        );
        context::continue_event(&span, message.trace_id.as_deref(), message.message_id);
        deliver(&self, message).instrument(span).await;
        drop(slot);
    }

    /// Due later, or due now yet blocked (behind an ordered endpoint's head,
    /// or leased): a finished delivery wakes the loop for the latter.
    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(queue::next_due(&self.db).await?)
    }
}

async fn deliver(w: &Worker, message: Claimed) {
    if message.send_at > w.clock.now() {
        w.clock.sleep_until(message.send_at).await;
    }
    let target = match target(w, &message).await {
        Ok(Some(t)) => t,
        // Deleted meanwhile: its messages are gone with it.
        Ok(None) => return,
        Err(e) => {
            // Leave the lease to lapse: the message is tried again later.
            tracing::error!(error = %e, "cannot load the endpoint for a delivery");
            return;
        }
    };
    let started_at = w.clock.now();
    let traceparent = context::outgoing(&tracing::Span::current(), message.trace_id.as_deref());
    let response = send::send(
        &w.http,
        &w.addresses,
        Request {
            settings: &target.settings,
            signing_keys: &target.signing_keys,
            credential: target.credential.as_ref(),
            encrypt_to: target.encrypt_to.as_ref(),
            message_id: &message.message_id.to_string(),
            body: &message.body,
            url: message.url.as_deref(),
            timestamp: started_at,
            traceparent: traceparent.as_deref(),
        },
    )
    .await;
    let succeeded = response.succeeded();
    let failed = u32::try_from(message.attempt).unwrap_or(u32::MAX);
    let gone = response.status == Some(410);
    let random = f64::from(random_in_1_to(10_000) - 1) / 10_000.0;
    let next_attempt_at = if succeeded || gone {
        None
    } else {
        w.config
            .retry
            .next_delay(failed, response.retry_after, random)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| w.clock.now() + d)
    };
    let outcome = Outcome {
        started_at,
        duration_ms: i64::try_from(response.duration.as_millis()).unwrap_or(i64::MAX),
        status_code: response.status,
        response_body: response.body.clone(),
        error: response.error.clone(),
        succeeded,
        next_attempt_at,
    };
    let now = w.clock.now();
    let (reply, answer) = oneshot::channel();
    let done = Done {
        message: message.clone(),
        outcome,
        reply,
    };
    if w.done.send(done).await.is_err() {
        return;
    }
    let recorded = match answer.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            // The lease lapses and the message is sent again: at least once.
            tracing::error!(error = %e, "recording a webhook attempt failed");
            return;
        }
        Err(_) => return,
    };
    let Recorded::Done { failing_since } = recorded else {
        tracing::info!("another worker took this delivery over; its outcome stands");
        return;
    };
    let class = match (succeeded, next_attempt_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "retried",
        (false, None) => "failed",
    };
    w.metrics.outcomes.inc([class]);
    if class != "retried" {
        let waited = (now - message.created_at).to_std().unwrap_or_default();
        w.metrics.latency.observe(waited);
    }
    if succeeded {
        return;
    }
    tracing::info!(status = ?response.status, error = ?response.error, retry_at = ?next_attempt_at, "webhook delivery failed");
    let app_id = AppId(message.app_id);
    if gone {
        disable(w, app_id, &message, "the receiver answered 410 Gone".into()).await;
    } else if let Some(since) = failing_since
        && let Ok(limit) = chrono::Duration::from_std(w.config.disable_after)
        && now - since >= limit
    {
        let reason = format!(
            "no successful delivery since {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        disable(w, app_id, &message, reason).await;
    }
    if next_attempt_at.is_none() && target.settings.set_user_status_on_failure {
        mark_user(w, app_id, &message).await;
    }
}

/// Records finished deliveries: whatever has piled up, in one transaction.
async fn record(worker: Weak<Worker>, mut done: mpsc::Receiver<Done>) {
    while let Some(first) = done.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match done.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let Some(w) = worker.upgrade() else { return };
        let items: Vec<(&Claimed, &Outcome)> =
            batch.iter().map(|d| (&d.message, &d.outcome)).collect();
        let result = queue::complete(&w.db, &items, w.clock.now()).await;
        drop(items);
        match result {
            Ok(recorded) => {
                for (d, r) in batch.into_iter().zip(recorded) {
                    let _ = d.reply.send(Ok(r));
                }
            }
            Err(e) => {
                for d in batch {
                    let _ = d.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// The endpoint's settings and active secrets, cached briefly.
async fn target(w: &Worker, message: &Claimed) -> anyhow::Result<Option<Arc<Target>>> {
    if let Ok(targets) = w.targets.lock()
        && let Some(t) = targets.get(&message.endpoint_id)
        && t.fetched.elapsed() < CACHE_FOR
        && t.stale_at.is_none_or(|at| w.clock.now() < at)
    {
        return Ok(Some(t.clone()));
    }
    let Some(record) = endpoints::get(&w.db, message.app_id, message.endpoint_id).await? else {
        return Ok(None);
    };
    let owner = owner(WebhookId(message.endpoint_id));
    let slot = |purpose| Slot {
        app_id: AppId(message.app_id),
        owner: &owner,
        purpose,
    };
    let now = w.clock.now();
    let signing = w.vault.active_until(slot(SIGNING), now).await?;
    let stale_at = signing.iter().filter_map(|(_, expires)| *expires).min();
    let signing_keys = signing
        .iter()
        .filter_map(|(s, _)| signature::key_of(&String::from_utf8_lossy(s.expose())))
        .collect();
    let credential = match w.vault.active(slot(AUTH), now).await?.first() {
        Some(sealed) => Some(Secret::new(serde_json::from_slice::<Credential>(
            sealed.expose(),
        )?)),
        None => None,
    };
    // Checked when the endpoint was configured; unreadable now only if the
    // stored settings were tampered with, which the delivery then reports.
    let encrypt_to = match &record.settings.encryption_public_key {
        Some(pem) => Some(super::jwe::ReceiverKey::parse(pem).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let target = Arc::new(Target {
        encrypt_to,
        settings: record.settings,
        signing_keys,
        credential,
        fetched: Instant::now(),
        stale_at,
    });
    if let Ok(mut targets) = w.targets.lock() {
        targets.insert(message.endpoint_id, target.clone());
    }
    Ok(Some(target))
}

fn system_metadata(app_id: AppId, message: &Claimed) -> Metadata {
    let mut metadata = Metadata::system(app_id, ACTOR.trim_start_matches("system:"));
    metadata.causation_id = Some(message.message_id);
    metadata
}

async fn disable(w: &Worker, app_id: AppId, message: &Claimed, reason: String) {
    let webhook_id = WebhookId(message.endpoint_id);
    let result = w
        .commands
        .execute::<Endpoint>(
            &webhook::stream(webhook_id),
            &system_metadata(app_id, message),
            WebhookCommand::Disable { webhook_id, reason },
        )
        .await;
    match result {
        Ok(done) if !done.events.is_empty() => w.metrics.outcomes.inc(["disabled"]),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not disable the endpoint"),
    }
}

/// A message about a user failed for good: the user's status becomes
/// `webhook_error`, unless the event was itself written by this reactor
/// (which would loop).
async fn mark_user(w: &Worker, app_id: AppId, message: &Claimed) {
    let Some(user_id) = message.user_id.as_ref() else {
        return;
    };
    if message.from_webhooks {
        return;
    }
    let Ok(user_id) = UserId::parse(user_id.clone()) else {
        return;
    };
    let reason = format!(
        "webhook {} failed for good on {} {}",
        message.endpoint_id, message.event_type, message.message_id
    );
    let result = w
        .commands
        .execute::<User>(
            &domain::user::stream(&user_id),
            &system_metadata(app_id, message),
            UserCommand::SetStatus {
                user_id: user_id.clone(),
                status: UserStatus::WebhookError,
                reason: Some(reason),
            },
        )
        .await;
    match result {
        Ok(_) => {}
        // Deleted since: nothing to mark.
        Err(crate::runtime::commands::CommandError::Domain(_)) => {}
        Err(e) => tracing::error!(error = %e, "could not set the user's status"),
    }
}
