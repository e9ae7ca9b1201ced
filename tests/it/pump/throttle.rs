//! A server that answers 429 or 503 is waited out as its Retry-After asks
//! (with backoff when it says nothing), within --max-wait-seconds; against
//! a local stand-in that scripts the answers.

use std::time::{Duration, Instant};

use herald_tests::backend::temp_dir;
use herald_tests::receiver::{Receiver, Reply};
use serde_json::{Value, json};

use super::{lines, pump_command, script};

fn batch(ids: &[&str]) -> Value {
    let changes: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "type": "device.registered", "position": i + 1,
                   "subject": {"kind": "device", "id": format!("d{i}")}, "data": {},
                   "at": "2026-11-22T10:00:00.000000Z"})
        })
        .collect();
    json!({"changes": changes, "remaining": 0})
}

fn retry_after(status: u16, seconds: &str) -> Reply {
    Reply::WithHeaders(status, vec![("retry-after", seconds.to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_and_a_503_with_retry_after_are_waited_out_then_the_batch_is_delivered() {
    let server = Receiver::start().await;
    server.script([
        retry_after(429, "1"),
        retry_after(503, "1"),
        Reply::Json(batch(&["c1", "c2"])),
        Reply::Json(batch(&[])),
    ]);
    let dir = temp_dir("pump-429");
    let out = dir.join("delivered");
    let handler = script(
        &dir,
        "handler.sh",
        r#"cat > /dev/null
echo "$HERALD_CHANGE_ID" >> "$1""#,
    );
    let out_arg = out.display().to_string();
    let mut command = pump_command(
        &server.url(""),
        "hk_test",
        &dir.join("buffer"),
        &handler,
        &["--", &out_arg],
    );
    let run = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(lines(&out), ["c1", "c2"]);
    let got = server.received();
    assert_eq!(got.len(), 4, "429, 503, the batch, the empty queue");
    for request in &got {
        assert_eq!(request.path, "/v1/change-queues/default/changes");
        assert_eq!(request.header("authorization"), Some("Bearer hk_test"));
    }
    for (k, pair) in got.windows(2).take(2).enumerate() {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_secs(1),
            "drain {} came {waited:?} after a Retry-After of 1 s",
            k + 2
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retry_after_it_backs_off_and_it_stops_past_max_wait() {
    let server = Receiver::start().await;
    server.script([
        Reply::Status(503),
        retry_after(429, "3600"),
        Reply::Json(batch(&["never"])),
    ]);
    let dir = temp_dir("pump-wait");
    let out = dir.join("delivered");
    let handler = script(
        &dir,
        "handler.sh",
        r#"cat > /dev/null
echo "$HERALD_CHANGE_ID" >> "$1""#,
    );
    let out_arg = out.display().to_string();
    let mut command = pump_command(
        &server.url(""),
        "hk_test",
        &dir.join("buffer"),
        &handler,
        &["--max-wait-seconds", "5", "--", &out_arg],
    );
    let started = Instant::now();
    let run = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!run.status.success(), "an hour's wait is past the limit");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it gave up at once instead of sleeping: {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("429") && stderr.contains("--max-wait-seconds"),
        "{stderr}"
    );
    let got = server.received();
    assert_eq!(got.len(), 2, "the 503 was retried, the 429 was not");
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "a 503 without Retry-After backs off"
    );
    assert!(lines(&out).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
