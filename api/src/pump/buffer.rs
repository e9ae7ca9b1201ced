//! The pump's durable local buffer: the batch being delivered, and the
//! dead letters. Every write is atomic and durable: write a temp file, fsync
//! it, rename it over the old one, fsync the directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const PENDING: &str = "pending.json";
const DEAD: &str = "dead-letters";

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

pub struct Buffer {
    dir: PathBuf,
}

impl Buffer {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir.join(DEAD))
            .with_context(|| format!("cannot create the buffer directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The changes drained but not acknowledged yet, oldest first.
    pub fn pending(&self) -> anyhow::Result<Vec<Change>> {
        let path = self.dir.join(PENDING);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("the buffer {} is unreadable", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replaces the pending changes (an empty list removes the file).
    pub fn set_pending(&self, changes: &[Change]) -> anyhow::Result<()> {
        if changes.is_empty() {
            match fs::remove_file(self.dir.join(PENDING)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            return sync_dir(&self.dir);
        }
        write_atomically(&self.dir, PENDING, &serde_json::to_vec(changes)?)
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
        let mut names: Vec<String> = fs::read_dir(self.dir.join(DEAD))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let path = self.dir.join(DEAD).join(&name);
                let letter = serde_json::from_slice(&fs::read(&path)?)
                    .with_context(|| format!("{} is unreadable", path.display()))?;
                Ok((name, letter))
            })
            .collect()
    }

    pub fn remove_dead_letter(&self, name: &str) -> anyhow::Result<()> {
        fs::remove_file(self.dir.join(DEAD).join(name))?;
        sync_dir(&self.dir.join(DEAD))
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_changes_survive_reopening_and_empty_removes_them() {
        let dir = std::env::temp_dir().join(format!("herald-buffer-{}", uuid::Uuid::new_v4()));
        let buffer = Buffer::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(buffer.pending().unwrap_or_default().is_empty());
        let changes = vec![
            json!({"id": "a", "position": 1}),
            json!({"id": "b", "position": 2}),
        ];
        buffer
            .set_pending(&changes)
            .unwrap_or_else(|e| panic!("{e}"));
        let reopened = Buffer::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.pending().unwrap_or_default(), changes);
        reopened.set_pending(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.join(PENDING).exists());
        let letter = DeadLetter {
            change: changes[1].clone(),
            error: "exit 1".into(),
            attempts: 3,
            failed_at: "now".into(),
        };
        reopened
            .add_dead_letter(&letter)
            .unwrap_or_else(|e| panic!("{e}"));
        let letters = reopened.dead_letters().unwrap_or_default();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].1.change, changes[1]);
        reopened
            .remove_dead_letter(&letters[0].0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(reopened.dead_letters().unwrap_or_default().is_empty());
        let _ = fs::remove_dir_all(dir);
    }
}
