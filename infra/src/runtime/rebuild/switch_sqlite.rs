//! Putting a SQLite shadow in place without holding the write lock for
//! long (appends wait for it): the shadow's rows are copied into staging
//! tables of the live file (`<table>__next`, with the live table's indexes)
//! a chunk per short transaction (about [`HOLD`] each), while triggers in the shadow note every
//! row the catch-up changes after that. Then one short transaction holds
//! the lock: the shadow takes the last events, the rows changed meanwhile
//! are copied again, each live table is dropped and its staging table
//! renamed in its place, and the checkpoints are handed over.
//!
//! SQLite cannot rename an index, so a staging table's indexes take names
//! that alternate from one rebuild to the next (`<name>` and
//! `<name>__rebuild`): a migration that drops or replaces an index of a
//! read model's table names both (`DROP INDEX IF EXISTS`).

use std::time::{Duration, Instant};

use domain::RecordedEvent;
use projections::Projection;
use projections::db::Db;
use sqlx::{Connection, SqliteConnection};

use super::apply_batch;
use crate::clock::{Clock, SystemClock};
use crate::runtime::RuntimeError as RunnerError;
use crate::store::{EventStore, StoreError, rows};

/// How long one copy transaction should hold the write lock: the rows per
/// chunk follow from the last chunk's pace (between [`MIN_ROWS`] and
/// [`MAX_ROWS`]), since inserting into big indexed tables slows down as
/// they grow.
const HOLD: Duration = Duration::from_millis(250);
const MIN_ROWS: i64 = 500;
const MAX_ROWS: i64 = 200_000;
/// Events applied per step of the final catch-up.
const BATCH: i64 = 5000;
/// Staging tables' suffix.
const NEXT: &str = "__next";
const ALTERNATE: &str = "__rebuild";

/// Staging tables filled from the shadow, waiting for [`Staging::finish`].
pub(super) struct Staging {
    conn: SqliteConnection,
    staged: Vec<Staged>,
    /// The longest a copy's transaction held the write lock.
    longest: Duration,
}

