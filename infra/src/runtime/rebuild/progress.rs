//! Where a rebuild is: what it has read of what it reads in all, told to
//! the operator (the CLI's progress line) and to the `rebuilds` row that
//! `GET /v1/admin/projections` and a refused second rebuild show; and how
//! long each of its steps took.

use std::time::Instant;

use crate::runtime::rebuild_guard;

/// Where a rebuild is, for progress reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// The lowest shadow checkpoint.
    pub position: i64,
    /// The log's head when the rebuild started.
    pub head: i64,
    /// Events this run has read so far.
    pub applied: u64,
    /// Events this run reads in all, as far as it can tell: counted when it
    /// starts (the streams each model loads in bulk, the events of the types
    /// the others take), and grown by what the catch-up finds after that.
    pub total: u64,
    pub events_per_second: f64,
    /// What it is doing: `bulk load`, `indexes` (on SQLite `indexes and
    /// copy into the live file`, which reads no events), `catch-up`,
    /// `switch`; empty before it begins.
    pub step: &'static str,
}

/// A rebuild under way: what it has read, and who hears of it.
pub(super) struct Run<'a, F: FnMut(Progress)> {
    pub(super) started: Instant,
    pub(super) head: i64,
    /// The lowest shadow checkpoint.
    pub(super) position: i64,
    /// The step under way (see [`Progress::step`]).
    pub(super) step: &'static str,
    pub(super) read: u64,
    /// What the run expects to read in all (see [`Progress::total`]).
    pub(super) total: u64,
    pub(super) guard: &'a mut rebuild_guard::Guard,
    pub(super) progress: &'a mut F,
}

impl<F: FnMut(Progress)> Run<'_, F> {
    /// The lowest checkpoint is now `position`: tells the operator (and
    /// the rebuilds table) how far it is.
    /// `step` begins: told at once.
    pub(super) async fn begin(&mut self, step: &'static str) {
        self.step = step;
        self.tick().await;
    }

    pub(super) async fn report(&mut self, position: i64) {
        self.position = position;
        self.tick().await;
    }

    /// Tells the operator and the rebuilds table (each at its own pace:
    /// the table about every second, the CLI's line as it draws) the
    /// events read so far; while loading in bulk, between the moves of a
    /// checkpoint.
    pub(super) async fn tick(&mut self) {
        let now = self.at();
        self.guard.report(now).await;
        (self.progress)(now);
    }

    pub(super) fn at(&self) -> Progress {
        Progress {
            position: self.position,
            head: self.head,
            applied: self.read,
            total: self.total.max(self.read),
            events_per_second: self.read as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
            step: self.step,
        }
    }
}

/// The steps of a rebuild and how long each took.
pub(super) struct Steps(pub(super) Vec<(&'static str, std::time::Duration)>, Instant);

impl Steps {
    /// The first step begins now.
    pub(super) fn starting() -> Self {
        Self(Vec::new(), Instant::now())
    }

    /// `step` ended now (it began when the step before it ended).
    pub(super) fn done(&mut self, step: &'static str) {
        let now = Instant::now();
        self.0.push((step, now - self.1));
        self.1 = now;
    }

    /// `step` ran beside the next one and took `took`.
    pub(super) fn took(&mut self, step: &'static str, took: std::time::Duration) {
        self.0.push((step, took));
    }
}
