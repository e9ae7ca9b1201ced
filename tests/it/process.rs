//! The `herald` binary as a process: first start, the root token, SIGTERM,
//! trace export, `herald migrate`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_tests::backend::temp_dir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

struct Herald {
    child: Child,
    addr: String,
    stderr: Vec<String>,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `herald serve` on a free port and waits for its "listening" line.
fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Herald {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_ROOT_TOKEN")
        .env("RUST_LOG", "herald=info,api=info,infra=info")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start herald: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    // A thread drains stderr (so the child never blocks on a full pipe) and
    // hands the lines over.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("herald did not start listening: {seen:?}"));
        if let Some(rest) = line.split("address=").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        seen.push(line);
    };
    Herald {
        child,
        addr,
        stderr: seen,
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
}

async fn post_app(addr: &str, token: &str) -> serde_json::Value {
    herald_tests::app::install_crypto();
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/apps"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "p"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.unwrap_or_default()
}

#[tokio::test]
async fn first_start_prints_the_root_token_once_and_saves_it_privately() {
    let dir = temp_dir("first-start");
    let first = start(&dir, &[]);
    let token = std::fs::read_to_string(dir.join("root-token")).unwrap_or_default();
    assert!(token.starts_with("hr_"), "{token}");
    assert!(
        first.stderr.iter().any(|l| l.contains(&token)),
        "the token is printed on first start"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(dir.join("root-token")).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }
    post_app(&first.addr, token.trim()).await;
    drop(first);
    let second = start(&dir, &[]);
    assert!(
        !second.stderr.iter().any(|l| l.contains(token.trim())),
        "printed only once"
    );
    post_app(&second.addr, token.trim()).await;
    let _ = std::fs::remove_dir_all(dir);
}

herald_tests::on_both!(sigterm_lets_an_in_flight_request_finish, sigterm_drains);
async fn sigterm_drains(backend: herald_tests::Backend) {
    let dir = temp_dir("sigterm");
    // On PostgreSQL, a private schema (the TestDb's) through the URL.
    let db = match backend {
        herald_tests::Backend::Sqlite => None,
        herald_tests::Backend::Postgres => match herald_tests::TestDb::new(backend).await {
            Some(db) => Some(db),
            None => return,
        },
    };
    let url = db.as_ref().and_then(|d| d.url()).unwrap_or_default();
    let mut envs = vec![("HERALD_ROOT_TOKEN", "hr_sigterm")];
    if !url.is_empty() {
        envs.push(("HERALD_DATABASE_URL", url.as_str()));
    }
    let mut herald = start(&dir, &envs);
    let app = post_app(&herald.addr, "hr_sigterm").await;
    let key = app["api_key"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let body = br#"{"push_token":"t","send_platform":"fcm","device_platform":"android"}"#;
    let mut stream = TcpStream::connect(&herald.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "PUT /v1/devices/in-flight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // "100 Continue" proves the handler is reading the body: the request is in flight.
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    sigterm(&herald.child);
    // Once new connections are refused, the server is draining.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&herald.addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "herald kept accepting after SIGTERM"
        );
        tokio::task::yield_now().await;
    }
    stream
        .write_all(body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let pid = herald.child.id();
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || herald.child.wait()),
    )
    .await
    .unwrap_or_else(|_| panic!("herald (pid {pid}) did not exit after SIGTERM"));
    assert!(
        status.is_ok_and(|s| s.is_ok_and(|s| s.success())),
        "herald exits cleanly after draining"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn otlp_endpoint_turns_on_trace_export() {
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let endpoint = format!(
        "http://{}",
        collector.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let dir = temp_dir("otlp");
    let herald = start(
        &dir,
        &[
            ("HERALD_ROOT_TOKEN", "hr_otlp"),
            ("HERALD_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let app = post_app(&herald.addr, "hr_otlp").await;
    let key = app["api_key"]["token"].as_str().unwrap_or_default();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(60), collector.accept())
        .await
        .unwrap_or_else(|_| panic!("no trace export arrived"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut preface = [0u8; 24];
    conn.read_exact(&mut preface)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        &preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "OTLP over gRPC speaks HTTP/2"
    );
    // The trace id reaches the log too.
    let events: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/v1/events", herald.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let trace_id = events["events"][0]["metadata"]["trace_id"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(trace_id.len(), 32, "{events}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn migrate_prepares_a_fresh_database() {
    let dir = temp_dir("migrate");
    // An operator's command on a directory without a database says so, and
    // makes none.
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(&dir)
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Herald database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.exists(), "verify made a data directory");
    let out = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(&dir)
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("herald.db").exists());
    let bad = Command::new(BIN)
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("postgres://"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Durations past ten years would overflow the clock's arithmetic (a
/// connection's deadline is `now + timeout`): `serve` refuses them before
/// it starts, naming the setting and its range, and never serves.
#[test]
fn serve_refuses_durations_out_of_range() {
    let dir = temp_dir("ranges");
    for (flag, value) in [
        ("--header-timeout-seconds", "18446744073709551615"),
        ("--idle-timeout-seconds", "315360001"),
        ("--body-timeout-seconds", "0"),
        ("--callback-ttl-seconds", "0"),
        ("--webhook-disable-after-hours", "87601"),
        ("--webhook-retention-days", "3651"),
        ("--push-max-retries", "4294967295"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args([flag, value])
            .env_remove("HERALD_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("is not in"),
            "{flag} {value}: {stderr}"
        );
        assert!(!dir.join("herald.db").exists(), "{flag}: it started");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_campaign_on_a_fresh_serve_completes_with_correct_counters() {
    let dir = temp_dir("campaign");
    let herald = start(&dir, &[]);
    let root = std::fs::read_to_string(dir.join("root-token")).unwrap_or_default();
    let app = post_app(&herald.addr, root.trim()).await;
    let key = app["api_key"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::new();
    let base = format!("http://{}", herald.addr);
    for (id, send, platform) in [
        ("a", "fcm", "android"),
        ("b", "fcm", "android"),
        ("c", "apns", "ios"),
    ] {
        let resp = client
            .put(format!("{base}/v1/devices/{id}"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"push_token": format!("t-{id}"), "send_platform": send, "device_platform": platform}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 201);
    }
    let created: serde_json::Value = client
        .post(format!("{base}/v1/notifications"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"title": "Hello", "body": "From a fresh serve",
            "conditions": {"key": "has_permission", "operator": "bool_eq", "value": true}, "launch": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let mut done = serde_json::Value::Null;
    for _ in 0..500 {
        done = client
            .get(format!("{base}/v1/notifications/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        if done["status"] == "sent" || done["status"] == "error" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        done["sent"],
        serde_json::json!({"android": 2, "ios": 1, "web": 0})
    );
    assert_eq!(
        done["failed"],
        serde_json::json!({"android": 0, "ios": 0, "web": 0})
    );
    drop(herald);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn healthcheck_answers_for_a_ready_node_and_fails_without_one() {
    let dir = temp_dir("healthcheck");
    let herald = start(&dir, &[("HERALD_ROOT_TOKEN", "hr_healthcheck")]);
    let check = |listen: &str| {
        Command::new(BIN)
            .args(["healthcheck", "--timeout-seconds", "2"])
            .env("HERALD_LISTEN", listen)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let port = herald
        .addr
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    // As the container sets it: the wildcard address the node listens on.
    let ok = check(&format!("0.0.0.0:{port}"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    drop(herald);
    let down = check(&format!("127.0.0.1:{port}"));
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}
