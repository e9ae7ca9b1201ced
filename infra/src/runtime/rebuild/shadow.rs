//! Where a rebuild builds: a sibling PostgreSQL schema, or a SQLite file
//! next to the live one, migrated like the live database, plus two tables
//! of its own: how far each model's bulk load got (`rebuild_bulk`), and the
//! secondary indexes set aside while tables are loaded in bulk
//! (`rebuild_indexes`: built again, from their saved definitions, once the
//! tables are full — much faster than keeping them up row by row).

use std::path::PathBuf;

use domain::ids::AppId;
use projections::db::{Db, PgDb};
use projections::on_db;

use crate::database::{self, DbOptions};
use crate::store::StoreError;

pub(super) enum Location {
    Schema(String),
    File(PathBuf),
}

pub(super) struct Shadow {
    pub db: Db,
    pub location: Location,
}

/// How far a model's bulk load got: the snapshot it loads up to, and the
/// last stream it wrote whole (streams go app by app, in text order).
#[derive(Debug, Clone)]
pub(super) struct BulkProgress {
    pub snapshot: i64,
    pub last: Option<(AppId, String)>,
    pub done: bool,
}

const BOOKKEEPING: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS rebuild_bulk (model TEXT PRIMARY KEY, snapshot BIGINT NOT NULL, \
     app_id TEXT, stream TEXT, done BOOLEAN NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rebuild_indexes (name TEXT PRIMARY KEY, ddl TEXT NOT NULL)",
];

