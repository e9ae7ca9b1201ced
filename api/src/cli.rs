//! The `herald` command line. Every flag has a `HERALD_*` environment
//! variable; flags win over the environment, which wins over defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use infra::config::Config;
use infra::reactors::push::config::PushConfig;
use infra::reactors::webhooks::address::AddressPolicy;
use infra::reactors::webhooks::callbacks::PublicUrl;
use infra::reactors::webhooks::policy::{WebhookConfig, parse_schedule};
use infra::secrets::Secret;

/// The longest any duration setting may be: ten years. Beyond it a
/// deadline computed from it could overflow the clock's arithmetic.
pub const MAX_SECONDS: u64 = 315_360_000;

/// A setting in seconds, from `min` to [`MAX_SECONDS`]: out of range, the
/// command refuses to start and names the setting and its range.
fn seconds(min: u64) -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(min..=MAX_SECONDS)
}

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Event-sourced devices, users, push campaigns and integrations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the read models and the reactors.
    Serve(Box<ServeArgs>),
    /// Apply database migrations, then exit.
    Migrate(DatabaseArgs),
    /// Walk hash chains from each app's first event to its head; exits 1 if
    /// any chain is broken.
    Verify(VerifyArgs),
    /// Write an app's events as NDJSON (stdout, or `--output`), with
    /// progress on stderr.
    Export(ExportArgs),
    /// Read models: status, rebuild.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Consume a change queue: pump, dead letters.
    #[command(subcommand)]
    Changes(ChangesCommand),
    /// Forget a user (an erasure request) through a running node: their
    /// personal data and their devices' become unreadable for good; the log
    /// keeps every event and its hash chain. Prints the outcome as JSON.
    Forget(ForgetArgs),
    /// Webhook endpoints as configuration.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Ask a running node whether it is ready (`GET /readyz`); exits 0 if
    /// it answers 200, 1 otherwise. For container healthchecks.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The user's id.
    #[arg(long)]
    pub user: String,
    /// Herald's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key of the user's app with the `admin` role.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Make the app's endpoints match a file (YAML or JSON: `webhooks:` a
    /// list of endpoints as `POST /v1/webhooks` takes them, plus `id` and
    /// `enabled`): every entry is checked first and one wrong entry changes
    /// nothing; then endpoints are created, updated and deleted to match.
    /// Prints the plan. `${NAME}` in a value is the environment variable
    /// NAME (for credentials kept out of the file).
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file declaring the endpoints.
    #[arg(long)]
    pub file: std::path::PathBuf,
    /// Print the plan only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Herald's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key of the app with the `admin` role.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The node's address (as it listens; 0.0.0.0 and [::] mean this host).
    #[arg(long, env = "HERALD_LISTEN", default_value = Config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3, value_parser = seconds(1))]
    pub timeout_seconds: u64,
}

#[derive(Debug, Subcommand)]
pub enum ChangesCommand {
    /// Drain a queue into a handler until it is empty, crash-safely.
    Pump(PumpArgs),
    /// List the changes the handler gave up on (read-only: works beside a
    /// running pump).
    DeadLetters(BufferArgs),
    /// Hand the dead letters to the handler again (takes the buffer's lock:
    /// refused while a pump runs on it).
    RetryDeadLetters(RetryArgs),
}

