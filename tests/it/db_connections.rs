//! Herald's database connections under a bad network and cancellation:
//! no Nagle stall on big statements, and a transaction whose caller is
//! cancelled mid-`BEGIN` never leaves its pooled connection inside it.

use std::time::Duration;

use herald_tests::{Backend, TestDb};

/// Nagle's algorithm must be off on Herald's PostgreSQL connections: with
/// it on, a statement past one TCP segment waits for the server's delayed
/// ACK, ~40 ms each time (sqlx 0.9.0 left it on; 0.8.6, which Herald uses,
/// sets TCP_NODELAY). Measured through a local proxy that itself never
/// delays (its sockets have TCP_NODELAY), so only Herald's socket counts:
/// the median of 32 KB statements must stay well under the stall.
#[tokio::test]
async fn a_32_kb_statement_does_not_stall() {
    if TestDb::new(Backend::Postgres).await.is_none() {
        return;
    }
    let proxy = herald_tests::proxy::Proxy::start(herald_tests::backend::pg_addr().await).await;
    let url = herald_tests::backend::pg_url_via(proxy.addr);
    let db = infra::database::open_postgres(&url, &infra::database::DbOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let projections::db::Db::Postgres(pg) = &db else {
        panic!("not PostgreSQL");
    };
    let big = "x".repeat(32 * 1024);
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = std::time::Instant::now();
        let length: i32 = sqlx::query_scalar("SELECT length($1::text)")
            .bind(&big)
            .fetch_one(&pg.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        times.push(started.elapsed());
        assert_eq!(length, 32 * 1024);
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < std::time::Duration::from_millis(20),
        "32 KB statements took {median:?} (median): Nagle's algorithm is on"
    );
}

/// A transaction whose caller is cancelled while `BEGIN` is on the wire (a
/// client gone, a timeout) must not leave its pooled connection inside a
/// transaction: the next borrower's statements would run in it,
/// uncommitted, holding their locks (sqlx 0.8 counts the transaction only
/// once `BEGIN` is answered). The proxy holds the answer back so that the
/// cancel falls exactly there.
#[tokio::test]
async fn a_begin_cancelled_on_the_wire_leaves_no_transaction_open() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let proxy = herald_tests::proxy::Proxy::start(herald_tests::backend::pg_addr().await).await;
    let url = herald_tests::backend::pg_url_via(proxy.addr);
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap_or_else(|e| panic!("{e}"));
    // One connection, handed out without a check, so that BEGIN is the
    // first thing sent.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let via_proxy = projections::db::Db::Postgres(projections::db::PgDb {
        pool: pool.clone(),
        schema: db.schema.clone(),
    });
    proxy.hold_replies();
    let cancelled =
        tokio::time::timeout(std::time::Duration::from_millis(300), via_proxy.begin()).await;
    assert!(
        cancelled.is_err(),
        "BEGIN was answered through a held proxy"
    );
    proxy.release_replies();

    // The same (only) connection, borrowed again, is not in a transaction.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let projections::db::Db::Postgres(direct) = &db.db else {
        panic!("not PostgreSQL");
    };
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&direct.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.as_deref(), Some("idle"));
}

/// SQLite: a write transaction's caller cancelled at any point of `BEGIN
/// IMMEDIATE` (here: after one to six polls, the connection's worker
/// thread given a varying head start between them) leaves no connection inside a
/// transaction; one that did would hold the file's write lock for good and
/// fail its pool's next `BEGIN`. The window is a few microseconds: without
/// the fix (`projections::db::sqlite_begin_immediate`) one run in four or
/// five catches it.
#[tokio::test]
async fn a_begin_cancelled_at_any_point_leaves_sqlite_unlocked() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    for attempt in 0..10_000u32 {
        let mut begin = Box::pin(db.db.begin());
        for _ in 0..=(attempt % 6) {
            if futures::poll!(&mut begin).is_ready() {
                break;
            }
            for _ in 0..(attempt % 13) * 300 {
                std::hint::spin_loop();
            }
            tokio::task::yield_now().await;
        }
        drop(begin);
    }
    // Every later transaction begins and commits on the one writer.
    for _ in 0..20 {
        let tx = tokio::time::timeout(Duration::from_secs(10), db.db.begin())
            .await
            .unwrap_or_else(|_| panic!("BEGIN hung"))
            .unwrap_or_else(|e| panic!("BEGIN failed: {e}"));
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    // And no pooled connection holds the file's write lock.
    let mut other = sqlx::ConnectOptions::connect(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db.dir.join("herald.db"))
            .busy_timeout(Duration::ZERO),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap_or_else(|e| panic!("the write lock is held: {e}"));
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
