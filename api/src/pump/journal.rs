//! The acknowledgment journal (`acks.log`): an append-only text file, one
//! short line per acknowledged change of the current batch, so that an
//! acknowledgment costs one small append and one `fdatasync`, whatever the
//! size of the batch.
//!
//! ```text
//! herald-pump-acks/1 <batch id>
//! <index> <change id> <checksum>
//! ...
//! ```
//!
//! `<index>` is the change's place in the batch file, `<checksum>` eight hex
//! digits of FNV-1a (32 bits) over `<batch id> <index> <change id>`. A
//! journal whose header names another batch is stale (left by a crash
//! between two batches) and holds no acknowledgment. Reading stops at the
//! first line that is incomplete (no newline: a torn append), fails its
//! checksum or does not match the batch: that line and any after it are
//! dropped, so those changes are delivered again (at-least-once).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context;

const MAGIC: &str = "herald-pump-acks/1";

/// What a journal's bytes say about one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// Indexes of the acknowledged changes.
    pub acked: BTreeSet<usize>,
    /// Bytes of the header and the valid records; anything after is garbage.
    pub valid_len: usize,
    /// The header names this batch.
    pub header_ok: bool,
}

pub fn header(batch: &str) -> String {
    format!("{MAGIC} {batch}\n")
}

pub fn record(batch: &str, index: usize, id: &str) -> String {
    format!("{index} {id} {:08x}\n", checksum(batch, index, id))
}

fn checksum(batch: &str, index: usize, id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in format!("{batch} {index} {id}").bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Reads a journal of `batch`, whose change ids are `ids` (in batch order).
pub fn read(bytes: &[u8], batch: &str, ids: &[String]) -> Read {
    let mut out = Read::default();
    let expected = header(batch);
    if !bytes.starts_with(expected.as_bytes()) {
        return out;
    }
    out.header_ok = true;
    out.valid_len = expected.len();
    let mut rest = &bytes[expected.len()..];
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let Some(index) = parse_record(&rest[..end], batch, ids) else {
            break;
        };
        out.acked.insert(index);
        out.valid_len += end + 1;
        rest = &rest[end + 1..];
    }
    out
}

fn parse_record(line: &[u8], batch: &str, ids: &[String]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    let (index, rest) = line.split_once(' ')?;
    let (id, sum) = rest.rsplit_once(' ')?;
    let index: usize = index.parse().ok()?;
    let sum = u32::from_str_radix(sum, 16).ok()?;
    (ids.get(index).map(String::as_str) == Some(id) && sum == checksum(batch, index, id))
        .then_some(index)
}

/// The journal open for appending.
pub struct Journal {
    file: File,
    batch: String,
}

impl Journal {
    /// Starts an empty journal for `batch`, replacing whatever was there.
    pub fn create(path: &Path, batch: &str) -> anyhow::Result<Self> {
        let mut file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(header(batch).as_bytes())?;
        file.sync_data()
            .with_context(|| format!("cannot sync {}", path.display()))?;
        Ok(Self {
            file,
            batch: batch.to_owned(),
        })
    }

    /// Opens an existing journal whose first `valid_len` bytes are valid,
    /// cutting off (durably) whatever follows them.
    pub fn reopen(path: &Path, batch: &str, valid_len: usize) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata()?.len();
        let valid = u64::try_from(valid_len)?;
        if len > valid {
            tracing::warn!(
                journal = %path.display(),
                dropped_bytes = len - valid,
                "dropped a torn or corrupt journal tail; those changes will be delivered again"
            );
            file.set_len(valid)?;
            file.sync_data()?;
        }
        Ok(Self {
            file,
            batch: batch.to_owned(),
        })
    }

    /// Records that change `index` (id `id`) is done, durably.
    pub fn append(&mut self, index: usize, id: &str) -> anyhow::Result<()> {
        self.file
            .write_all(record(&self.batch, index, id).as_bytes())
            .context("cannot append to the acknowledgment journal")?;
        self.file
            .sync_data()
            .context("cannot sync the acknowledgment journal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        ["a", "b", "c"].map(str::to_owned).to_vec()
    }

    fn journal(records: &[(usize, &str)]) -> String {
        let mut text = header("B1");
        for (index, id) in records {
            text.push_str(&record("B1", *index, id));
        }
        text
    }

    #[test]
    fn records_are_read_back() {
        let text = journal(&[(0, "a"), (2, "c")]);
        let read = read(text.as_bytes(), "B1", &ids());
        assert!(read.header_ok);
        assert_eq!(read.acked, BTreeSet::from([0, 2]));
        assert_eq!(read.valid_len, text.len());
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let whole = journal(&[(0, "a")]);
        let torn = format!("{whole}{}", &record("B1", 1, "b")[..5]);
        let read = read(torn.as_bytes(), "B1", &ids());
        assert_eq!(read.acked, BTreeSet::from([0]));
        assert_eq!(read.valid_len, whole.len());
        // A file extended with zeros by a crash, too.
        let zeros = format!("{whole}\0\0\0\0");
        assert_eq!(read_acked(zeros.as_bytes()), BTreeSet::from([0]));
    }

    fn read_acked(bytes: &[u8]) -> BTreeSet<usize> {
        read(bytes, "B1", &ids()).acked
    }

    #[test]
    fn a_bad_record_ends_the_journal() {
        let good = journal(&[(0, "a")]);
        let bad_sum = format!("{good}1 b 00000000\n{}", record("B1", 2, "c"));
        assert_eq!(read_acked(bad_sum.as_bytes()), BTreeSet::from([0]));
        let wrong_id = format!("{good}{}", record("B1", 1, "c"));
        assert_eq!(read_acked(wrong_id.as_bytes()), BTreeSet::from([0]));
        let out_of_range = format!("{good}{}", record("B1", 3, "d"));
        assert_eq!(read_acked(out_of_range.as_bytes()), BTreeSet::from([0]));
    }

    #[test]
    fn a_journal_of_another_batch_holds_nothing() {
        let mut text = header("B0");
        text.push_str(&record("B0", 0, "a"));
        let read = read(text.as_bytes(), "B1", &ids());
        assert!(!read.header_ok);
        assert!(read.acked.is_empty());
        // A torn header, likewise.
        assert!(!super::read(&header("B1").as_bytes()[..10], "B1", &ids()).header_ok);
        // A record copied from another batch fails its checksum.
        let foreign = format!("{}{}", header("B1"), record("B0", 0, "a"));
        assert!(read_acked(foreign.as_bytes()).is_empty());
    }

    #[test]
    fn appends_survive_reopening_and_a_torn_tail_is_cut_off() {
        let dir = std::env::temp_dir().join(format!("herald-journal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("acks.log");
        let mut journal = Journal::create(&path, "B1").unwrap_or_else(|e| panic!("{e}"));
        journal.append(1, "b").unwrap_or_else(|e| panic!("{e}"));
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        bytes.extend_from_slice(b"2 c 12");
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let found = read(&bytes, "B1", &ids());
        assert_eq!(found.acked, BTreeSet::from([1]));
        let mut journal =
            Journal::reopen(&path, "B1", found.valid_len).unwrap_or_else(|e| panic!("{e}"));
        journal.append(2, "c").unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert_eq!(read_acked(&bytes), BTreeSet::from([1, 2]));
        let _ = std::fs::remove_dir_all(dir);
    }
}
