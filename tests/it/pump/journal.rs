//! What an acknowledgment costs, seen from outside: the batch file is
//! written once and never replaced, and each acknowledgment adds one short
//! line; a torn last journal line makes the pump deliver that change again
//! and nothing more.

use std::collections::BTreeMap;

use herald_tests::backend::temp_dir;
use herald_tests::{Backend, TestApp};

use super::{devices, lines, pump, script};

/// Name -> (inode, size) of every file directly in the buffer directory.
type Snapshot = BTreeMap<String, (u64, u64)>;

fn snapshots(text: &str) -> Vec<Snapshot> {
    text.split("--\n")
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| {
            chunk
                .lines()
                .map(|line| {
                    let mut fields = line.splitn(3, ' ');
                    let mut number = || {
                        fields
                            .next()
                            .and_then(|f| f.parse::<u64>().ok())
                            .unwrap_or_else(|| panic!("bad snapshot line {line:?}"))
                    };
                    let (inode, size) = (number(), number());
                    let name = fields.next().unwrap_or_default().to_owned();
                    (name, (inode, size))
                })
                .collect()
        })
        .collect()
}

fn total(snapshot: &Snapshot) -> u64 {
    snapshot.values().map(|(_, size)| size).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledgment_appends_a_short_line_and_never_rewrites_the_batch() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let a = app.create_app("a").await;
    let expected = devices(&app, &a.token, 40).await;
    let dir = temp_dir("pump-cost");
    let buffer = dir.join("buffer");
    let taken = dir.join("snapshots");
    // Before handling each change, notes every file of the buffer.
    let handler = script(
        &dir,
        "handler.sh",
        r#"cat > /dev/null
find "$2" -maxdepth 1 -type f -printf '%i %s %f\n' | sort -k3 >> "$1"
echo -- >> "$1""#,
    );
    let args = [
        "--".to_owned(),
        taken.display().to_string(),
        buffer.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pump(&app, &a.token, &buffer, &handler, &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let seen = snapshots(&std::fs::read_to_string(&taken).unwrap_or_default());
    assert_eq!(
        seen.len(),
        expected.len(),
        "one batch, one snapshot a change"
    );
    for (k, pair) in seen.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "no buffer file comes or goes within a batch (ack {})",
            k + 1
        );
        for (name, (inode, size)) in before {
            let (inode_after, size_after) = after[name];
            assert_eq!(
                *inode,
                inode_after,
                "ack {} replaced {name} (it rewrote the buffer)",
                k + 1
            );
            assert!(size_after >= *size, "ack {} shrank {name}", k + 1);
        }
        let grown = total(after) - total(before);
        assert!(
            (1..=128).contains(&grown),
            "ack {} wrote {grown} bytes to the buffer",
            k + 1
        );
    }
    assert!(
        std::fs::read_dir(&buffer)
            .map(|d| d
                .filter_map(Result::ok)
                .all(|e| e.path().is_dir() || e.file_name() == "lock"))
            .unwrap_or(false),
        "a finished batch leaves only the lock and the dead letters"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torn_last_journal_line_redelivers_only_that_change() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let a = app.create_app("a").await;
    let expected = devices(&app, &a.token, 6).await;
    let dir = temp_dir("pump-torn");
    let out = dir.join("delivered");
    // Kills the pump (its parent) on the third change, before its ack.
    let handler = script(
        &dir,
        "handler.sh",
        r#"cat > /dev/null
echo "$HERALD_CHANGE_ID" >> "$1"
if [ "$(wc -l < "$1")" -eq 3 ] && [ ! -e "$1.killed" ]; then
  touch "$1.killed"
  kill -9 $PPID
fi
exit 0"#,
    );
    let buffer = dir.join("buffer");
    let out_arg = out.display().to_string();
    let first = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(!first.status.success(), "the pump was killed");
    assert_eq!(lines(&out), expected[..3]);

    // As if the crash had come in the middle of appending the third ack.
    let journal = buffer.join("acks.log");
    let mut text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert_eq!(text.lines().count(), 3, "a header and two acks: {text}");
    text.push_str(&format!("2 {}", &expected[2][..20]));
    std::fs::write(&journal, text).unwrap_or_else(|e| panic!("{e}"));

    let second = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let mut wanted = expected[..3].to_vec();
    wanted.extend_from_slice(&expected[2..]);
    assert_eq!(lines(&out), wanted, "only the torn one came twice");
    assert!(!journal.exists(), "the finished batch's journal is gone");
    let _ = std::fs::remove_dir_all(dir);
}
