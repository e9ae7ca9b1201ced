//! Herald's configuration, read once at start-up (flags, then `HERALD_*`
//! environment, then these defaults; see `api/src/cli.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Clock};
use crate::database::DbOptions;
use crate::push::config::PushConfig;
use crate::secrets::Secret;
use crate::webhooks::policy::WebhookConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// SQLite file, root token file, local state.
    pub data_dir: PathBuf,
    /// `postgres://…` moves the log and read models to PostgreSQL.
    pub database_url: Option<Secret<String>>,
    pub root_token: Option<Secret<String>>,
    pub otlp_endpoint: Option<String>,
    pub log_json: bool,
    pub db: DbOptions,
    /// How long a command's response waits for the read models it affects.
    pub read_your_writes_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Seals secrets at rest (see `vault`); default: generated into the
    /// data directory.
    pub secret_key: Option<Secret<String>>,
    pub webhooks: WebhookConfig,
    pub push: PushConfig,
    /// The reactors' clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
}

impl Config {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATA_DIR: &'static str = "./herald-data";

    /// Defaults, with SQLite in `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database_url: None,
            root_token: None,
            otlp_endpoint: None,
            log_json: false,
            db: DbOptions::default(),
            read_your_writes_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            secret_key: None,
            webhooks: WebhookConfig::default(),
            push: PushConfig::default(),
            clock: clock::system(),
        }
    }
}
