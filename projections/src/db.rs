//! The database the read models live in: SQLite or PostgreSQL, the same one
//! that holds the log. Code that must run on both writes its SQL once with
//! `$n` placeholders (SQLite accepts them) and runs it through [`on_tx!`] or
//! [`on_db!`], which compile the same body once per backend.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// SQLite allows one writer at a time. In-process writers take
/// `write_lock` before `BEGIN IMMEDIATE`, so they queue in order instead of
/// sleeping in SQLite's busy handler (other processes still meet the file
/// lock). Appends use `writer` (every commit fsynced); read models use
/// `relaxed` (`synchronous = NORMAL`: rebuilt from the log anyway). Readers
/// use their own pool; WAL lets them read while a writer writes.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pub writer: SqlitePool,
    pub relaxed: SqlitePool,
    pub reader: SqlitePool,
    pub write_lock: Arc<Mutex<()>>,
}

impl SqliteDb {
    /// A write transaction on `pool` (the writer or the relaxed one).
    pub async fn begin_on(&self, pool: &SqlitePool) -> Result<Tx, sqlx::Error> {
        let guard = self.write_lock.clone().lock_owned().await;
        let tx = sqlite_begin_immediate(pool).await?;
        Ok(Tx::Sqlite(tx, guard))
    }
}

#[derive(Clone, Debug)]
pub struct PgDb {
    pub pool: PgPool,
    /// The schema Herald's tables live in; names its advisory locks and
    /// notification channel so that several Herald databases can share one
    /// PostgreSQL server.
    pub schema: String,
}

/// `BEGIN IMMEDIATE` on SQLite, safe to cancel. sqlx 0.8 checks a custom
/// `BEGIN` with one more round trip to the connection's worker after the
/// worker has begun; a caller cancelled in that round trip (a client gone,
/// an aborted task) has no transaction to drop, so the connection went back
/// to its pool inside a transaction holding the file's write lock: every
/// other writer waited out its busy timeout, and the pool's next `BEGIN`
/// failed. Run in a task of its own, a cancelled caller leaves a whole
/// transaction, which rolls back when dropped.
pub async fn sqlite_begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("BEGIN did not finish: {e}")))?
}

/// `BEGIN` on PostgreSQL, safe to cancel. sqlx 0.8 counts a transaction
/// only once `BEGIN`'s answer is in, so a caller cancelled in between (a
/// client gone, a timeout, an aborted task) would leave the pooled
/// connection inside a transaction nobody ends: the next borrower's
/// statements would run in it, uncommitted, holding their locks
/// (transact-rs/sqlx#4393; SQLite's driver is safe). The `BEGIN` runs in a
/// task of its own: a cancelled caller leaves it a whole transaction, which
/// rolls back when dropped, before the connection is pooled again.
pub async fn pg_begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("BEGIN did not finish: {e}")))?
}

/// A write transaction on either backend (on SQLite, with the in-process
/// write lock, released when the transaction ends).
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>, OwnedMutexGuard<()>),
    Pg(Transaction<'static, Postgres>),
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it cannot fail later on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(db) => db.begin_on(&db.writer).await?,
            Db::Postgres(db) => Tx::Pg(pg_begin(&db.pool).await?),
        })
    }

    /// Starts a write transaction whose commit need not reach the disk at
    /// once: for read models, which are rebuilt from the log anyway. A crash
    /// may lose the last such commits, never part of one (the checkpoint
    /// goes with the rows), so the runner simply re-applies them. On SQLite
    /// the next append's commit (always fully synced) flushes them too.
    pub async fn begin_relaxed(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Db::Sqlite(db) => db.begin_on(&db.relaxed).await,
            Db::Postgres(db) => {
                let mut tx = pg_begin(&db.pool).await?;
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx::Pg(tx))
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(db) => {
                db.writer.close().await;
                db.relaxed.close().await;
                db.reader.close().await;
            }
            Db::Postgres(db) => db.pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx, _guard) => tx.commit().await,
            Tx::Pg(tx) => tx.commit().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Pg(_) => Backend::Postgres,
        }
    }
}

/// The most rows one multi-row `INSERT` carries (it keeps a statement's
/// memory modest; SQLite allows 32,766 parameters, PostgreSQL 65,535).
pub const ROWS_PER_STATEMENT: usize = 1000;

/// Splits rows for multi-row `INSERT`s of `columns` parameters each on
/// `backend`: at most [`ROWS_PER_STATEMENT`], within the backend's limit on
/// parameters per statement.
pub fn insert_chunks<T>(backend: Backend, items: &[T], columns: usize) -> Vec<&[T]> {
    let parameters = match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres => 65_535,
    };
    items
        .chunks(ROWS_PER_STATEMENT.min(parameters / columns.max(1)).max(1))
        .collect()
}

/// The `VALUES` list of a multi-row `INSERT`: `rows` groups of `columns`
/// parameters, each group followed by `constants` (literal SQL such as
/// `, 'pending', 0`). SQLite gets plain `?` parameters: sqlx looks each
/// numbered one up by name, which SQLite answers by walking a list, so
/// binding `$n` parameters costs time quadratic in their number.
pub fn values_list(backend: Backend, rows: usize, columns: usize, constants: &str) -> String {
    let mut sql = String::with_capacity(rows * (columns * 6 + constants.len() + 4));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        sql.push_str(constants);
        sql.push(')');
    }
    sql
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body` with `$c` bound to the transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx, _) => {
                let $c = &mut **tx;
                $body
            }
            $crate::db::Tx::Pg(tx) => {
                let $c = &mut **tx;
                $body
            }
        }
    };
}

/// Runs `$body` with `$p` bound to a pool for reads (`&SqlitePool` or
/// `&PgPool`).
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(db) => {
                let $p = &db.reader;
                $body
            }
            $crate::db::Db::Postgres(db) => {
                let $p = &db.pool;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{Backend, insert_chunks, values_list};

    #[test]
    fn values_lists_number_parameters_only_on_postgres() {
        assert_eq!(
            values_list(Backend::Sqlite, 2, 2, ", 0"),
            "(?, ?, 0), (?, ?, 0)"
        );
        assert_eq!(
            values_list(Backend::Postgres, 2, 3, ""),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_list(Backend::Postgres, 0, 3, ""), "");
    }

    #[test]
    fn chunks_stay_under_the_parameter_limits() {
        let rows = vec![0u8; 2500];
        let sizes: Vec<usize> = insert_chunks(Backend::Sqlite, &rows, 7)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        for (backend, limit) in [(Backend::Sqlite, 32_766), (Backend::Postgres, 65_535)] {
            let wide: Vec<usize> = insert_chunks(backend, &rows, 100)
                .iter()
                .map(|c| c.len())
                .collect();
            assert!(wide.iter().all(|n| n * 100 <= limit), "{wide:?}");
            assert_eq!(wide.iter().sum::<usize>(), 2500);
        }
    }
}