#[derive(Debug, Args)]
pub struct BufferArgs {
    /// The pump's durable buffer and dead letters.
    #[arg(long, env = "HERALD_PUMP_DIR", default_value = "./herald-pump")]
    pub buffer_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct HandlerArgs {
    /// The handler: an executable that reads one change (JSON) on stdin and
    /// exits 0 to acknowledge it. Arguments for it go after `--`.
    #[arg(long)]
    pub exec: PathBuf,
    #[arg(last = true)]
    pub exec_args: Vec<String>,
    /// Retries (with backoff) after a change's first failure.
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
}

#[derive(Debug, Args)]
pub struct PumpArgs {
    #[command(flatten)]
    pub buffer: BufferArgs,
    #[command(flatten)]
    pub handler: HandlerArgs,
    /// Herald's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key with the `read` role.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Changes per drain (the server clamps to 500).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// What to do with a change that failed every retry.
    #[arg(long, value_enum, default_value = "dead-letter")]
    pub on_error: crate::pump::OnError,
    /// The longest one drain waits, in all, while the server answers 429 or
    /// 503 (as its Retry-After asks); then the run stops.
    #[arg(long, env = "HERALD_PUMP_MAX_WAIT_SECONDS", default_value_t = 600, value_parser = seconds(0))]
    pub max_wait_seconds: u64,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub buffer: BufferArgs,
    #[command(flatten)]
    pub handler: HandlerArgs,
}

impl HandlerArgs {
    pub fn handler(&self) -> crate::pump::Handler {
        crate::pump::Handler {
            program: self.exec.clone(),
            args: self.exec_args.clone(),
            max_retries: self.max_retries,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Only this app (default: every app in the log).
    #[arg(long)]
    pub app: Option<uuid::Uuid>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The app whose events to export.
    #[arg(long)]
    pub app: uuid::Uuid,
    /// Recorded at or after (RFC 3339).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Recorded before (RFC 3339).
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's version, checkpoint and lag.
    Status(DatabaseArgs),
    /// Rebuild read models from the log beside the live ones, then switch
    /// atomically; interrupt and run again to resume.
    Rebuild(RebuildArgs),
    /// A projection stopped for an app (it cannot apply one of its events):
    /// record the event as skipped and apply the app's later events.
    Skip(FaultArgs),
    /// A projection stopped for an app: apply the event again (after a fix),
    /// then the app's later events.
    Retry(FaultArgs),
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The projection (`herald projections status` lists its faults).
    pub name: String,
    /// The app it is stopped for.
    #[arg(long)]
    pub app: uuid::Uuid,
    /// The event's position, to be sure it is the one you looked at.
    #[arg(long)]
    pub position: Option<i64>,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// One projection (default: all).
    pub name: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// Where SQLite keeps its file and Herald its root token.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = Config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// `postgres://user@host/db` moves the log and read models to PostgreSQL.
    #[arg(long, env = "HERALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database connections in the pool.
    #[arg(long, env = "HERALD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Seals secrets and subjects' data keys at rest (32+ characters; every
    /// node of a cluster, and every command reading personal values, needs
    /// the same one). Generated and saved in the data directory if unset.
    #[arg(long, env = "HERALD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "HERALD_LISTEN", default_value = Config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Also serve `GET /metrics` here, without authentication (keep it on a
    /// private network); on the API address it needs the root token.
    #[arg(long, env = "HERALD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// The root token; generated and saved in the data directory if unset.
    #[arg(long, env = "HERALD_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,
    /// OTLP/gRPC endpoint for traces, e.g. http://localhost:4317, or
    /// https://collector:4317 (TLS with the platform's roots).
    #[arg(long, env = "HERALD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// A PEM file of CA certificates to trust for an https:// OTLP
    /// endpoint, besides the platform's.
    #[arg(long, env = "HERALD_OTLP_CA_FILE")]
    pub otlp_ca_file: Option<std::path::PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "HERALD_LOG_JSON")]
    pub log_json: bool,
    /// Seconds in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE_SECONDS", default_value_t = 30, value_parser = seconds(0))]
    pub shutdown_grace_seconds: u64,
    /// Seconds the answer to a request with an `Idempotency-Key` is kept
    /// (and a repeat of it answered from it).
    #[arg(long, env = "HERALD_IDEMPOTENCY_TTL_SECONDS", default_value_t = 86_400, value_parser = seconds(1))]
    pub idempotency_ttl_seconds: u64,
    /// API requests per second per key, with a burst of the same size;
    /// 0 turns the limit off. An app's own limit (PATCH /v1/apps/{id})
    /// wins. Per node.
    #[arg(long, env = "HERALD_API_RATE_LIMIT", default_value_t = Config::DEFAULT_API_RATE_LIMIT)]
    pub api_rate_limit: u32,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub push: PushArgs,
}

/// What one client connection may hold (see `api::connections`).
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Seconds a request head may take to arrive, from its first byte (or
    /// from the connection opening).
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = seconds(1))]
    pub header_timeout_seconds: u64,
    /// Seconds a kept-alive connection may wait for its next request (keep
    /// it above a load balancer's idle timeout).
    #[arg(long, env = "HERALD_KEEP_ALIVE_TIMEOUT_SECONDS", default_value_t = 75, value_parser = seconds(1))]
    pub keep_alive_timeout_seconds: u64,
    /// Seconds a request body may take to arrive whole (then 408).
    #[arg(long, env = "HERALD_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_parser = seconds(1))]
    pub body_timeout_seconds: u64,
    /// Seconds without a byte either way after which any connection closes.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECONDS", default_value_t = 120, value_parser = seconds(1))]
    pub idle_timeout_seconds: u64,
    /// Client connections served at once; more wait in the listen backlog.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}

