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
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
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
            Db::Postgres(db) => Tx::Pg(db.pool.begin().await?),
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
                let mut tx = db.pool.begin().await?;
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

/// The largest statement Herald sends to PostgreSQL in one message, in bytes.
///
/// sqlx 0.9.0 does not set `TCP_NODELAY`. A message larger than the
/// socket's send buffer (16 KiB by default on Linux) goes out in two writes,
/// and Nagle's algorithm holds the second until the server's delayed ACK:
/// a 40 ms stall. Bulk writes are therefore cut into statements well under
/// that size (a few extra round trips cost far less). Remove once sqlx sets
/// `TCP_NODELAY` again (sqlx PR #4336).
pub const PG_STATEMENT_BYTES: usize = 8 * 1024;

/// Splits `items` into runs whose estimated encoded size stays under
/// `max_bytes` (every run holds at least one item).
pub fn size_chunks<T>(items: &[T], size: impl Fn(&T) -> usize, max_bytes: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if i > start && bytes + s > max_bytes {
            chunks.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// The most rows one multi-row `INSERT` carries on SQLite (its limit is
/// 32,766 parameters; this keeps a statement's memory modest).
pub const SQLITE_ROWS_PER_STATEMENT: usize = 1000;

/// Splits rows for multi-row `INSERT`s on `backend`: under
/// [`PG_STATEMENT_BYTES`] by `size` on PostgreSQL, by count on SQLite (no
/// socket in between, so fewer, larger statements are simply cheaper).
pub fn insert_chunks<T>(
    backend: Backend,
    items: &[T],
    columns: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    match backend {
        Backend::Postgres => size_chunks(items, size, PG_STATEMENT_BYTES),
        Backend::Sqlite => items
            .chunks(
                SQLITE_ROWS_PER_STATEMENT
                    .min(32_766 / columns.max(1))
                    .max(1),
            )
            .collect(),
    }
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
    use super::{Backend, insert_chunks, size_chunks, values_list};

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
    fn sqlite_chunks_stay_under_its_parameter_limit() {
        let rows = vec![0u8; 2500];
        let sizes: Vec<usize> = insert_chunks(Backend::Sqlite, &rows, 7, |_| 1)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let wide: Vec<usize> = insert_chunks(Backend::Sqlite, &rows, 100, |_| 1)
            .iter()
            .map(|c| c.len())
            .collect();
        assert!(wide.iter().all(|n| n * 100 <= 32_766), "{wide:?}");
        assert_eq!(wide.iter().sum::<usize>(), 2500);
    }

    #[test]
    fn chunks_stay_under_the_budget() {
        let items = [3, 3, 3, 10, 1, 1];
        let chunks = size_chunks(&items, |i| *i, 6);
        assert_eq!(chunks, vec![&[3, 3][..], &[3][..], &[10][..], &[1, 1][..]]);
        assert!(size_chunks(&[] as &[usize], |i| *i, 6).is_empty());
    }
}
