//! `herald serve` as a child process on a free port: started, crashed with
//! SIGKILL, started again on the same database; and the CLI's one-shot
//! commands (`herald verify`) on that database.
//!
//! The binary's path comes from the test (`env!("CARGO_BIN_EXE_…")` is only
//! defined for test targets, not for this library).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a start may take before the test fails.
const START_WITHIN: Duration = Duration::from_secs(60);
/// Log lines kept for a failure message.
const KEPT_LINES: usize = 200;

/// What to run: the same spec starts the process again on the same data.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub bin: PathBuf,
    /// The data directory (the SQLite file, unless `database_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://…`, or `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub root_token: String,
    /// Extra environment, e.g. `HERALD_DB_MAX_CONNECTIONS`.
    pub envs: Vec<(String, String)>,
}

/// A running `herald serve`; killed (SIGKILL) when dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeSpec {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("HERALD_DATABASE_URL")
            .env_remove("HERALD_ROOT_TOKEN")
            .env("RUST_LOG", "herald=info,api=info,infra=info")
            // The same key on every start: secrets sealed by one run open in the next.
            .env(
                "HERALD_SECRET_KEY",
                "reliability-suite-secret-key-0123456789",
            )
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(url) = &self.database_url {
            command.env("HERALD_DATABASE_URL", url);
        }
        command
    }

    /// Starts `herald serve` on 127.0.0.1 and a free port; returns once it
    /// logs that it is listening. Blocks: call it from `spawn_blocking`
    /// while other tasks must go on.
    pub fn start(&self) -> Served {
        let mut child = self
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .env("HERALD_ROOT_TOKEN", &self.root_token)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let (first_lines, listening) = std::sync::mpsc::channel::<String>();
        let kept = lines.clone();
        // Drains stderr for the process's whole life (a full pipe would
        // block it), keeps the last lines, hands them over until it listens.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = first_lines.send(line.clone());
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            let line = listening.recv_timeout(START_WITHIN).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("herald did not start listening within {START_WITHIN:?}: {seen:#?}")
            });
            if let Some(addr) = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                break addr;
            }
            seen.push(line);
        };
        Served { child, addr, lines }
    }

    /// Runs a one-shot command (`verify`, say) on this database.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }
}

impl Served {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash: no shutdown code runs. Returns once reaped.
    pub fn kill9(mut self) -> ExitStatus {
        // `Child::kill` sends SIGKILL on Unix.
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill herald: {e}"));
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot reap herald: {e}"))
    }

    /// The process's last log lines (for failure messages).
    pub fn recent_log(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}
