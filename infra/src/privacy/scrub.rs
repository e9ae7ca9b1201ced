//! No old copy of a forgotten subject's values left in SQLite's files.
//!
//! `secure_delete = fast` zeroes what is deleted inside pages still in
//! use, and a forget folds the write-ahead log back into the file. What it
//! leaves is whole pages on the free list: a table a rebuild dropped when
//! it switched keeps its rows there until the pages are used again. So the
//! free list is filled with zeros (every free page taken by a scratch
//! table and written), a bounded number of pages per short transaction so
//! that writers wait at most for one, and then given back. On either
//! backend, a rebuild that was stopped midway leaves its working copy
//! beside the live models: it is discarded (the next rebuild starts
//! afresh) unless a rebuild is running, which applies the forget before it
//! switches in, and removes its copy.

use projections::db::{Db, SqliteDb};

use crate::runtime::rebuild;
use crate::store::StoreError;

/// Free pages overwritten per transaction.
const PAGES_PER_STEP: i64 = 2048;
/// Pages per scratch row (one zero blob spanning them).
const PAGES_PER_ROW: i64 = 16;

/// Discards a stopped rebuild's working copy, and on SQLite zeroes the
/// free pages and the write-ahead log.
pub async fn scrub(db: &Db) -> Result<(), StoreError> {
    rebuild::discard_stopped(db).await?;
    let Db::Sqlite(sqlite) = db else {
        return Ok(());
    };
    checkpoint(sqlite).await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&sqlite.reader)
        .await?;
    let blob = page_size * PAGES_PER_ROW;
    let mut scratch = false;
    // The pages free now, and no more: a page a writer frees meanwhile had
    // its cells zeroed as they were deleted (only a dropped table's pages
    // are freed whole, and a rebuild applies the forget before it drops
    // anything). So a server freeing pages all along cannot keep it going.
    let mut left: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(&sqlite.reader)
        .await?;
    while left > 0 {
        let mut tx = sqlite.begin_on(&sqlite.writer).await?;
        projections::on_tx!(&mut tx, |c| {
            let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                .fetch_one(&mut *c)
                .await?;
            if free == 0 {
                break;
            }
            sqlx::query("CREATE TABLE IF NOT EXISTS scrub_free_pages (zeros BLOB NOT NULL)")
                .execute(&mut *c)
                .await?;
            scratch = true;
            let pages = free.min(PAGES_PER_STEP);
            left -= pages;
            let rows = pages.div_euclid(PAGES_PER_ROW) + 1;
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                 INSERT INTO scrub_free_pages SELECT zeroblob($2) FROM n",
            )
            .bind(rows)
            .bind(blob)
            .execute(&mut *c)
            .await?;
        });
        tx.commit().await?;
    }
    if scratch {
        let mut tx = sqlite.begin_on(&sqlite.writer).await?;
        projections::on_tx!(&mut tx, |c| {
            sqlx::query("DROP TABLE IF EXISTS scrub_free_pages")
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await?;
        checkpoint(sqlite).await?;
    }
    Ok(())
}

/// Folds the write-ahead log (old page images) into the file, and empties it.
async fn checkpoint(sqlite: &SqliteDb) -> Result<(), StoreError> {
    let _guard = sqlite.write_lock.lock().await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&sqlite.writer)
        .await?;
    Ok(())
}
