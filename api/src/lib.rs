//! Herald's HTTP API.

pub mod admin;
mod caller;
pub mod cli;
mod connections;
mod correlation;
mod cursor;
mod edge;
pub mod error;
pub mod extract;
mod fail_fast;
mod fallback;
pub mod forget;
pub mod healthcheck;
mod idempotency;
pub mod metrics;
pub(crate) mod minimal;
mod node_client;
mod position;
mod progress_line;
pub mod pump;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
pub mod webhooks_file;

pub use server::{app, serve};

#[cfg(test)]
mod arbitrary;