impl Staging {
    /// Starts noting the shadow's changes, then stages and copies `tables`
    /// (the shadow's catch-up may run after this; what it changes is
    /// copied again by `finish`).
    pub async fn prepare(
        live: &Db,
        shadow: &Db,
        shadow_file: &std::path::Path,
        tables: &[&'static str],
    ) -> Result<Self, RunnerError> {
        let Db::Sqlite(s) = live else {
            return Err(StoreError::Internal("not SQLite".into()).into());
        };
        track_changes(shadow, tables).await?;
        let mut conn = SqliteConnection::connect_with(&s.relaxed.connect_options()).await?;
        sqlx::query("ATTACH DATABASE $1 AS rebuild")
            .bind(shadow_file.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await?;
        let copied = async {
            let mut staged = Vec::new();
            for table in tables {
                let _lock = s.write_lock.clone().lock_owned().await;
                staged.push(stage(&mut conn, table).await?);
            }
            let mut longest = Duration::ZERO;
            for table in &staged {
                longest = longest.max(copy(&mut conn, s, table).await?);
            }
            Ok::<_, RunnerError>((staged, longest))
        }
        .await;
        match copied {
            Ok((staged, longest)) => Ok(Self {
                conn,
                staged,
                longest,
            }),
            Err(e) => {
                let _ = conn.close().await;
                Err(e)
            }
        }
    }

    /// The switch itself, see [`finish`]; returns the position switched in
    /// at and the longest the write lock was held (a copy, or the switch).
    pub async fn finish(
        mut self,
        live: &Db,
        store: &dyn EventStore,
        shadow: &Db,
        positions: &mut [(&dyn Projection, i64)],
    ) -> Result<(i64, Duration), RunnerError> {
        let Db::Sqlite(s) = live else {
            return Err(StoreError::Internal("not SQLite".into()).into());
        };
        let held = Instant::now();
        let result = finish(&mut self.conn, s, store, shadow, positions, &self.staged)
            .await
            .map(|position| (position, self.longest.max(held.elapsed())));
        let _ = sqlx::query("DETACH DATABASE rebuild")
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
        result
    }
}

/// A live table and how to copy it.
struct Staged {
    name: &'static str,
    /// The column list (with `rowid` first unless a column is the rowid).
    columns: String,
}

/// Triggers in the shadow note the rowid of every row written after now.
async fn track_changes(shadow: &Db, tables: &[&str]) -> Result<(), RunnerError> {
    let mut tx = shadow.begin().await?;
    let mut statements = vec![
        "CREATE TABLE IF NOT EXISTS rebuild_dirty (tbl TEXT NOT NULL, id INTEGER NOT NULL)"
            .to_owned(),
        "DELETE FROM rebuild_dirty".to_owned(),
    ];
    for t in tables {
        statements.push(format!(
            "CREATE TRIGGER IF NOT EXISTS rebuild_dirty_{t}_i AFTER INSERT ON {t} \
             BEGIN INSERT INTO rebuild_dirty VALUES ('{t}', new.rowid); END"
        ));
        statements.push(format!(
            "CREATE TRIGGER IF NOT EXISTS rebuild_dirty_{t}_u AFTER UPDATE ON {t} \
             BEGIN INSERT INTO rebuild_dirty VALUES ('{t}', old.rowid), ('{t}', new.rowid); END"
        ));
        statements.push(format!(
            "CREATE TRIGGER IF NOT EXISTS rebuild_dirty_{t}_d AFTER DELETE ON {t} \
             BEGIN INSERT INTO rebuild_dirty VALUES ('{t}', old.rowid); END"
        ));
    }
    for sql in statements {
        projections::on_tx!(&mut tx, |c| {
            sqlx::query(&sql).execute(c).await?;
        });
    }
    tx.commit().await?;
    Ok(())
}

/// Creates `<table>__next` like the live table, with its indexes (named
/// the other way round), empty.
async fn stage(conn: &mut SqliteConnection, table: &'static str) -> Result<Staged, RunnerError> {
    let staging = format!("{table}{NEXT}");
    let ddl: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT type, sql, name FROM main.sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL \
         ORDER BY type DESC",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let columns: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT name, type, pk FROM main.pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
    let broken = |what: &str| StoreError::Internal(format!("cannot stage {table}: {what}"));
    let mut tx = conn.begin().await?;
    // A write first, so the transaction takes the live file's write lock
    // (waiting for it) before it reads the schema: begun by a read, its
    // first write would fail at once (SQLITE_BUSY_SNAPSHOT) whenever a
    // running server wrote in between.
    sqlx::query("UPDATE main.projection_checkpoints SET updated_at = updated_at")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS main.{staging}"))
        .execute(&mut *tx)
        .await?;
    for (kind, sql, name) in &ddl {
        let sql = sql.as_deref().unwrap_or_default();
        // A renamed table's statements name it in quotes.
        let staged = [table.to_owned(), format!("\"{table}\"")]
            .iter()
            .find_map(|t| {
                if kind == "table" {
                    replace_once(
                        sql,
                        &format!("CREATE TABLE {t}"),
                        &format!("CREATE TABLE {staging}"),
                    )
                } else {
                    let other = staged_index_name(name);
                    replace_once(
                        sql,
                        &format!(" {name} ON {t}"),
                        &format!(" {other} ON {staging}"),
                    )
                }
            })
            .ok_or_else(|| broken(sql))?;
        sqlx::query(&format!(
            "DROP INDEX IF EXISTS main.{}",
            staged_index_name(name)
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&staged).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // A single INTEGER PRIMARY KEY is the rowid itself.
    let rowid_alias = columns.iter().filter(|(_, _, pk)| *pk > 0).count() == 1
        && columns
            .iter()
            .any(|(_, ty, pk)| *pk == 1 && ty.eq_ignore_ascii_case("INTEGER"));
    let names: Vec<&str> = columns.iter().map(|(n, _, _)| n.as_str()).collect();
    let columns = if rowid_alias {
        names.join(", ")
    } else {
        format!("rowid, {}", names.join(", "))
    };
    Ok(Staged {
        name: table,
        columns,
    })
}

fn staged_index_name(name: &str) -> String {
    name.strip_suffix(ALTERNATE)
        .map_or_else(|| format!("{name}{ALTERNATE}"), str::to_owned)
}

fn replace_once(sql: &str, from: &str, to: &str) -> Option<String> {
    sql.contains(from).then(|| sql.replacen(from, to, 1))
}

/// Copies the shadow's rows into the staging table, a chunk of rowids per
/// transaction; returns the longest a chunk held the write lock.
async fn copy(
    conn: &mut SqliteConnection,
    live: &projections::db::SqliteDb,
    table: &Staged,
) -> Result<Duration, RunnerError> {
    let (name, columns) = (table.name, &table.columns);
    let mut after = i64::MIN;
    let mut longest = Duration::ZERO;
    let mut rows = 10_000i64;
    loop {
        let upto: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT max(rowid) FROM (SELECT rowid FROM rebuild.{name} WHERE rowid > $1 \
             ORDER BY rowid LIMIT $2)"
        ))
        .bind(after)
        .bind(rows)
        .fetch_one(&mut *conn)
        .await?;
        let Some(upto) = upto else {
            return Ok(longest);
        };
        let _lock = live.write_lock.clone().lock_owned().await;
        let held = Instant::now();
        // Deferred (as every transaction of this connection): `IMMEDIATE`
        // would take the attached shadow's write lock too, which its index
        // builds hold meanwhile. The one statement takes the live file's
        // write lock as it starts, waiting for it like any writer.
        let mut tx = conn.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO main.{name}{NEXT} ({columns}) SELECT {columns} FROM rebuild.{name} \
             WHERE rowid > $1 AND rowid <= $2"
        ))
        .bind(after)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let took = held.elapsed();
        longest = longest.max(took);
        let pace = HOLD.as_secs_f64() / took.as_secs_f64().max(1e-3);
        rows = ((rows as f64 * pace) as i64).clamp(MIN_ROWS, MAX_ROWS);
        after = upto;
    }
}

