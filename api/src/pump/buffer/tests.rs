use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::*;

fn temp() -> PathBuf {
    std::env::temp_dir().join(format!("herald-buffer-{}", uuid::Uuid::new_v4()))
}

fn open(dir: &Path) -> Buffer {
    Buffer::open(dir).unwrap_or_else(|e| panic!("{e:#}"))
}

fn changes(n: usize) -> Vec<Change> {
    (0..n)
        .map(|i| json!({"id": format!("c{i}"), "position": i + 1, "data": {"n": i}}))
        .collect()
}

fn ids(pending: &[Pending]) -> Vec<String> {
    pending.iter().map(|p| id_of(&p.change)).collect()
}

#[test]
fn pending_is_the_batch_minus_the_acknowledged_across_reopening() {
    let dir = temp();
    let mut buffer = open(&dir);
    assert!(buffer.pending().unwrap_or_default().is_empty());
    let started = buffer
        .start(&changes(4))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ids(&started), ["c0", "c1", "c2", "c3"]);
    buffer.ack(&started[0]).unwrap_or_else(|e| panic!("{e:#}"));
    buffer.ack(&started[2]).unwrap_or_else(|e| panic!("{e:#}"));
    drop(buffer);

    let mut reopened = open(&dir);
    let pending = reopened.pending().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ids(&pending), ["c1", "c3"]);
    assert_eq!(pending[1].change, changes(4)[3], "kept verbatim");
    for p in &pending {
        reopened.ack(p).unwrap_or_else(|e| panic!("{e:#}"));
    }
    drop(reopened);
    let mut done = open(&dir);
    assert!(done.pending().unwrap_or_default().is_empty());
    assert!(!dir.join(BATCH).exists(), "a finished batch is removed");
    assert!(!dir.join(JOURNAL).exists());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_ack_appends_one_short_record_and_never_rewrites_the_batch() {
    let dir = temp();
    let mut buffer = open(&dir);
    let pending = buffer
        .start(&changes(200))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let batch = fs::metadata(dir.join(BATCH)).unwrap_or_else(|e| panic!("{e}"));
    let batch_bytes = fs::read(dir.join(BATCH)).unwrap_or_default();
    let mut journal_len = fs::metadata(dir.join(JOURNAL)).map_or(0, |m| m.len());
    for p in &pending {
        buffer.ack(p).unwrap_or_else(|e| panic!("{e:#}"));
        let len = fs::metadata(dir.join(JOURNAL)).map_or(0, |m| m.len());
        assert!(
            len > journal_len && len - journal_len <= 64,
            "one ack grew the journal from {journal_len} to {len} bytes"
        );
        journal_len = len;
    }
    let after = fs::metadata(dir.join(BATCH)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.ino(), batch.ino(), "the batch file was replaced");
    assert_eq!(fs::read(dir.join(BATCH)).unwrap_or_default(), batch_bytes);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_torn_journal_tail_redelivers_that_change_and_is_cut_off() {
    let dir = temp();
    let mut buffer = open(&dir);
    let pending = buffer
        .start(&changes(3))
        .unwrap_or_else(|e| panic!("{e:#}"));
    buffer.ack(&pending[0]).unwrap_or_else(|e| panic!("{e:#}"));
    drop(buffer);
    let mut journal = fs::OpenOptions::new()
        .append(true)
        .open(dir.join(JOURNAL))
        .unwrap_or_else(|e| panic!("{e}"));
    journal
        .write_all(b"1 c1 0a")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(journal);

    let mut reopened = open(&dir);
    let pending = reopened.pending().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ids(&pending), ["c1", "c2"]);
    reopened
        .ack(&pending[0])
        .unwrap_or_else(|e| panic!("{e:#}"));
    drop(reopened);
    let mut again = open(&dir);
    assert_eq!(ids(&again.pending().unwrap_or_default()), ["c2"]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_stale_journal_does_not_acknowledge_a_new_batch() {
    let dir = temp();
    let mut buffer = open(&dir);
    let first = buffer
        .start(&changes(2))
        .unwrap_or_else(|e| panic!("{e:#}"));
    buffer.ack(&first[0]).unwrap_or_else(|e| panic!("{e:#}"));
    let stale = fs::read(dir.join(JOURNAL)).unwrap_or_default();
    // A crash after a new batch was written, before its journal was.
    buffer
        .start(&changes(2))
        .unwrap_or_else(|e| panic!("{e:#}"));
    fs::write(dir.join(JOURNAL), stale).unwrap_or_else(|e| panic!("{e}"));
    drop(buffer);
    let mut reopened = open(&dir);
    let pending = reopened.pending().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ids(&pending), ["c0", "c1"]);
    reopened
        .ack(&pending[1])
        .unwrap_or_else(|e| panic!("{e:#}"));
    drop(reopened);
    assert_eq!(ids(&open(&dir).pending().unwrap_or_default()), ["c0"]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_buffer_of_earlier_versions_is_taken_over() {
    let dir = temp();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let legacy = serde_json::to_vec(&changes(2)).unwrap_or_default();
    fs::write(dir.join(LEGACY_PENDING), legacy).unwrap_or_else(|e| panic!("{e}"));
    let mut buffer = open(&dir);
    assert!(!dir.join(LEGACY_PENDING).exists());
    assert_eq!(ids(&buffer.pending().unwrap_or_default()), ["c0", "c1"]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_second_open_is_refused_while_the_first_holds_the_lock() {
    let dir = temp();
    let buffer = open(&dir);
    let second = Buffer::open(&dir).map(|_| ());
    let message = second.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(message.contains(&dir.display().to_string()), "{message}");
    drop(buffer);
    assert!(Buffer::open(&dir).is_ok());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn dead_letters_are_listed_in_log_order_and_removed() {
    let dir = temp();
    let buffer = open(&dir);
    for change in changes(3).into_iter().rev() {
        let letter = DeadLetter {
            change,
            error: "exit 1".into(),
            attempts: 3,
            failed_at: "now".into(),
        };
        buffer
            .add_dead_letter(&letter)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    let letters = list_dead_letters(&dir).unwrap_or_default();
    let listed: Vec<String> = letters.iter().map(|(_, l)| id_of(&l.change)).collect();
    assert_eq!(listed, ["c0", "c1", "c2"]);
    buffer
        .remove_dead_letter(&letters[0].0)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(buffer.dead_letters().unwrap_or_default().len(), 2);
    assert!(list_dead_letters(&dir.join("absent")).is_ok_and(|l| l.is_empty()));
    let _ = fs::remove_dir_all(dir);
}
