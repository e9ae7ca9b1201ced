//! `herald changes pump`: a crash-safe consumer of a change queue.
//!
//! Per run, until the queue is empty: first deliver what the local buffer
//! still holds; then drain one batch and make it durable in the buffer
//! before handing anything out; deliver one change at a time to the handler
//! (an executable that reads the change as JSON on stdin; exit 0
//! acknowledges); acknowledge with one appended line in the buffer's
//! journal. A change that keeps failing is retried with backoff, then moved
//! to the dead letters (or the run stops, with `--on-error halt`). A crash
//! redelivers at most the change in flight: delivery is at-least-once, so
//! handlers dedupe on the change's `id`. The buffer directory is locked for
//! the whole run: a second pump on it is refused.

pub mod buffer;
pub mod client;
pub mod journal;
pub mod lock;
pub mod retry_after;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use self::buffer::{Buffer, Change, DeadLetter, id_of};
use self::client::ChangesClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Move the change to the dead letters and go on.
    DeadLetter,
    /// Stop the run (the change stays first in the buffer).
    Halt,
}

/// How to hand a change to the handler.
#[derive(Debug, Clone)]
pub struct Handler {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Retries after the first failure.
    pub max_retries: u32,
}

pub struct Pump {
    pub client: ChangesClient,
    pub queue: String,
    pub limit: u32,
    pub buffer: Buffer,
    pub handler: Handler,
    pub on_error: OnError,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub delivered: u64,
    pub dead_lettered: u64,
}

impl Pump {
    pub async fn run(&mut self) -> anyhow::Result<Report> {
        let mut report = Report::default();
        loop {
            let mut pending = self.buffer.pending()?;
            if pending.is_empty() {
                let batch = self.client.drain(&self.queue, self.limit).await?;
                if batch.changes.is_empty() {
                    return Ok(report);
                }
                pending = self.buffer.start(&batch.changes)?;
            }
            for entry in &pending {
                let change = &entry.change;
                match self.handler.deliver(change).await {
                    Ok(()) => report.delivered += 1,
                    Err((error, attempts)) => match self.on_error {
                        OnError::Halt => {
                            anyhow::bail!(
                                "change {} failed {attempts} time(s): {error}; it stays first in the buffer",
                                id_of(change)
                            )
                        }
                        OnError::DeadLetter => {
                            tracing::warn!(id = %id_of(change), %error, "moved to the dead letters");
                            self.buffer.add_dead_letter(&DeadLetter {
                                change: change.clone(),
                                error,
                                attempts,
                                failed_at: chrono::Utc::now().to_rfc3339(),
                            })?;
                            report.dead_lettered += 1;
                        }
                    },
                }
                self.buffer.ack(entry)?;
            }
            self.buffer.finish()?;
        }
    }
}

impl Handler {
    /// Runs the handler until it acknowledges, at most `1 + max_retries`
    /// times. Returns the last error and the attempts made.
    pub async fn deliver(&self, change: &Change) -> Result<(), (String, u32)> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(change).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt > self.max_retries => return Err((e, attempt)),
                Err(e) => {
                    tracing::info!(id = %id_of(change), attempt, error = %e, "handler failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn once(&self, change: &Change) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env("HERALD_CHANGE_ID", id_of(change))
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(change).unwrap_or_default();
            // A handler that exits without reading its input is its business.
            let _ = stdin.write_all(&body).await;
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the handler exited with {status}"))
        }
    }
}

/// Hands every dead letter to the handler again, in log order; removes the
/// ones it acknowledges. Holds the buffer's lock (as a pump does), so it
/// never runs beside a pump. Returns (delivered, still failing).
pub async fn retry_dead_letters(dir: &Path, handler: &Handler) -> anyhow::Result<(u64, u64)> {
    let buffer = Buffer::open(dir)?;
    let (mut delivered, mut failing) = (0, 0);
    for (name, letter) in buffer.dead_letters()? {
        match handler.deliver(&letter.change).await {
            Ok(()) => {
                buffer
                    .remove_dead_letter(&name)
                    .with_context(|| format!("delivered {name} but could not remove it"))?;
                delivered += 1;
            }
            Err((error, _)) => {
                tracing::warn!(file = %name, %error, "still failing");
                failing += 1;
            }
        }
    }
    Ok((delivered, failing))
}
