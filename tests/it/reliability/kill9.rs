//! `kill -9` of `herald serve` under concurrent load, on both backends.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use herald_tests::{Backend, TestDb, on_both};
use tokio::sync::watch;

use super::durability::{self, Subject};
use super::{ONE_LOAD_AT_A_TIME, ROOT_TOKEN, WRITERS, client, create_app, spec, start, writers};

/// Load before the kill, and after the restart.
const BEFORE_KILL: Duration = Duration::from_secs(3);
const AFTER_RESTART: Duration = Duration::from_secs(3);
const PROGRESS_WITHIN: Duration = Duration::from_secs(30);

on_both!(a_kill_9_under_load_loses_no_acknowledged_command, kill9);

/// 16 writers issue commands (PUT devices, PATCH properties, PUT users) for
/// about 3 s; the process gets SIGKILL and is started again on the same
/// database (SQLite: the data directory; PostgreSQL: the test's schema)
/// while the writers go on for 3 s more. Then: every acknowledged command
/// is in the log exactly once, at the position it was acknowledged with;
/// no command is in it twice; positions 1..head have no holes; the hash
/// chain verifies (`/v1/audit/verify` and `herald verify`); the read
/// models show the log's last write of every field. Prints the counts
/// (acknowledged, found, duplicates, committed unacknowledged) and timings.
async fn kill9(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let _turn = ONE_LOAD_AT_A_TIME.lock().await;
    let began = Instant::now();
    let spec = spec(&db.dir, db.url());
    let first = start(&spec).await;
    let client = client();
    let token = create_app(&client, &first.base_url()).await;
    let (base, follow) = watch::channel(first.base_url());
    let writers = writers::start(WRITERS, &token, follow);

    let load = Instant::now();
    tokio::time::sleep(BEFORE_KILL).await;
    writers.wait_acknowledged(WRITERS, PROGRESS_WITHIN).await;
    let before_kill = writers.acknowledged();
    let killed_at = load.elapsed();
    let status = first.kill9();
    assert_eq!(status.signal(), Some(9), "herald died of SIGKILL: {status}");

    let restart = Instant::now();
    let second = start(&spec).await;
    let restarted_in = restart.elapsed();
    base.send_replace(second.base_url());
    writers
        .wait_acknowledged(before_kill + WRITERS, PROGRESS_WITHIN)
        .await;
    tokio::time::sleep(AFTER_RESTART).await;
    let attempts = writers.stop().await;
    let loaded_for = load.elapsed();

    let subject = Subject {
        client: &client,
        base: second.base_url(),
        root_token: ROOT_TOKEN,
        token: &token,
        db: &db.db,
        spec: &spec,
    };
    let report = durability::check(&subject, &attempts).await;
    assert!(
        report.acknowledged > before_kill,
        "commands after the restart"
    );
    eprintln!(
        "reliability kill -9 ({backend:?}): {WRITERS} writers for {loaded_for:.1?}, SIGKILL at \
         {killed_at:.1?} after {before_kill} acknowledgements, restarted in {restarted_in:.1?}; \
         acknowledged {}, found {}, duplicates {}; {report}; test took {:.1?}",
        report.acknowledged,
        report.found,
        report.duplicates,
        began.elapsed()
    );
    drop(second);
}
