//! Herald's integration tests: one binary, one module per area. Tests that
//! need a database run on SQLite and on PostgreSQL (see `on_both!`).

mod apps_and_keys;
mod as_of;
mod audit_filters;
mod audit_integrity;
mod audit_log;
mod change_queues;
mod client_keys;
mod connections;
mod consistency;
mod db_connections;
mod device_properties;
mod devices;
mod docs_page;
mod events;
mod flags;
mod forget;
mod http_basics;
mod idempotency;
mod metrics;
mod nodes;
mod notifications;
mod openapi;
mod process;
mod projection_faults;
mod projections;
mod pump;
mod rate_limits;
mod rebuild;
mod reliability;
mod search;
mod store;
mod traces;
mod unstorable;
mod users;
mod webhooks;
