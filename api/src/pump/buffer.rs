//! The pump's durable local buffer, one directory:
//!
//! * `lock`: held by the one process using the directory ([`DirLock`]);
//! * `batch.json`: the batch being delivered, `{"format": 1, "batch": <id>,
//!   "changes": [...]}`, written once, durably, before any of it is handed
//!   out (temp file, fsync, rename, fsync of the directory) and never
//!   rewritten;
//! * `acks.log`: the acknowledgment journal of that batch
//!   ([`super::journal`]), one appended line and one fdatasync per change;
//! * `dead-letters/`: one file per change the handler gave up on.
//!
//! Pending = the batch minus the journal. When the whole batch is
//! acknowledged, the batch file goes first, then the journal; a journal left
//! behind names a batch that no longer exists and is ignored.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::journal::{self, Journal};
use super::lock::DirLock;

pub const BATCH: &str = "batch.json";
pub const JOURNAL: &str = "acks.log";
/// The buffer of earlier versions (the pending changes, rewritten on every
/// acknowledgment); taken over as a batch on open.
const LEGACY_PENDING: &str = "pending.json";
const DEAD: &str = "dead-letters";
const FORMAT: u32 = 1;

/// A change as the server handed it out (kept verbatim for the handler).
pub type Change = Value;

pub fn id_of(change: &Change) -> String {
    change["id"].as_str().unwrap_or_default().to_owned()
}

/// A change that failed every attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    pub change: Change,
    pub error: String,
    pub attempts: u32,
    pub failed_at: String,
}

#[derive(Serialize, Deserialize)]
struct BatchFile {
    format: u32,
    batch: String,
    changes: Vec<Change>,
}

/// A change not acknowledged yet, with its place in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub index: usize,
    pub change: Change,
}

/// The buffer, locked for as long as it is open.
pub struct Buffer {
    dir: PathBuf,
    _lock: DirLock,
    journal: Option<Journal>,
}

impl Buffer {
    /// Opens (creating) the buffer and takes its lock; fails at once if
    /// another process holds it.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir.join(DEAD))
            .with_context(|| format!("cannot create the buffer directory {}", dir.display()))?;
        let lock = DirLock::acquire(dir)?;
        let mut buffer = Self {
            dir: dir.to_path_buf(),
            _lock: lock,
            journal: None,
        };
        buffer.take_over_legacy()?;
        Ok(buffer)
    }

    fn take_over_legacy(&mut self) -> anyhow::Result<()> {
        let legacy = self.dir.join(LEGACY_PENDING);
        let changes: Vec<Change> = match fs::read(&legacy) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("the buffer {} is unreadable", legacy.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", legacy.display())),
        };
        // A batch file beside it means a take-over was cut short after the
        // batch was written: the batch (and its journal) is the truth.
        if !self.dir.join(BATCH).exists() && !changes.is_empty() {
            self.start(&changes)?;
            self.journal = None;
        }
        fs::remove_file(&legacy)?;
        sync_dir(&self.dir)
    }

    /// The changes drained but not acknowledged yet, oldest first. Opens the
    /// journal for [`Buffer::ack`], cutting off a torn tail; a batch found
    /// fully acknowledged is removed.
    pub fn pending(&mut self) -> anyhow::Result<Vec<Pending>> {
        self.journal = None;
        let path = self.dir.join(BATCH);
        let batch: BatchFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("the buffer {} is unreadable", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        anyhow::ensure!(
            batch.format == FORMAT,
            "{} has format {}; this version reads {FORMAT}",
            path.display(),
            batch.format
        );
        let ids: Vec<String> = batch.changes.iter().map(id_of).collect();
        let journal_path = self.dir.join(JOURNAL);
        let bytes = match fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", journal_path.display()));
            }
        };
        let read = journal::read(&bytes, &batch.batch, &ids);
        let pending: Vec<Pending> = batch
            .changes
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !read.acked.contains(index))
            .map(|(index, change)| Pending { index, change })
            .collect();
        if pending.is_empty() {
            self.finish()?;
            return Ok(pending);
        }
        self.journal = Some(if read.header_ok {
            Journal::reopen(&journal_path, &batch.batch, read.valid_len)?
        } else {
            let journal = Journal::create(&journal_path, &batch.batch)?;
            sync_dir(&self.dir)?;
            journal
        });
        Ok(pending)
    }

    /// Makes a freshly drained batch durable, with an empty journal, before
    /// any of it is handed out. Returns it as pending.
    pub fn start(&mut self, changes: &[Change]) -> anyhow::Result<Vec<Pending>> {
        let batch = uuid::Uuid::new_v4().to_string();
        let file = BatchFile {
            format: FORMAT,
            batch: batch.clone(),
            changes: changes.to_vec(),
        };
        write_atomically(&self.dir, BATCH, &serde_json::to_vec(&file)?)?;
        self.journal = Some(Journal::create(&self.dir.join(JOURNAL), &batch)?);
        sync_dir(&self.dir)?;
        Ok(file
            .changes
            .into_iter()
            .enumerate()
            .map(|(index, change)| Pending { index, change })
            .collect())
    }

    /// Acknowledges one change of the current batch: one appended journal
    /// line, one fdatasync.
    pub fn ack(&mut self, pending: &Pending) -> anyhow::Result<()> {
        let journal = self
            .journal
            .as_mut()
            .context("no batch is open: call pending() or start() first")?;
        journal.append(pending.index, &id_of(&pending.change))
    }

    /// Removes the current batch once every change in it is acknowledged.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.journal = None;
        remove_if_present(&self.dir.join(BATCH))?;
        sync_dir(&self.dir)?;
        // Harmless if a crash keeps it: its header names a batch gone.
        remove_if_present(&self.dir.join(JOURNAL))
    }

    pub fn add_dead_letter(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        let position = letter.change["position"].as_i64().unwrap_or_default();
        let name = format!("{position:020}-{}.json", id_of(&letter.change));
        write_atomically(
            &self.dir.join(DEAD),
            &name,
            &serde_json::to_vec_pretty(letter)?,
        )
    }

    /// Dead letters in log order, with their file names.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<(String, DeadLetter)>> {
        list_dead_letters(&self.dir)
    }

    pub fn remove_dead_letter(&self, name: &str) -> anyhow::Result<()> {
        fs::remove_file(self.dir.join(DEAD).join(name))?;
        sync_dir(&self.dir.join(DEAD))
    }
}

/// The dead letters of the buffer at `dir`, in log order, without taking
/// its lock (for listing while a pump runs: every file is written whole).
pub fn list_dead_letters(dir: &Path) -> anyhow::Result<Vec<(String, DeadLetter)>> {
    let dead = dir.join(DEAD);
    let entries = match fs::read_dir(&dead) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dead.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dead.join(&name);
            let letter = serde_json::from_slice(&fs::read(&path)?)
                .with_context(|| format!("{} is unreadable", path.display()))?;
            Ok((name, letter))
        })
        .collect()
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file =
        File::create(&temp).with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;
