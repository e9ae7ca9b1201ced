//! Herald's benchmarks. Each prints JSON lines (one per measurement) so the
//! scripts in `bench/` can put Herald and its peers side by side.

#![allow(clippy::print_stdout)] // benchmarks report on stdout

mod append;
mod campaign;
mod databases;
mod drain;
mod echo;
mod fake_fcm;
mod replay;
mod search;
mod webhooks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "herald-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append throughput: Herald's log, Herald's command path, and plain
    /// multi-row INSERTs of the same rows (the limit).
    Append(append::Args),
    /// Change queues: drains per second (limit 500) and feeding cost.
    Drain(drain::Args),
    /// A bare axum JSON echo server (the HTTP baseline).
    Echo(echo::Args),
    /// Device search over N devices with typed properties.
    Search(search::Args),
    /// Rebuild of every projection over N events, beside a sequential scan
    /// and a chain verification of the same log.
    Replay(replay::Args),
    /// A push campaign to N devices through `herald serve` against a local
    /// FCM stand-in: audience resolution, sends per second, memory.
    Campaign(campaign::Args),
    /// The FCM stand-in `campaign` starts (prints its address, then serves).
    FakeFcm(fake_fcm::Args),
    /// Webhook deliveries per second and latency, 1 or many endpoints,
    /// beside plain POSTs to the same receiver.
    Webhooks(webhooks::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = infra::telemetry::init(None, false)?;
    match Cli::parse().command {
        Command::Append(args) => append::run(args).await,
        Command::Echo(args) => echo::run(args).await,
        Command::Drain(args) => drain::run(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Webhooks(args) => webhooks::run(args).await,
        Command::Campaign(args) => campaign::run(args).await,
        Command::FakeFcm(args) => fake_fcm::run(args).await,
    }
}
