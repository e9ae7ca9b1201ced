//! A PostgreSQL outage under load, on a throwaway cluster the test starts,
//! stops and starts again itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_tests::TestDb;
use herald_tests::backend::{pg_required, temp_dir};
use herald_tests::pg_cluster::PgCluster;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::durability::{self, Subject};
use super::writers::{self, Attempt, quantile};
use super::{ONE_LOAD_AT_A_TIME, ROOT_TOKEN, WRITERS, client, create_app, spec, start};

/// Load before the outage, the outage itself, load after it.
const WARM_UP: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
/// While the database is down, every answer comes within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Commands succeed again within this of the database accepting connections.
const RECOVER_WITHIN: Duration = Duration::from_secs(1);
const PROGRESS_WITHIN: Duration = Duration::from_secs(30);
/// Between two `/readyz` probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// The data directory, removed however the test ends.
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `GET /readyz`.
#[derive(Debug, Clone)]
struct Probe {
    sent: Instant,
    latency: Duration,
    status: Option<u16>,
    retry_after: Option<String>,
}

impl Probe {
    fn answered(&self) -> Instant {
        self.sent + self.latency
    }
}

/// Probes `/readyz` until told to stop.
fn probe_readiness(
    client: reqwest::Client,
    url: String,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Vec<Probe>> {
    tokio::spawn(async move {
        let mut probes = Vec::new();
        while !*stop.borrow() {
            let sent = Instant::now();
            let answer = client.get(&url).send().await;
            let (status, retry_after) = match answer {
                Ok(r) => (
                    Some(r.status().as_u16()),
                    r.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                ),
                Err(_) => (None, None),
            };
            probes.push(Probe {
                sent,
                latency: sent.elapsed(),
                status,
                retry_after,
            });
            let _ = tokio::time::timeout(PROBE_EVERY, stop.changed()).await;
        }
        probes
    })
}

fn summary(latencies: &[Duration]) -> String {
    format!(
        "{} answers, max {:.0?}, p50 {:.0?}",
        latencies.len(),
        latencies.iter().max().copied().unwrap_or_default(),
        quantile(latencies, 0.5)
    )
}

/// A 503 that says when to come back.
fn unavailable(status: Option<u16>, retry_after: Option<&String>) -> bool {
    status == Some(503) && retry_after.is_some_and(|r| r.parse::<u64>().is_ok())
}

/// 16 writers run against `herald serve` on a cluster of its own; after 2 s
/// the cluster is stopped (`pg_ctl stop -m fast`) for 3 s, then started
/// again, and the load goes on for 3 s. Asserts, and prints: every command
/// and `/readyz` in flight while the database was down was answered within
/// 1 s of the later of its sending and the database going (max and p50),
/// with 503 and `Retry-After` if answered before the restart; the first
/// command succeeded within 1 s of the database accepting connections again
/// (the recovery time), and none failed after that second; and everything
/// `kill9` checks: nothing acknowledged lost or doubled, a dense log, the
/// hash chain, the read models.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_is_answered_quickly_and_loses_nothing() {
    let _turn = ONE_LOAD_AT_A_TIME.lock().await;
    let began = Instant::now();
    let cluster = match tokio::task::spawn_blocking(PgCluster::create).await {
        Ok(Ok(cluster)) => Arc::new(cluster),
        Ok(Err(reason)) if !pg_required() => {
            eprintln!("skipped: cannot create a throwaway PostgreSQL cluster: {reason}");
            return;
        }
        Ok(Err(reason)) => panic!(
            "PostgreSQL is required (HERALD_TEST_REQUIRE_PG=1) but no throwaway cluster \
             can be created: {reason}"
        ),
        Err(e) => panic!("creating the cluster panicked: {e}"),
    };
    let created_in = began.elapsed();
    let dir = RemovedOnDrop(temp_dir("pg-outage"));
    let spec = spec(&dir.0, Some(cluster.url()));
    let served = start(&spec).await;
    let client = client();
    let token = create_app(&client, &served.base_url()).await;
    let (_base, follow) = watch::channel(served.base_url());
    let writers = writers::start(WRITERS, &token, follow);
    let (stop_probes, probes_stopped) = watch::channel(false);
    let prober = probe_readiness(
        client.clone(),
        format!("{}/readyz", served.base_url()),
        probes_stopped,
    );

    tokio::time::sleep(WARM_UP).await;
    writers.wait_acknowledged(WRITERS, PROGRESS_WITHIN).await;
    let before_outage = writers.acknowledged();
    let stopper = cluster.clone();
    tokio::task::spawn_blocking(move || stopper.stop("fast"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("cannot stop the cluster: {e}"));
    let down = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let restart = Instant::now();
    let starter = cluster.clone();
    tokio::task::spawn_blocking(move || starter.launch())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("cannot start the cluster again: {e}"));
    let accepting = cluster.wait_accepting(Duration::from_secs(60)).await;
    let after_outage = writers.acknowledged();
    writers
        .wait_acknowledged(after_outage + WRITERS, PROGRESS_WITHIN)
        .await;
    tokio::time::sleep(AFTER).await;
    let attempts = writers.stop().await;
    let _ = stop_probes.send(true);
    let probes = prober.await.unwrap_or_else(|e| panic!("{e}"));

    // While down: quick answers, 503 with Retry-After until the restart.
    // Judged: every request in flight at some moment of the outage, by how
    // long it waited once the database was gone.
    let in_outage = |sent: Instant, answered: Instant| sent < restart && answered > down;
    let waited =
        |sent: Instant, answered: Instant| answered.saturating_duration_since(sent.max(down));
    let outage_commands: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| in_outage(a.sent, a.answered()))
        .collect();
    let outage_probes: Vec<&Probe> = probes
        .iter()
        .filter(|p| in_outage(p.sent, p.answered()))
        .collect();
    let command_latencies: Vec<Duration> = outage_commands
        .iter()
        .map(|a| waited(a.sent, a.answered()))
        .collect();
    let probe_latencies: Vec<Duration> = outage_probes
        .iter()
        .map(|p| waited(p.sent, p.answered()))
        .collect();
    let slow_commands = command_latencies
        .iter()
        .filter(|l| **l > ANSWER_WITHIN)
        .count();
    let slow_probes = probe_latencies
        .iter()
        .filter(|l| **l > ANSWER_WITHIN)
        .count();
    let wrong_commands: Vec<&&Attempt> = outage_commands
        .iter()
        .filter(|a| a.answered() < restart && !unavailable(a.status, a.retry_after.as_ref()))
        .collect();
    let wrong_probes: Vec<&&Probe> = outage_probes
        .iter()
        .filter(|p| p.answered() < restart && !unavailable(p.status, p.retry_after.as_ref()))
        .collect();

    // Back: the first success after the restart, and no failure a second later.
    let recovery = attempts
        .iter()
        .filter(|a| a.acknowledged() && a.answered() >= restart)
        .map(|a| a.answered().saturating_duration_since(accepting))
        .min();
    let ready_again = probes
        .iter()
        .filter(|p| p.status == Some(200) && p.sent >= restart)
        .map(|p| p.answered().saturating_duration_since(accepting))
        .min();
    let settled = accepting + RECOVER_WITHIN;
    // A 404 is a PATCH of a device whose registration the outage refused.
    let failed_after: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.sent >= settled && a.status.is_none_or(|s| s >= 500))
        .collect();
    let unready_after = probes
        .iter()
        .filter(|p| p.sent >= settled && p.status != Some(200))
        .count();

    eprintln!(
        "reliability PostgreSQL outage: cluster created in {created_in:.1?}; {before_outage} \
         acknowledged before the outage; down {:.1?} (stop to restart); accepting {:.0?} after \
         the restart; commands while down: {} ({slow_commands} over {ANSWER_WITHIN:?}, {} not \
         503 with Retry-After); /readyz while down: {} ({slow_probes} over, {} wrong); first \
         command success {:?} after accepting, /readyz 200 {:?} after; {} commands and {} \
         probes failed after that second",
        restart - down,
        accepting - restart,
        summary(&command_latencies),
        wrong_commands.len(),
        summary(&probe_latencies),
        wrong_probes.len(),
        recovery,
        ready_again,
        failed_after.len(),
        unready_after,
    );
    // Nothing lost, whatever the timings (checked first, so that a slow
    // answer does not hide a lost command).
    let db = TestDb::connect_pg("public", &cluster.url(), 2).await;
    let subject = Subject {
        client: &client,
        base: served.base_url(),
        root_token: ROOT_TOKEN,
        token: &token,
        db: &db,
        spec: &spec,
    };
    let report = durability::check(&subject, &attempts).await;
    eprintln!(
        "reliability PostgreSQL outage: acknowledged {}, found {}, duplicates {}; {report}; \
         test took {:.1?}",
        report.acknowledged,
        report.found,
        report.duplicates,
        began.elapsed()
    );
    assert_eq!(
        slow_commands,
        0,
        "commands answered slower than {ANSWER_WITHIN:?} while the database was down ({})",
        summary(&command_latencies)
    );
    assert_eq!(
        slow_probes,
        0,
        "/readyz answered slower than {ANSWER_WITHIN:?} while the database was down ({})",
        summary(&probe_latencies)
    );
    assert!(
        wrong_commands.is_empty(),
        "commands not answered 503 with Retry-After while the database was down: {:?}",
        wrong_commands.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        wrong_probes.is_empty(),
        "/readyz not answered 503 with Retry-After while the database was down: {:?}",
        wrong_probes.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        outage_commands.len() >= WRITERS && outage_probes.len() >= 2,
        "too few requests during the outage to judge it"
    );
    let recovery = recovery.unwrap_or_else(|| panic!("no command succeeded after the outage"));
    assert!(
        recovery <= RECOVER_WITHIN,
        "the first command succeeded {recovery:?} after the database accepted connections"
    );
    assert!(
        failed_after.is_empty(),
        "commands failed more than {RECOVER_WITHIN:?} after the database returned: {:?}",
        failed_after.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(
        unready_after, 0,
        "/readyz not 200 after the database returned"
    );

    drop(served);
    db.close().await;
}
