//! Herald's outside world, in rooms:
//! - `store`: the event log on SQLite or PostgreSQL (`database` opens,
//!   migrates and watches the database);
//! - `runtime`: what runs beside the log — commands (load, decide,
//!   append), the projections each following the log (`follower`,
//!   `faults`), the reactor loop, rebuilds, status;
//! - `reactors`: webhook delivery and push sending;
//! - `services`: what the HTTP API calls, each holding what it uses;
//!   `auth`: who a request acts as;
//! - `herald`: the composition root that wires them;
//! - and the small things they share: `clock`, `config`, `secrets`,
//!   `vault`, `root_token`, `audit` (chain verification), `telemetry`,
//!   `idempotency` (answers kept for retried requests).

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod database;
pub mod herald;
pub mod idempotency;
mod kept;
pub mod metrics;
pub mod privacy;
pub mod reactors;
pub mod root_token;
pub mod runtime;
pub mod secrets;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod vault;