impl Shadow {
    /// Opens (creating and migrating if new) the shadow of `live`.
    pub async fn open(live: &Db) -> Result<Self, StoreError> {
        let options = DbOptions {
            max_connections: 2,
            ..DbOptions::default()
        };
        let (db, location) = match live {
            Db::Postgres(p) => {
                let name = format!("{}_rebuild", p.schema);
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&name)))
                    .execute(&p.pool)
                    .await?;
                let connect = (*p.pool.connect_options())
                    .clone()
                    .options([("search_path", name.as_str())]);
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .connect_with(connect)
                    .await?;
                let db = Db::Postgres(PgDb {
                    pool,
                    schema: name.clone(),
                });
                (db, Location::Schema(name))
            }
            Db::Sqlite(_) => {
                let dir = shadow_dir(live).await?;
                let db = database::open_sqlite(&dir, &options).await?;
                (db, Location::File(dir.join(database::SQLITE_FILE)))
            }
        };
        let prepared = async {
            database::migrate(&db).await?;
            for ddl in BOOKKEEPING {
                execute(&db, ddl).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = prepared.await {
            db.close().await;
            return Err(e);
        }
        Ok(Self { db, location })
    }

    pub async fn remove(self, live: &Db) -> Result<(), StoreError> {
        self.db.close().await;
        match (&self.location, live) {
            (Location::Schema(name), Db::Postgres(p)) => {
                sqlx::query(&format!("DROP SCHEMA {} CASCADE", quote(name)))
                    .execute(&p.pool)
                    .await?;
            }
            (Location::File(path), _) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub async fn bulk_progress(&self, model: &str) -> Result<Option<BulkProgress>, StoreError> {
        let row: Option<(i64, Option<String>, Option<String>, bool)> = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT snapshot, app_id, stream, done FROM rebuild_bulk WHERE model = $1",
            )
            .bind(model)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(snapshot, app, stream, done)| BulkProgress {
            snapshot,
            last: app.and_then(|a| a.parse().ok().map(AppId)).zip(stream),
            done,
        }))
    }

    /// Records that `model` starts a bulk load up to `snapshot`.
    pub async fn begin_bulk(&self, model: &str, snapshot: i64) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        projections::on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO rebuild_bulk (model, snapshot, done) VALUES ($1, $2, FALSE) \
                 ON CONFLICT (model) DO UPDATE SET snapshot = excluded.snapshot, app_id = NULL, \
                 stream = NULL, done = FALSE",
            )
            .bind(model)
            .bind(snapshot)
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// Drops the secondary indexes of `tables` (not those that enforce a
    /// key), saving their definitions to build them again.
    pub async fn set_indexes_aside(&self, tables: &[&str]) -> Result<(), StoreError> {
        for table in tables {
            let found: Vec<(String, String)> = match &self.db {
                Db::Sqlite(s) => {
                    sqlx::query_as(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
                         AND sql IS NOT NULL",
                    )
                    .bind(*table)
                    .fetch_all(&s.reader)
                    .await?
                }
                Db::Postgres(p) => {
                    sqlx::query_as(
                        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
                         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                         JOIN pg_namespace n ON n.oid = t.relnamespace \
                         WHERE n.nspname = $1 AND t.relname = $2 \
                           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
                    )
                    .bind(&p.schema)
                    .bind(*table)
                    .fetch_all(&p.pool)
                    .await?
                }
            };
            for (name, ddl) in found {
                let mut tx = self.db.begin().await?;
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query(
                        "INSERT INTO rebuild_indexes (name, ddl) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(&name)
                    .bind(&ddl)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(&format!("DROP INDEX {}", quote(&name)))
                        .execute(&mut *c)
                        .await?;
                });
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Builds every index set aside, each in one statement (sorting the
    /// whole table once), and forgets it.
    pub async fn restore_indexes(&self) -> Result<(), StoreError> {
        let saved: Vec<(String, String)> = on_db!(&self.db, |pool| {
            sqlx::query_as("SELECT name, ddl FROM rebuild_indexes ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        for (name, ddl) in saved {
            let mut tx = self.db.begin().await?;
            projections::on_tx!(&mut tx, |c| {
                let settings: &[&str] = match self.db {
                    Db::Postgres(_) => &["SET LOCAL maintenance_work_mem = '512MB'"],
                    Db::Sqlite(_) => &[
                        "PRAGMA threads = 4",
                        "PRAGMA cache_size = -262144",
                        "PRAGMA temp_store = MEMORY",
                    ],
                };
                for setting in settings {
                    sqlx::query(setting).execute(&mut *c).await?;
                }
                sqlx::query(&ddl).execute(&mut *c).await?;
                sqlx::query("DELETE FROM rebuild_indexes WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *c)
                    .await?;
            });
            tx.commit().await?;
        }
        Ok(())
    }
}

async fn execute(db: &Db, sql: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    projections::on_tx!(&mut tx, |c| {
        sqlx::query(sql).execute(c).await?;
    });
    tx.commit().await?;
    Ok(())
}

pub(super) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `<live file>.rebuild/`, next to the live SQLite file.
async fn shadow_dir(live: &Db) -> Result<PathBuf, StoreError> {
    let Db::Sqlite(s) = live else {
        return Err(StoreError::Internal("not SQLite".into()));
    };
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&s.reader)
            .await?;
    Ok(PathBuf::from(format!("{file}.rebuild")))
}

/// Discards the working copy a stopped rebuild left beside the live models
/// (SQLite's file, PostgreSQL's schema) and its report: the next rebuild
/// starts afresh. A forget must not leave a subject's values there. A
/// running rebuild keeps its own (it applies the forget before it switches
/// in, then removes the copy).
pub async fn discard_stopped(live: &Db) -> Result<(), StoreError> {
    let guard = match crate::runtime::rebuild_guard::exclude(live).await {
        Ok(guard) => guard,
        Err(crate::runtime::RuntimeError::Busy(_)) => return Ok(()),
        Err(crate::runtime::RuntimeError::Store(e)) => return Err(e),
        Err(e) => return Err(StoreError::Internal(e.to_string())),
    };
    let removed = match live {
        Db::Postgres(p) => sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote(&format!("{}_rebuild", p.schema))
        ))
        .execute(&p.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::from),
        Db::Sqlite(_) => match shadow_dir(live).await {
            Ok(dir) if dir.exists() => std::fs::remove_dir_all(&dir)
                .map_err(|e| StoreError::Internal(format!("cannot remove {}: {e}", dir.display()))),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
    };
    let finished = guard.finish().await;
    removed?;
    finished.map_err(|e| StoreError::Internal(e.to_string()))
}
