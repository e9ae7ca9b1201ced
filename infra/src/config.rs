//! Herald's configuration, read once at start-up (flags, then `HERALD_*`
//! environment, then these defaults; see `api/src/cli.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Clock};
use crate::database::DbOptions;
use crate::reactors::push::config::PushConfig;
use crate::reactors::webhooks::policy::WebhookConfig;
use crate::secrets::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where `/metrics` is also served, without authentication.
    pub metrics_listen: Option<SocketAddr>,
    /// SQLite file, root token file, local state.
    pub data_dir: PathBuf,
    /// `postgres://…` moves the log and read models to PostgreSQL.
    pub database_url: Option<Secret<String>>,
    pub root_token: Option<Secret<String>>,
    pub otlp_endpoint: Option<String>,
    /// CA certificates (PEM) trusted for an `https://` OTLP endpoint.
    pub otlp_ca_file: Option<PathBuf>,
    pub log_json: bool,
    pub db: DbOptions,
    /// How long a command's response waits for the read models it affects.
    pub read_your_writes_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// What one client connection may hold (see `api::connections`).
    pub http: HttpLimits,
    /// Seals secrets at rest (see `vault`); default: generated into the
    /// data directory.
    pub secret_key: Option<Secret<String>>,
    pub webhooks: WebhookConfig,
    pub push: PushConfig,
    /// How long the answer to a request with an `Idempotency-Key` is kept.
    pub idempotency_ttl: Duration,
    /// API requests per second per key (burst the same); 0: no limit.
    pub api_rate_limit: u32,
    /// The reactors' clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
}

impl Config {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATA_DIR: &'static str = "./herald-data";
    /// Far above what one key does in any benchmark here (~5,000/s).
    pub const DEFAULT_API_RATE_LIMIT: u32 = 20_000;

    /// Defaults, with SQLite in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            data_dir: data_dir.into(),
            database_url: None,
            root_token: None,
            otlp_endpoint: None,
            otlp_ca_file: None,
            log_json: false,
            db: DbOptions::default(),
            read_your_writes_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            http: HttpLimits::default(),
            secret_key: None,
            webhooks: WebhookConfig::default(),
            push: PushConfig::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            api_rate_limit: Config::DEFAULT_API_RATE_LIMIT,
            clock: clock::system(),
        }
    }
}

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request head must arrive whole within this of its first byte (or
    /// of the connection opening).
    pub header_timeout: Duration,
    /// A kept-alive connection with no new request this long after its last
    /// answer is closed (keep it above a load balancer's idle timeout).
    pub keep_alive_timeout: Duration,
    /// A request body must arrive whole within this of the request (408).
    pub body_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 10_000,
        }
    }
}
