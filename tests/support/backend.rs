//! A private database per test.

use std::path::PathBuf;
use std::time::Duration;

use infra::database::{self, DbOptions};
use projections::db::{Db, PgDb};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_url() -> String {
    std::env::var("HERALD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The PostgreSQL server's address (for a proxy in front of it).
pub async fn pg_addr() -> std::net::SocketAddr {
    let url = pg_url();
    let host = url
        .split('@')
        .next_back()
        .and_then(|h| h.split('/').next())
        .map(|h| {
            if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:5432")
            }
        })
        .unwrap_or_else(|| "127.0.0.1:5432".into());
    tokio::net::lookup_host(host.as_str())
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve {host}"))
}

/// The test PostgreSQL URL with its host and port replaced by `addr`.
pub fn pg_url_via(addr: std::net::SocketAddr) -> String {
    let url = pg_url();
    let (prefix, rest) = url
        .split_once('@')
        .unwrap_or(("postgres://postgres", url.as_str()));
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("test");
    format!("{prefix}@{addr}/{path}")
}

/// Whether PostgreSQL suites must run (`HERALD_TEST_REQUIRE_PG=1`) rather
/// than be skipped when no server is available.
pub fn pg_required() -> bool {
    std::env::var("HERALD_TEST_REQUIRE_PG").is_ok_and(|v| v == "1" || v == "true")
}

/// A fresh, migrated database, removed when dropped.
pub struct TestDb {
    pub db: Db,
    pub backend: Backend,
    /// The data directory (holds the SQLite file, the root token).
    pub dir: PathBuf,
    /// PostgreSQL: the schema; SQLite: empty.
    pub schema: String,
}

pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("herald-{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

impl TestDb {
    /// A database on `backend`, or `None` when PostgreSQL is not available
    /// and not required (the test then says it was skipped).
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = temp_dir("db");
        match backend {
            Backend::Sqlite => {
                let db = database::open_sqlite(&dir, &DbOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("cannot open SQLite: {e}"));
                database::migrate(&db)
                    .await
                    .unwrap_or_else(|e| panic!("cannot migrate: {e}"));
                Some(Self {
                    db,
                    backend,
                    dir,
                    schema: String::new(),
                })
            }
            Backend::Postgres => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                if let Err(e) = create_schema(&schema).await {
                    if pg_required() {
                        panic!(
                            "PostgreSQL is required (HERALD_TEST_REQUIRE_PG=1) but unavailable: {e}"
                        );
                    }
                    eprintln!("skipped: PostgreSQL is unavailable at {} ({e})", pg_url());
                    return None;
                }
                let db = Self::connect_pg(&schema, &pg_url(), 8).await;
                database::migrate(&db)
                    .await
                    .unwrap_or_else(|e| panic!("cannot migrate: {e}"));
                Some(Self {
                    db,
                    backend,
                    dir,
                    schema,
                })
            }
        }
    }

    /// Another pool on the same database (a stand-in for another process).
    pub async fn another_pool(&self) -> Db {
        match self.backend {
            Backend::Sqlite => database::open_sqlite(&self.dir, &DbOptions::default())
                .await
                .unwrap_or_else(|e| panic!("cannot open SQLite: {e}")),
            Backend::Postgres => Self::connect_pg(&self.schema, &pg_url(), 8).await,
        }
    }

    /// A pool on this test's schema through another URL (a proxy, say).
    pub async fn connect_pg(schema: &str, url: &str, max: u32) -> Db {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .unwrap_or_else(|e| panic!("bad PostgreSQL URL: {e}"))
            .options([("search_path", schema)]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        Db::Postgres(PgDb {
            pool,
            schema: schema.to_owned(),
        })
    }

    /// The URL of this database for `HERALD_DATABASE_URL` (PostgreSQL only).
    pub fn url(&self) -> Option<String> {
        (self.backend == Backend::Postgres)
            .then(|| format!("{}?options=-csearch_path%3D{}", pg_url(), self.schema))
    }

    /// The `herald` command line's flags that name this database.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.dir.display().to_string()];
        if let Some(url) = self.url() {
            args.extend(["--database-url".to_owned(), url]);
        }
        args
    }
}

async fn create_schema(schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = pg_url().parse::<PgConnectOptions>()?.connect().await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.backend == Backend::Postgres && !self.schema.is_empty() {
            let schema = std::mem::take(&mut self.schema);
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    let Ok(options) = pg_url().parse::<PgConnectOptions>() else {
                        return;
                    };
                    if let Ok(mut conn) = options.connect().await {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}
