//! Reliability: what Herald promises when things break under load.
//!
//! - `kill9`: `herald serve` (the real binary) is killed with SIGKILL while
//!   concurrent writers run, and restarted on the same database; nothing
//!   acknowledged is lost or doubled, the log stays dense and verifiable.
//! - `pg_outage`: a throwaway PostgreSQL cluster is stopped under load and
//!   started again; Herald answers 503 with `Retry-After` quickly while it is
//!   down, recovers quickly, and loses nothing.
//! - `webhook_outage`: a receiver fails and is down for a while; every
//!   message arrives afterwards, correctly signed.
//! - `nodes`: three `herald serve` processes on one PostgreSQL database; the
//!   one sending a campaign is killed with SIGKILL mid-campaign and
//!   mid-delivery while writers go on through the others; the survivors
//!   take its work over within 10 s and deliver everything within 20 s,
//!   nothing acknowledged is lost, only what it held arrives twice.
//!
//! Each test is bounded (seconds of load, deadlines on every wait) and
//! prints what it covered.

mod durability;
mod kill9;
mod nodes;
mod pg_outage;
mod webhook_outage;
mod writers;

use std::time::Duration;

use herald_tests::serve::{ServeSpec, Served};
use serde_json::{Value, json};

/// The real `herald` binary.
const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const ROOT_TOKEN: &str = "hr_reliability-root-token";
/// Concurrent writers in the load tests.
const WRITERS: usize = 16;

/// The load tests take turns: on two cores, one's writers would slow the
/// other's server, and the outage test's timings would measure the
/// neighbour instead of Herald.
static ONE_LOAD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn spec(data_dir: &std::path::Path, database_url: Option<String>) -> ServeSpec {
    ServeSpec {
        bin: BIN.into(),
        data_dir: data_dir.to_owned(),
        database_url,
        root_token: ROOT_TOKEN.into(),
        envs: Vec::new(),
    }
}

/// Starts the process without blocking the runtime's threads.
async fn start(spec: &ServeSpec) -> Served {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || spec.start())
        .await
        .unwrap_or_else(|e| panic!("starting herald panicked: {e}"))
}

fn client() -> reqwest::Client {
    herald_tests::app::install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Creates an app with the root token; returns its all-roles key.
async fn create_app(client: &reqwest::Client, base: &str) -> String {
    let response = client
        .post(format!("{base}/v1/apps"))
        .bearer_auth(ROOT_TOKEN)
        .json(&json!({"name": "reliability"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/apps: {e}"));
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap_or_default();
    body["api_key"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {body}"))
        .to_owned()
}
