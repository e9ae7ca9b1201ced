//! Support for Herald's integration tests.
//!
//! Every test gets its own database: a fresh SQLite file, or a fresh
//! PostgreSQL schema. PostgreSQL suites run when a server answers at
//! `HERALD_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! with `HERALD_TEST_REQUIRE_PG=1` (set by `.ci/run`) a missing server fails
//! them instead of skipping them.

pub mod app;
pub mod backend;
pub mod pg_cluster;
pub mod proxy;
pub mod push;
pub mod receiver;
pub mod serve;

pub use app::TestApp;
pub use backend::{Backend, TestDb};

/// Defines `<name>::sqlite` and `<name>::postgres` tests that both run
/// `$body(backend)`.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$body($crate::Backend::Postgres).await
            }
        }
    };
}