impl HttpArgs {
    fn apply(&self, limits: &mut infra::config::HttpLimits) -> anyhow::Result<()> {
        if self.max_connections == 0 {
            anyhow::bail!("HERALD_MAX_CONNECTIONS must be at least 1");
        }
        limits.header_timeout = Duration::from_secs(self.header_timeout_seconds);
        limits.keep_alive_timeout = Duration::from_secs(self.keep_alive_timeout_seconds);
        limits.body_timeout = Duration::from_secs(self.body_timeout_seconds);
        limits.idle_timeout = Duration::from_secs(self.idle_timeout_seconds);
        limits.max_connections = self.max_connections;
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// FCM HTTP v1 base URL.
    #[arg(
        long,
        env = "HERALD_FCM_URL",
        default_value = "https://fcm.googleapis.com"
    )]
    pub fcm_url: String,
    /// Where FCM access tokens are obtained (default Google's); the
    /// service accounts' own token_uri is never used.
    #[arg(long, env = "HERALD_FCM_TOKEN_URL")]
    pub fcm_token_url: Option<String>,
    /// Overrides the APNs host chosen by the credentials' environment.
    #[arg(long, env = "HERALD_APNS_URL")]
    pub apns_url: Option<String>,
    /// Requests in flight per provider.
    #[arg(long, env = "HERALD_PUSH_CONCURRENCY", default_value_t = 256)]
    pub push_concurrency: usize,
    /// Devices per batch (the most a crash can make receive a notification twice).
    #[arg(long, env = "HERALD_PUSH_BATCH_SIZE", default_value_t = 1000)]
    pub push_batch_size: usize,
    /// Retries of a retryable provider error.
    #[arg(long, env = "HERALD_PUSH_MAX_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub push_max_retries: u32,
    /// Deliver through the `log` provider for apps without any credentials.
    #[arg(long, env = "HERALD_PUSH_LOG_WITHOUT_CREDENTIALS", default_value_t = true, action = clap::ArgAction::Set)]
    pub push_log_without_credentials: bool,
}