/// Under the write lock: the shadow takes the last events, rows changed
/// since their copy are copied again, staging tables replace the live
/// ones, checkpoints are handed over.
async fn finish(
    conn: &mut SqliteConnection,
    live: &projections::db::SqliteDb,
    store: &dyn EventStore,
    shadow: &Db,
    positions: &mut [(&dyn Projection, i64)],
    staged: &[Staged],
) -> Result<i64, RunnerError> {
    let _lock = live.write_lock.clone().lock_owned().await;
    // Deferred, so only the live file is locked: the shadow stays
    // writable through its own connections.
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE main.projection_checkpoints SET updated_at = updated_at")
        .execute(&mut *tx)
        .await?;
    loop {
        let lowest = super::lowest(positions);
        // Unqualified names resolve to `main` before attached files.
        let found = sqlx::query(rows::READ_AFTER)
            .bind(lowest)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        let mut events = found
            .iter()
            .map(rows::decode)
            .collect::<Result<Vec<RecordedEvent>, _>>()?;
        if events.is_empty() {
            break;
        }
        store.open(&mut events).await?;
        let mut shadow_tx = shadow.begin_relaxed().await?;
        apply_batch(&mut shadow_tx, positions, &events).await?;
        shadow_tx.commit().await?;
    }
    for Staged { name, columns } in staged {
        let dirty = format!("SELECT id FROM rebuild.rebuild_dirty WHERE tbl = '{name}'");
        sqlx::query(&format!(
            "DELETE FROM main.{name}{NEXT} WHERE rowid IN ({dirty})"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO main.{name}{NEXT} ({columns}) SELECT {columns} FROM rebuild.{name} \
             WHERE rowid IN ({dirty})"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DROP TABLE main.{name}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE main.{name}{NEXT} RENAME TO {name}"))
            .execute(&mut *tx)
            .await?;
    }
    let position = super::lowest(positions);
    // An offline operator tool: the switch is stamped by the system clock.
    let now = SystemClock.now().timestamp_micros();
    for (projection, _) in positions.iter() {
        sqlx::query(
            "INSERT INTO main.projection_checkpoints (name, version, position, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(projection.name())
        .bind(projection.version())
        .bind(position)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_alternate() {
        assert_eq!(staged_index_name("devices_user"), "devices_user__rebuild");
        assert_eq!(staged_index_name("devices_user__rebuild"), "devices_user");
        assert_eq!(
            replace_once(
                "CREATE INDEX devices_user ON devices (app_id, user_id)",
                " devices_user ON devices",
                " devices_user__rebuild ON devices__next"
            )
            .as_deref(),
            Some("CREATE INDEX devices_user__rebuild ON devices__next (app_id, user_id)")
        );
    }
}
