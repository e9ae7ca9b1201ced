//! Opening the database (SQLite file or PostgreSQL) and migrating it.
//! Migrations are the SQL files under `infra/migrations/<backend>/`, embedded
//! at build time and run at start-up.

pub mod health;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use projections::db::{Db, PgDb, SqliteDb};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::store::StoreError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQLite file inside the data directory.
pub const SQLITE_FILE: &str = "herald.db";

#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections in the PostgreSQL pool (readers on SQLite).
    pub max_connections: u32,
    /// How long a request may wait for a connection before it fails as
    /// "unavailable".
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the SQLite database in `data_dir` (created if missing): WAL, full
/// fsync on commit, foreign keys on.
pub async fn open_sqlite(data_dir: &Path, options: &DbOptions) -> Result<Db, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let connect = SqliteConnectOptions::new()
        .filename(data_dir.join(SQLITE_FILE))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        // Deleted and overwritten rows are zeroed in the pages written
        // anyway: forgotten personal data does not linger in free space.
        .pragma("secure_delete", "fast");
    let single = |sync: SqliteSynchronous| {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect.clone().synchronous(sync))
    };
    let writer = single(SqliteSynchronous::Full).await?;
    let relaxed = single(SqliteSynchronous::Normal).await;
    let reader = SqlitePoolOptions::new()
        .max_connections(options.max_connections.clamp(1, 8))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect.clone().read_only(true))
        .await;
    let (relaxed, reader) = match (relaxed, reader) {
        (Ok(relaxed), Ok(reader)) => (relaxed, reader),
        (relaxed, reader) => {
            writer.close().await;
            let error = match (relaxed, reader) {
                (Err(e), _) | (_, Err(e)) => e,
                _ => sqlx::Error::PoolClosed,
            };
            return Err(error.into());
        }
    };
    Ok(Db::Sqlite(SqliteDb {
        writer,
        relaxed,
        reader,
        write_lock: Default::default(),
    }))
}

/// Connects to PostgreSQL. The pool connects lazily, so a server that is down
/// now is an `Unavailable` error on first use, not a failure to start.
pub async fn open_postgres(url: &str, options: &DbOptions) -> Result<Db, StoreError> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| {
            StoreError::Invalid(format!(
                "invalid PostgreSQL URL: {}",
                redact(&e.to_string())
            ))
        })?
        // sqlx prepares every statement; after five runs PostgreSQL may
        // switch to a generic plan made without the bound values. For
        // searches (a range that matches 7 % of devices planned as if it
        // matched 0.5 %) and batch lookups that plan is orders of magnitude
        // slower, and planning anew costs well under a millisecond.
        .options([("plan_cache_mode", "force_custom_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.acquire_timeout)
        .connect_lazy_with(connect);
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await?;
    Ok(Db::Postgres(PgDb { pool, schema }))
}

/// Opens whichever database the URL names: `postgres://…` / `postgresql://…`,
/// or SQLite in `data_dir` when there is no URL.
pub async fn open(
    url: Option<&str>,
    data_dir: &Path,
    options: &DbOptions,
) -> Result<Db, StoreError> {
    match url {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            open_postgres(u, options).await
        }
        Some(u) if u.starts_with("sqlite:") => {
            let dir = u
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            open_sqlite(Path::new(dir), options).await
        }
        Some(_) => Err(StoreError::Invalid(
            "the database URL must start with postgres:// or sqlite:".into(),
        )),
        None => open_sqlite(data_dir, options).await,
    }
}

pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    let result = match db {
        Db::Sqlite(s) => SQLITE_MIGRATIONS.run(&s.writer).await,
        Db::Postgres(p) => POSTGRES_MIGRATIONS.run(&p.pool).await,
    };
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
        other => StoreError::Internal(format!("migration failed: {other}")),
    })
}

/// Whether every migration this build knows has been applied.
pub async fn is_migrated(db: &Db) -> Result<bool, StoreError> {
    let (migrator, applied): (&sqlx::migrate::Migrator, Vec<i64>) = match db {
        Db::Sqlite(s) => (
            &SQLITE_MIGRATIONS,
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&s.reader)
                .await?,
        ),
        Db::Postgres(p) => (
            &POSTGRES_MIGRATIONS,
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&p.pool)
                .await?,
        ),
    };
    Ok(migrator.iter().all(|m| applied.contains(&m.version)))
}

/// Removes a password from anything that may echo a connection URL.
pub fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &text[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}:[redacted]{}", &text[..scheme + 3 + colon], &text[at..]),
                None => text.to_owned(),
            }
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