impl PushArgs {
    fn apply(&self, config: &mut PushConfig) -> anyhow::Result<()> {
        if self.push_concurrency == 0 || self.push_batch_size == 0 {
            anyhow::bail!("HERALD_PUSH_CONCURRENCY and HERALD_PUSH_BATCH_SIZE must be at least 1");
        }
        config.fcm_url = self.fcm_url.clone();
        config.fcm_token_url = self.fcm_token_url.clone().filter(|u| !u.is_empty());
        config.apns_url = self.apns_url.clone().filter(|u| !u.is_empty());
        config.concurrency = self.push_concurrency;
        config.batch_size = self.push_batch_size;
        config.max_retries = self.push_max_retries;
        config.log_without_credentials = self.push_log_without_credentials;
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Networks webhook URLs may reach besides public addresses, e.g.
    /// `10.0.0.0/8,fd00::/8`.
    #[arg(long, env = "HERALD_WEBHOOK_ALLOW_NETS", default_value = "")]
    pub webhook_allow_nets: String,
    /// A delivery succeeds with a 2xx within this many seconds.
    #[arg(long, env = "HERALD_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 15, value_parser = seconds(1))]
    pub webhook_timeout_seconds: u64,
    /// Waits between attempts (one attempt more than waits), each +/-20 %.
    #[arg(
        long,
        env = "HERALD_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub webhook_retry_schedule: String,
    /// An endpoint failing this many hours without a success is disabled.
    #[arg(
        long,
        env = "HERALD_WEBHOOK_DISABLE_AFTER_HOURS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS / 3600)
    )]
    pub webhook_disable_after_hours: u64,
    /// The address webhook receivers reach this Herald at (e.g.
    /// https://herald.example.com): the origin of `{{callback.url}}`s.
    /// The same on every node.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds a callback URL stays good after its message was last sent.
    #[arg(long, env = "HERALD_CALLBACK_TTL_SECONDS", default_value_t = 86_400, value_parser = seconds(1))]
    pub callback_ttl_seconds: u64,
    /// Days a finished webhook message and its attempts are kept after
    /// their last change (0: for ever).
    #[arg(long, env = "HERALD_WEBHOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS / 86_400))]
    pub webhook_retention_days: u64,
}

impl WebhookArgs {
    fn apply(&self, config: &mut WebhookConfig) -> anyhow::Result<()> {
        let nets = AddressPolicy::parse_nets(&self.webhook_allow_nets)
            .map_err(|e| anyhow::anyhow!("HERALD_WEBHOOK_ALLOW_NETS: {e}"))?;
        config.addresses = AddressPolicy::allowing(nets);
        config.timeout = Duration::from_secs(self.webhook_timeout_seconds);
        config.retry.delays = parse_schedule(&self.webhook_retry_schedule)
            .map_err(|e| anyhow::anyhow!("HERALD_WEBHOOK_RETRY_SCHEDULE: {e}"))?;
        config.disable_after =
            Duration::from_secs(self.webhook_disable_after_hours.saturating_mul(3600));
        config.public_url = match self.public_url.as_deref().filter(|u| !u.is_empty()) {
            Some(raw) => {
                Some(PublicUrl::parse(raw).map_err(|e| anyhow::anyhow!("HERALD_PUBLIC_URL: {e}"))?)
            }
            None => None,
        };
        config.callback_ttl = Duration::from_secs(self.callback_ttl_seconds);
        config.retention = (self.webhook_retention_days > 0)
            .then(|| Duration::from_secs(self.webhook_retention_days.saturating_mul(24 * 3600)));
        Ok(())
    }
}

impl DatabaseArgs {
    pub fn config(&self) -> Config {
        let mut config = Config::with_data_dir(&self.data_dir);
        config.database_url = self
            .database_url
            .clone()
            .filter(|u| !u.is_empty())
            .map(Secret::new);
        config.db.max_connections = self.db_max_connections;
        config.secret_key = self
            .secret_key
            .clone()
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        config
    }
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = self.database.config();
        config.listen = self.listen;
        config.metrics_listen = self.metrics_listen;
        config.root_token = self
            .root_token
            .clone()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        config.otlp_endpoint = self.otlp_endpoint.clone().filter(|e| !e.is_empty());
        config.otlp_ca_file = self
            .otlp_ca_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        config.log_json = self.log_json;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_seconds);
        config.idempotency_ttl = Duration::from_secs(self.idempotency_ttl_seconds);
        config.api_rate_limit = self.api_rate_limit;
        self.http.apply(&mut config.http)?;
        self.webhooks.apply(&mut config.webhooks)?;
        self.push.apply(&mut config.push)?;
        Ok(config)
    }
}
