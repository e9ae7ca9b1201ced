//! The push sender: launches queued notifications when their time comes,
//! and sends launched ones.
//!
//! Sending a notification: resolve its audience once (`notification_audience`,
//! numbered in device order) and record that (`notification.audience_resolved`);
//! then, batch by batch, send every member and record the batch
//! (`notification.batch_sent`, naming each device and its outcome) before
//! the next; then `notification.sent` (or `errored`). A batch recorded in
//! the log is never sent again: after a crash, the next worker (the job's
//! lease lapsed) skips recorded batches and resends only the batch that was
//! in flight, so at most `batch_size` devices (1,000 by default) can get a
//! notification twice. Dead tokens become `device.push_token_invalidated`.

pub mod audience;
pub mod fanout;
pub mod jobs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::Metadata;
use domain::device::{self, Device, DeviceCommand};
use domain::ids::AppId;
use domain::notification::{self, Notification, NotificationCommand, Status};
use futures::StreamExt;
use projections::db::Db;
use tokio::sync::watch;

use self::fanout::Limits;
use self::jobs::Job;
use super::PushMessage;
use super::config::PushConfig;
use super::credentials::{Clients, ProviderCache};
use crate::clock::Clock;
use crate::metrics::PushMetrics;
use crate::runtime::Followers;
use crate::runtime::commands::{CommandBus, CommandError};
use crate::runtime::reactor::{self, Reactor, ReactorHandle};
use crate::store::StoreError;
use crate::telemetry::context;
use crate::vault::Vault;
use tracing::Instrument;

/// The event a send's latency is measured from.
const LAUNCHED: &str = "notification.launched";

/// Notifications worked at once by one process.
const JOBS_AT_ONCE: usize = 4;

pub struct Worker {
    db: Db,
    commands: CommandBus,
    vault: Vault,
    clock: Arc<dyn Clock>,
    config: PushConfig,
    projections: Followers,
    clients: Clients,
    cache: ProviderCache,
    limits: Limits,
    metrics: Arc<PushMetrics>,
    /// This node, the holder of its leases.
    node: uuid::Uuid,
}

/// The running sender; stops when dropped (work in flight is abandoned and
/// picked up again when its lease lapses).
pub struct Sender {
    worker: Arc<Worker>,
    running: Mutex<Option<ReactorHandle>>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the sender needs from the running application.
pub struct Parts {
    pub db: Db,
    pub commands: CommandBus,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    pub config: PushConfig,
    pub projections: Followers,
    pub clients: Clients,
    pub node: uuid::Uuid,
}

impl Sender {
    pub fn new(parts: Parts) -> Self {
        let limits = Limits::new(parts.config.concurrency);
        Self {
            worker: Arc::new(Worker {
                db: parts.db,
                commands: parts.commands,
                vault: parts.vault,
                clock: parts.clock,
                config: parts.config,
                projections: parts.projections,
                clients: parts.clients,
                cache: ProviderCache::default(),
                limits,
                metrics: Arc::default(),
                node: parts.node,
            }),
            running: Mutex::new(None),
        }
    }

    /// Starts working; `jobs` changes when the jobs feed moves.
    pub fn start(&self, jobs: watch::Receiver<i64>) {
        let poll = self.worker.config.poll_interval;
        let handle = reactor::spawn(self.worker.clone(), Some(jobs), poll);
        if let Ok(mut running) = self.running.lock() {
            *running = Some(handle);
        }
    }

    pub fn wake(&self) {
        if let Ok(running) = self.running.lock()
            && let Some(handle) = running.as_ref()
        {
            handle.wake();
        }
    }

    /// Resolves once nothing is due now and nothing is in flight (at once
    /// when the sender is not running).
    pub async fn idle(&self) {
        let signal = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(ReactorHandle::idle_signal));
        if let Some(idle) = signal {
            idle.await;
        }
    }

    /// Sends' outcomes so far (for `/metrics`).
    pub fn metrics(&self) -> &PushMetrics {
        &self.worker.metrics
    }

    /// Notifications being launched or sent by this node now.
    pub fn in_flight(&self) -> usize {
        self.running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(ReactorHandle::in_flight))
            .unwrap_or(0)
    }

    /// Stops sending: work in flight is abandoned (its lease lapses and
    /// another round, here or on another node, takes it up).
    pub fn stop(&self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(handle) = running.take()
        {
            handle.stop();
        }
    }
}

/// Jobs are notifications to launch (scheduled) or to send.
#[async_trait]
impl Reactor for Worker {
    type Work = Job;

