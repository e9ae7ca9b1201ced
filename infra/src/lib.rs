//! Herald's outside world: the event store, command handling, the
//! projection runner, configuration, telemetry, and the application services
//! the HTTP API calls.

pub mod audit;
pub mod clock;
pub mod commands;
pub mod config;
pub mod database;
pub mod db_health;
pub mod herald;
pub mod projection_status;
pub mod push;
pub mod rebuild;
pub mod root_token;
pub mod runtime;
pub mod secrets;
pub mod services;
pub mod store;
#[cfg(target_os = "linux")]
pub mod tcp_nodelay;
pub mod telemetry;
pub mod vault;
pub mod webhooks;
