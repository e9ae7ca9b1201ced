//! One process per buffer directory: the pump and `retry-dead-letters` hold
//! an exclusive lock on `<dir>/lock` for their whole run, so two of them can
//! never hand the same buffered change out twice.
//!
//! The lock is an advisory `flock` on an open file: the kernel drops it when
//! the process ends, however it ends (kill -9 included), so there is no stale
//! lock to clean up. The descriptor is close-on-exec, so a handler started by
//! the pump does not inherit it. It is only as good as the file system's
//! `flock`: keep the buffer on a local disk.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub const LOCK: &str = "lock";

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock at once or fails naming the directory; never waits.
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "the buffer directory {} is in use by another pump or retry-dead-letters \
                 (it holds {}); run one at a time per buffer directory",
                dir.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("herald-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let first = DirLock::acquire(&dir).unwrap_or_else(|e| panic!("{e}"));
        let refused = match DirLock::acquire(&dir) {
            Ok(_) => panic!("a second lock was granted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            refused.contains(&dir.display().to_string()),
            "the error names the directory: {refused}"
        );
        assert_eq!(first.path(), dir.join(LOCK));
        drop(first);
        assert!(DirLock::acquire(&dir).is_ok(), "free again once dropped");
        let _ = std::fs::remove_dir_all(dir);
    }
}