    fn name(&self) -> &'static str {
        "push"
    }

    fn capacity(&self) -> usize {
        JOBS_AT_ONCE
    }

    fn batch(&self) -> usize {
        JOBS_AT_ONCE
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let lease =
            chrono::Duration::from_std(self.config.lease()).unwrap_or(chrono::Duration::minutes(5));
        let limit = i64::try_from(limit).unwrap_or(1);
        Ok(jobs::claim(&self.db, self.clock.now(), lease, limit, self.node).await?)
    }

    async fn handle(self: Arc<Self>, job: Job) {
        work(&self, job).await;
    }

    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(jobs::next_due(&self.db).await?)
    }
}

#[tracing::instrument(skip_all, fields(notification = %job.notification_id, stage = %job.stage))]
async fn work(w: &Worker, job: Job) {
    let result = match job.stage.as_str() {
        projections::notifications::jobs::LAUNCH => launch(w, &job).await,
        _ => send(w, &job).await,
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "notification work failed; it will be retried");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = jobs::release(&w.db, &job).await;
    }
}

fn metadata(app_id: AppId, actor: &str, cause: Option<uuid::Uuid>) -> Metadata {
    let mut m = Metadata::system(app_id, actor);
    m.causation_id = cause;
    m
}

/// A queued notification's time has come.
async fn launch(w: &Worker, job: &Job) -> Result<(), CommandError> {
    let app_id = AppId(job.app_id);
    let done = w
        .commands
        .execute::<Notification>(
            &notification::stream(job.notification_id),
            &metadata(app_id, "scheduler", None),
            NotificationCommand::LaunchScheduled,
        )
        .await?;
    if done.events.is_empty() {
        // No longer queued: nothing to launch.
        jobs::drop_job(&w.db, job).await?;
    }
    Ok(())
}

/// Whether sending `needed` more messages today would pass the app's quota.
async fn over_quota(w: &Worker, app_id: AppId, needed: u64) -> Result<Option<String>, sqlx::Error> {
    let Some(quota) = projections::apps::daily_quota(&w.db, app_id).await? else {
        return Ok(None);
    };
    let today = w.clock.now().format("%Y-%m-%d").to_string();
    let used = projections::notifications::query::usage_on(&w.db, app_id.0, &today).await?;
    let needed = i64::try_from(needed).unwrap_or(i64::MAX);
    Ok((used.saturating_add(needed) > quota).then(|| {
        format!("the daily quota of {quota} push messages would be exceeded ({used} sent today, {needed} more)")
    }))
}

