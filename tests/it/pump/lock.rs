//! One pump per buffer directory: a second pump, or `retry-dead-letters`,
//! on a directory in use is refused at once, names the directory, and hands
//! nothing out; listing the dead letters still works.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_tests::backend::temp_dir;
use herald_tests::{Backend, TestApp};

use super::{BIN, devices, lines, pump, pump_command, script, wait_for_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_pump_on_the_same_directory_is_refused_while_the_first_runs() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let a = app.create_app("a").await;
    let expected = devices(&app, &a.token, 3).await;
    let dir = temp_dir("pump-lock");
    let out = dir.join("delivered");
    // Holds the first change until the test says go (at most 30 s).
    let handler = script(
        &dir,
        "handler.sh",
        r#"cat > /dev/null
echo "$HERALD_CHANGE_ID" >> "$1"
if [ ! -e "$1.started" ]; then
  touch "$1.started"
  i=0
  while [ ! -e "$1.go" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
fi
exit 0"#,
    );
    let buffer = dir.join("buffer");
    let out_arg = out.display().to_string();
    let first = pump_command(&app.url(""), &a.token, &buffer, &handler, &["--", &out_arg])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_file(&dir.join("delivered.started")).await;

    let asked = Instant::now();
    let second = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(!second.status.success(), "a second pump ran");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&buffer.display().to_string()) && stderr.contains("in use"),
        "the refusal names the directory: {stderr}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "refused at once, not after waiting"
    );
    let retry = Command::new(BIN)
        .args(["changes", "retry-dead-letters", "--buffer-dir"])
        .arg(&buffer)
        .arg("--exec")
        .arg(&handler)
        .args(["--", &out_arg])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !retry.status.success(),
        "retry-dead-letters ran beside a pump"
    );
    assert!(String::from_utf8_lossy(&retry.stderr).contains(&buffer.display().to_string()));
    let listed = Command::new(BIN)
        .args(["changes", "dead-letters", "--buffer-dir"])
        .arg(&buffer)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(listed.status.success(), "listing only reads");
    assert_eq!(
        lines(&out),
        expected[..1],
        "the refused ones handed nothing out"
    );

    std::fs::write(dir.join("delivered.go"), "").unwrap_or_else(|e| panic!("{e}"));
    let first = first.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(lines(&out), expected, "each change exactly once");
    // The lock went with the first pump.
    let third = pump(&app, &a.token, &buffer, &handler, &["--", &out_arg]);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(lines(&out), expected);
    let _ = std::fs::remove_dir_all(dir);
}
