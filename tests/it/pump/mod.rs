//! `herald changes pump` against a running Herald: killed mid-batch it
//! redelivers exactly the unacknowledged changes; a poison change ends in the
//! dead letters without blocking the rest, and can be re-driven. The
//! submodules: what an acknowledgment costs and a torn journal (`journal`),
//! one pump per buffer directory (`lock`), 429/503 waited out (`throttle`).

mod journal;
mod lock;
mod throttle;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

fn pump(app: &TestApp, token: &str, buffer: &Path, handler: &Path, extra: &[&str]) -> Output {
    pump_command(&app.url(""), token, buffer, handler, extra)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `herald changes pump` against the server at `url`.
fn pump_command(url: &str, token: &str, buffer: &Path, handler: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["changes", "pump", "--url", url, "--buffer-dir"])
        .arg(buffer)
        .arg("--exec")
        .arg(handler)
        .args(extra)
        .env("HERALD_TOKEN", token);
    command
}

/// Waits (at most 30 s) until `path` exists.
async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within 30 s",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 30 s) until the default queue holds `n` changes.
async fn wait_for_depth(app: &TestApp, token: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queues = app.get("/v1/change-queues", token).await;
        if queues.body["change_queues"][0]["depth"] == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not reach {n}: {}",
            queues.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers devices `d0..dN`; returns their integration event ids in log order.
async fn devices(app: &TestApp, token: &str, n: usize) -> Vec<String> {
    for i in 0..n {
        let body = device_body(&format!("t{i}"));
        let status = app
            .put(&format!("/v1/devices/d{i}"), token, body)
            .await
            .status;
        assert_eq!(status, 201);
    }
    let ids = integration_ids(app, token).await;
    assert_eq!(ids.len(), n);
    wait_for_depth(app, token, n).await;
    ids
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The ids of the app's integration events, in log order.
async fn integration_ids(app: &TestApp, token: &str) -> Vec<String> {
    app.events(token)
        .await
        .iter()
        .filter(|e| {
            let t = e["event_type"].as_str().unwrap_or_default();
            t.starts_with("device.") || t.starts_with("user.")
        })
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect()
}

on_both!(
    a_pump_killed_mid_batch_redelivers_only_the_unacknowledged,
    killed
);
async fn killed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    for i in 0..6 {
        let body = device_body(&format!("t{i}"));
        assert_eq!(
            app.put(&format!("/v1/devices/d{i}"), &a.token, body)
                .await
                .status,
            201
        );
    }
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({})).await.status,
        201
    );
    let expected = integration_ids(&app, &a.token).await;
    assert_eq!(expected.len(), 7);
    // The change queue's feed follows the log apart from the commands.
    app.settled().await;

    let dir = herald_tests::backend::temp_dir("pump");
    let out = dir.join("delivered");
    // Records the change, and on the third one kills the pump (its parent)
    // before the pump can acknowledge it.
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
    // The whole batch was drained and is held locally, not on the server.
    let queue = app.get("/v1/change-queues", &a.token).await;
    assert_eq!(queue.body["change_queues"][0]["depth"], 0);

    let second = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let mut wanted = expected[..3].to_vec();
    wanted.extend_from_slice(&expected[2..]);
    assert_eq!(lines(&out), wanted, "only the change in flight came twice");

    // Nothing left: a third run delivers nothing new.
    let third = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(third.status.success());
    assert_eq!(lines(&out).len(), wanted.len());
    let _ = std::fs::remove_dir_all(dir);
}

on_both!(
    a_poison_change_goes_to_the_dead_letters_and_can_be_redriven,
    poison
);
async fn poison(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    for name in ["d1", "poison", "d3"] {
        let body = device_body("t");
        assert_eq!(
            app.put(&format!("/v1/devices/{name}"), &a.token, body)
                .await
                .status,
            201
        );
    }
    let expected = integration_ids(&app, &a.token).await;
    app.settled().await;
    let dir = herald_tests::backend::temp_dir("poison");
    let out = dir.join("delivered");
    let handler = script(
        &dir,
        "handler.sh",
        r#"if grep -q '"id":"poison"' && [ -z "$FIXED" ]; then exit 1; fi
echo "$HERALD_CHANGE_ID" >> "$1""#,
    );
    let buffer = dir.join("buffer");
    let out_arg = out.display().to_string();
    let run = pump(
        &app,
        &a.token,
        &buffer,
        &handler,
        &["--max-retries", "1", "--", &out_arg],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(lines(&out), [expected[0].clone(), expected[2].clone()]);

    let listed = Command::new(BIN)
        .args(["changes", "dead-letters", "--buffer-dir"])
        .arg(&buffer)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].as_str(), Some(expected[1].as_str()));
    assert_eq!(listed[0]["attempts"], 2);
    // Piped into a reader that is gone (`| head -c 0`): a quiet end, no panic.
    let mut piped = Command::new(BIN)
        .args(["changes", "dead-letters", "--buffer-dir"])
        .arg(&buffer)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    drop(piped.stdout.take());
    let piped = piped.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let retry = |fixed: bool| {
        let mut command = Command::new(BIN);
        command
            .args([
                "changes",
                "retry-dead-letters",
                "--max-retries",
                "0",
                "--buffer-dir",
            ])
            .arg(&buffer)
            .arg("--exec")
            .arg(&handler)
            .args(["--", &out_arg]);
        if fixed {
            command.env("FIXED", "1");
        }
        command.output().unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(!retry(false).status.success(), "still failing");
    let fixed = retry(true);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(lines(&out).last(), Some(&expected[1]));

    // With --on-error halt, the run stops and the change stays buffered.
    let body = device_body("t");
    let changed = device_body("t2");
    assert_eq!(
        app.put("/v1/devices/poison", &a.token, changed)
            .await
            .status,
        200
    );
    assert_eq!(app.put("/v1/devices/d9", &a.token, body).await.status, 201);
    app.settled().await;
    let halted = pump(
        &app,
        &a.token,
        &buffer,
        &handler,
        &["--max-retries", "0", "--on-error", "halt", "--", &out_arg],
    );
    assert!(!halted.status.success());
    let before = lines(&out).len();
    let resumed = Command::new(BIN)
        .args(["changes", "pump", "--url", &app.url(""), "--buffer-dir"])
        .arg(&buffer)
        .arg("--exec")
        .arg(&handler)
        .args(["--", &out_arg])
        .env("HERALD_TOKEN", &a.token)
        .env("FIXED", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(resumed.status.success());
    assert_eq!(
        lines(&out).len(),
        before + 2,
        "the halted change, then the next"
    );
    let _ = std::fs::remove_dir_all(dir);
}
