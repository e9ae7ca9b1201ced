//! Group commit: one task per process owns appends. While one batch commits,
//! new requests queue; the next transaction takes them all, so concurrent
//! writers share one lock acquisition and one fsync.
//!
//! A batch first runs on the fast path (no lookup of existing event ids).
//! Requests whose expectation fails there, or that repeat an id seen earlier
//! in the batch, are deferred and re-run one by one on the careful path,
//! which recognises retries of stored appends. If a whole batch fails (a
//! unique violation from a retried id, say), every request is re-run on the
//! careful path, so one bad request never fails its neighbours.

use std::sync::Arc;

use async_trait::async_trait;
use domain::RecordedEvent;
use tokio::sync::{mpsc, oneshot, watch};

use super::batch::{Committed, Planned};
use super::recent::Recent;
use super::{AppendRequest, Appended, StoreError};
use crate::metrics::AppendMetrics;

/// Requests taken into one transaction at most.
const MAX_BATCH_REQUESTS: usize = 512;
/// Events taken into one transaction at most (a single larger append still
/// goes alone).
const MAX_BATCH_EVENTS: usize = 4096;
const QUEUE_DEPTH: usize = 8192;

/// One backend's transaction for a batch.
#[async_trait]
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// Locks, reads the snapshot (with stored ids if `careful`), plans,
    /// inserts and commits. Returns each request's outcome and the head after
    /// the commit.
    async fn write(&self, batch: &[&AppendRequest], careful: bool)
    -> Result<Committed, StoreError>;
}

type Reply = oneshot::Sender<Result<Appended, StoreError>>;

struct Job {
    request: AppendRequest,
    reply: Reply,
}

#[derive(Clone)]
pub(crate) struct Appender {
    jobs: mpsc::Sender<Job>,
    metrics: Arc<AppendMetrics>,
}

impl Appender {
    pub fn spawn(
        writer: Arc<dyn BatchWriter>,
        head: watch::Sender<i64>,
        recent: Arc<Recent>,
        metrics: Arc<AppendMetrics>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let published = Published {
            head,
            recent,
            metrics: metrics.clone(),
        };
        tokio::spawn(run(writer, queue, published));
        Self { jobs, metrics }
    }

    pub async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let started = std::time::Instant::now();
        let answer = self.queue(request).await;
        let m = &self.metrics;
        m.requests.inc();
        m.duration.observe(started.elapsed());
        if answer.is_err() {
            m.refused.inc();
        }
        answer
    }

    async fn queue(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        super::batch::validate(&request)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { request, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the appender has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the appender has stopped".into()))?
    }
}

/// Where committed batches are announced: the events into the cache first,
/// then the head, so a follower woken by the head finds them there.
struct Published {
    head: watch::Sender<i64>,
    recent: Arc<Recent>,
    metrics: Arc<AppendMetrics>,
}

impl Published {
    fn committed(&self, events: Vec<RecordedEvent>, new_head: i64) {
        self.metrics.batches.inc();
        self.metrics.events.add(events.len() as u64);
        self.recent.push(events);
        advance(&self.head, new_head);
    }
}

async fn run(writer: Arc<dyn BatchWriter>, mut queue: mpsc::Receiver<Job>, head: Published) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut events = first.request.events.len();
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH_REQUESTS {
            match queue.try_recv() {
                Ok(job) if events + job.request.events.len() > MAX_BATCH_EVENTS => {
                    pending = Some(job);
                    break;
                }
                Ok(job) => {
                    events += job.request.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        process(writer.as_ref(), jobs, &head).await;
    }
}

async fn process(writer: &dyn BatchWriter, mut jobs: Vec<Job>, head: &Published) {
    // A caller that has gone (its request was answered 503, or dropped)
    // gets nothing written on its behalf.
    jobs.retain(|job| !job.reply.is_closed());
    if jobs.is_empty() {
        return;
    }
    let careful = jobs.len() == 1;
    let requests: Vec<&AppendRequest> = jobs.iter().map(|j| &j.request).collect();
    let result = writer.write(&requests, careful).await;
    let mut deferred = Vec::new();
    match result {
        Ok(Committed {
            outcomes,
            head: new_head,
            events,
        }) => {
            head.committed(events, new_head);
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                match outcome {
                    Planned::Written(a) | Planned::Replayed(a) => {
                        let _ = job.reply.send(Ok(a));
                    }
                    Planned::Refused(e) => {
                        let _ = job.reply.send(Err(e));
                    }
                    Planned::Deferred => deferred.push(job),
                }
            }
        }
        Err(e) if careful => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "batch failed; retrying its appends one by one");
            deferred = jobs;
        }
    }
    if !deferred.is_empty() {
        tracing::debug!(
            count = deferred.len(),
            "appends deferred to the careful path"
        );
    }
    for job in deferred {
        let outcome = match writer.write(&[&job.request], true).await {
            Ok(Committed {
                mut outcomes,
                head: new_head,
                events,
            }) => {
                head.committed(events, new_head);
                match outcomes.pop() {
                    Some(Planned::Written(a) | Planned::Replayed(a)) => Ok(a),
                    Some(Planned::Refused(e)) => Err(e),
                    Some(Planned::Deferred) | None => Err(StoreError::Internal(
                        "the careful path deferred an append".into(),
                    )),
                }
            }
            Err(e) => Err(e),
        };
        let _ = job.reply.send(outcome);
    }
}

pub(crate) fn advance(head: &watch::Sender<i64>, new_head: i64) {
    head.send_if_modified(|h| {
        if new_head > *h {
            *h = new_head;
            true
        } else {
            false
        }
    });
}