async fn send(w: &Worker, job: &Job) -> Result<(), CommandError> {
    let app_id = AppId(job.app_id);
    let stream = notification::stream(job.notification_id);
    let (history, mut state) = w.commands.load::<Notification>(app_id, &stream).await?;
    let mut version = history.last().map_or(0, |e| e.stream_version);
    let meta = metadata(app_id, "push", history.last().map(|e| e.event_id));
    let launch = history.iter().rev().find(|e| e.event_type == LAUNCHED);
    let launched_at = launch.map(|e| e.recorded_at);
    // The sends continue the trace of the request that launched it.
    let span = tracing::info_span!("push.send", notification = %job.notification_id);
    let trace_id = launch.and_then(|e| e.metadata.get("trace_id")?.as_str().map(str::to_owned));
    if let Some(launch) = launch {
        context::continue_event(&span, trace_id.as_deref(), launch.event_id);
    }
    let traceparent = context::outgoing(&span, trace_id.as_deref());
    let Some(message) = state.message.clone() else {
        jobs::drop_job(&w.db, job).await?;
        return Ok(());
    };
    let mut batch_size = job.batch_size.unwrap_or(w.config.batch_size as i64).max(1);
    match state.status {
        Some(Status::Launched) => {
            // The devices read model must have seen everything up to the launch.
            if let Some(last) = history.last() {
                w.projections
                    .wait_for("devices", last.position, Duration::from_secs(30))
                    .await;
            }
            batch_size = i64::try_from(w.config.batch_size).unwrap_or(1000).max(1);
            let (total, by_platform) = audience::resolve(
                &w.db,
                app_id,
                job.notification_id,
                &message.targets,
                batch_size,
            )
            .await?;
            if let Some(reason) = over_quota(w, app_id, total).await? {
                w.commands
                    .execute_on(
                        &stream,
                        &meta,
                        &mut state,
                        &mut version,
                        NotificationCommand::Fail { reason },
                    )
                    .await?;
                return Ok(());
            }
            let batches = total.div_ceil(u64::try_from(batch_size).unwrap_or(1));
            w.commands
                .execute_on(
                    &stream,
                    &meta,
                    &mut state,
                    &mut version,
                    NotificationCommand::ResolveAudience {
                        total,
                        by_platform,
                        batches,
                    },
                )
                .await?;
        }
        Some(Status::Sending) => {}
        _ => {
            jobs::drop_job(&w.db, job).await?;
            return Ok(());
        }
    }
    let providers = Arc::new(
        w.cache
            .load(
                &w.db,
                &w.vault,
                &w.clients,
                &w.config,
                app_id,
                w.clock.now(),
            )
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?,
    );
    let push = Arc::new(
        PushMessage::new(job.notification_id, message.content.clone()).traced(traceparent),
    );
    let config = Arc::new(w.config.clone());
    let lease =
        chrono::Duration::from_std(w.config.lease()).unwrap_or(chrono::Duration::minutes(5));
    let mut lease_until = w.clock.now() + lease;
    let pending: Vec<u64> = (1..=state.batches)
        .filter(|n| !state.recorded.contains(n))
        .collect();
    // The next batch's members are read while this one is sent.
    let read = |n: u64| {
        let db = w.db.clone();
        let id = job.notification_id;
        tokio::spawn(async move { audience::batch(&db, id, n, batch_size).await })
    };
    let mut next = pending.first().map(|n| read(*n));
    for (i, n) in pending.iter().copied().enumerate() {
        if state.status != Some(Status::Sending) {
            break;
        }
        let started = std::time::Instant::now();
        let members = match next.take() {
            Some(task) => task
                .await
                .map_err(|e| CommandError::Internal(e.to_string()))??,
            None => audience::batch(&w.db, job.notification_id, n, batch_size).await?,
        };
        next = pending.get(i + 1).map(|m| read(*m));
        let read_time = started.elapsed();
        let sent = fanout::send(
            n, members, &push, &providers, &w.limits, &config, &w.metrics,
        )
        .instrument(span.clone())
        .await;
        if let Some(at) = launched_at {
            let o = &sent.outcome;
            let messages = o.delivered.len() + o.failed.len() + o.invalid.len();
            let waited = (w.clock.now() - at).to_std().unwrap_or_default();
            w.metrics.latency.observe_n(waited, messages as u64);
        }
        let sending = started.elapsed() - read_time;
        record(w, &stream, &meta, &mut state, &mut version, &sent.outcome).await?;
        tracing::debug!(
            batch = n,
            read_ms = read_time.as_millis() as u64,
            send_ms = sending.as_millis() as u64,
            record_ms = (started.elapsed() - read_time - sending).as_millis() as u64,
            "batch sent"
        );
        invalidate(w, app_id, &sent.invalid_tokens).await;
        if let Some(reason) = sent.misconfigured {
            w.commands
                .execute_on(
                    &stream,
                    &meta,
                    &mut state,
                    &mut version,
                    NotificationCommand::Fail { reason },
                )
                .await?;
            return Ok(());
        }
        // The lease is renewed once half of it is gone.
        let now = w.clock.now();
        if lease_until - now < lease / 2 {
            lease_until = now + lease;
            if !jobs::extend(&w.db, job, lease_until).await? {
                tracing::warn!("the job was taken over; stopping here");
                return Ok(());
            }
        }
    }
    w.commands
        .execute_on(
            &stream,
            &meta,
            &mut state,
            &mut version,
            NotificationCommand::Finish,
        )
        .await?;
    Ok(())
}

/// Records a batch; the log is the record of what was sent, so this keeps
/// trying while the database is away (the process stopping abandons it:
/// the batch is then sent again by the next worker).
async fn record(
    w: &Worker,
    stream: &str,
    meta: &Metadata,
    state: &mut Notification,
    version: &mut i64,
    outcome: &domain::notification::BatchOutcome,
) -> Result<(), CommandError> {
    let mut wait = Duration::from_millis(200);
    loop {
        let result = w
            .commands
            .execute_on(
                stream,
                meta,
                state,
                version,
                NotificationCommand::RecordBatch(outcome.clone()),
            )
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(CommandError::Unavailable(e)) | Err(CommandError::Internal(e)) => {
                tracing::warn!(error = %e, batch = outcome.batch, "recording a batch failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The provider said these tokens are dead: each device learns it.
async fn invalidate(w: &Worker, app_id: AppId, dead: &[(domain::ids::ExternalId, String)]) {
    let meta = metadata(app_id, "push", None);
    futures::stream::iter(dead)
        .for_each_concurrent(16, |(external_id, token)| {
            let meta = meta.clone();
            async move {
                let result = w
                    .commands
                    .execute::<Device>(
                        &device::stream(external_id),
                        &meta,
                        DeviceCommand::InvalidateToken {
                            external_id: external_id.clone(),
                            push_token: token.clone(),
                            reason: "the push provider reported the token dead".into(),
                        },
                    )
                    .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, device = %external_id, "could not invalidate a token");
                }
            }
        })
        .await;
}
