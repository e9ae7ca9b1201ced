//! A throwaway PostgreSQL cluster that a test creates, stops, starts again
//! and removes, so that it can take the database away for real without
//! touching the shared server.
//!
//! It runs the installed PostgreSQL binaries (`HERALD_TEST_PG_BIN`, else
//! `/usr/lib/postgresql/15/bin`, else the newest version there) on
//! 127.0.0.1 and a free port, with trust authentication and fsync off, in
//! memory (`/dev/shm`) where there is some. `initdb` refuses to run as
//! root, so as root every PostgreSQL command runs as the `postgres` user
//! (`runuser`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// `HERALD_TEST_PG_BIN`, else PostgreSQL 15's, else the newest installed.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HERALD_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let preferred = root.join("15/bin");
    if preferred.is_dir() {
        return preferred;
    }
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max();
    newest.map_or(preferred, |version| root.join(format!("{version}/bin")))
}

pub struct PgCluster {
    /// Owned by the user PostgreSQL runs as; holds `data/`, the log, the socket.
    base: PathBuf,
    bin: PathBuf,
    run_as_postgres: bool,
    pub addr: SocketAddr,
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Memory-backed when there is one: `initdb` writes tens of megabytes, which
/// takes seconds on a busy disk.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl PgCluster {
    /// A new cluster, started; `Err` says why one cannot be made here.
    pub fn create() -> Result<Self, String> {
        let bin = bin_dir();
        for tool in ["initdb", "pg_ctl"] {
            if !bin.join(tool).is_file() {
                return Err(format!("{} not found", bin.join(tool).display()));
            }
        }
        let run_as_postgres = is_root();
        let base = scratch().join(format!(
            "herald-pgcluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let port = free_port()?;
        let cluster = Self {
            base,
            bin,
            run_as_postgres,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Made by the user the server runs as, so that it owns its files.
        cluster.run(
            Command::new("mkdir")
                .arg("-m")
                .arg("700")
                .arg(&cluster.base),
        )?;
        let data = cluster.data();
        let mut initdb = Command::new(cluster.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        cluster.run(&mut initdb)?;
        let settings = format!(
            "\n# herald tests\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\nmax_connections = 100\n",
            cluster.base.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, settings.as_bytes()))
            .map_err(|e| format!("cannot configure the cluster: {e}"))?;
        cluster.start()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn log(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// Runs `command` as the cluster's user.
    fn run(&self, command: &mut Command) -> Result<(), String> {
        let mut wrapped = if self.run_as_postgres {
            let mut runuser = Command::new("runuser");
            runuser
                .args(["-u", "postgres", "--"])
                .arg(command.get_program())
                .args(command.get_args());
            runuser
        } else {
            let mut same = Command::new(command.get_program());
            same.args(command.get_args());
            same
        };
        let out = wrapped
            .output()
            .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{:?} {:?} failed ({}): {}{}",
                command.get_program(),
                command.get_args().collect::<Vec<_>>(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut pg_ctl = Command::new(self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(args);
        self.run(&mut pg_ctl)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}/postgres", self.addr)
    }

    /// Starts the server and waits until it is ready.
    pub fn start(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "60"])
    }

    /// Launches the server without waiting (see [`Self::wait_accepting`]).
    pub fn launch(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-W"])
    }

    /// Stops the server (`fast`: sessions are ended, a clean shutdown;
    /// `immediate`: as a crash); returns once it is down.
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", mode, "-w", "-t", "60"])
    }

    /// Waits until a new session can connect and run a query; returns that
    /// instant. Polls every 5 ms, so the instant is that close.
    pub async fn wait_accepting(&self, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(mut conn) = PgConnection::connect(&self.url()).await
                && sqlx::query("SELECT 1").execute(&mut conn).await.is_ok()
            {
                let at = Instant::now();
                let _ = conn.close().await;
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not accept connections within {within:?}: {}",
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The server's log (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}
