//! What must hold after a crash or an outage, checked against the running
//! server and the database: every acknowledged command's event is in the
//! log exactly once, at the position it was acknowledged with; no command
//! (acknowledged or not) is in it twice; the log is dense; the app's hash
//! chain verifies (API and `herald verify`); the read models show what the
//! log says.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use herald_tests::serve::ServeSpec;
use projections::db::Db;
use serde_json::Value;

use super::writers::{Attempt, Field, Target};

/// How long the read models may take to catch up after a restart.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);

/// Where the checks look.
pub struct Subject<'a> {
    pub client: &'a reqwest::Client,
    pub base: String,
    pub root_token: &'a str,
    /// The app's key (all roles).
    pub token: &'a str,
    /// Another connection to the server's database.
    pub db: &'a Db,
    /// For `herald verify` on the same database.
    pub spec: &'a ServeSpec,
}

#[derive(Debug, Default)]
pub struct Report {
    pub attempts: usize,
    pub acknowledged: usize,
    pub found: usize,
    pub duplicates: usize,
    /// Committed, though the client was not told so (in flight at the
    /// crash, or answered 503 as the database went), per answer.
    pub committed_unacknowledged: BTreeMap<String, usize>,
    /// Of those answered, how many were written after their answer, and
    /// the latest how long after.
    pub written_after_answer: usize,
    pub latest_write_after_answer: Duration,
    pub head: i64,
    pub resources: usize,
    pub caught_up_in: Duration,
    /// Attempts per answer (`none`: refused, reset, timed out).
    pub answers: BTreeMap<String, usize>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attempts {}, acknowledged {}, found {}, duplicates {}, committed unacknowledged {:?} \
             ({} of them written after their answer, up to {:.1?} after), \
             log head {} (dense), {} resources match the log, read models caught up in {:?}; \
             answers {:?}",
            self.attempts,
            self.acknowledged,
            self.found,
            self.duplicates,
            self.committed_unacknowledged,
            self.written_after_answer,
            self.latest_write_after_answer,
            self.head,
            self.resources,
            self.caught_up_in,
            self.answers
        )
    }
}

/// The status, or `none` when there was no HTTP answer.
fn answer(attempt: &Attempt) -> String {
    attempt.status.map_or("none".into(), |s| s.to_string())
}

async fn get(subject: &Subject<'_>, path: &str, token: &str) -> (u16, Value) {
    let response = subject
        .client
        .get(format!("{}{path}", subject.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until every read model has applied the whole log.
async fn wait_caught_up(subject: &Subject<'_>) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get(subject, "/v1/admin/projections", subject.root_token).await;
        let models = body["projections"].as_array().cloned().unwrap_or_default();
        if status == 200 && !models.is_empty() && models.iter().all(|m| m["lag_events"] == 0) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < CATCH_UP_WITHIN,
            "the read models did not catch up within {CATCH_UP_WITHIN:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of the app, in log order.
async fn app_events(subject: &Subject<'_>) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (status, body) = get(
            subject,
            &format!("/v1/events?after={after}&limit=1000"),
            subject.token,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page = body["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        after = body["next_after"].as_i64().unwrap_or_default();
        all.extend(page);
    }
}

/// The marker an event carries, and the field it set.
fn marker_of(event: &Value) -> Option<(String, Field)> {
    let data = &event["data"];
    let (value, field) = match event["event_type"].as_str()? {
        "device.registered" | "device.updated" => (&data["push_token"], Field::PushToken),
        "device.properties_changed" => (&data["set"]["marker"], Field::Property),
        "user.created" | "user.updated" => (&data["name"], Field::UserName),
        _ => return None,
    };
    value
        .as_str()
        .filter(|m| m.starts_with("rel-"))
        .map(|m| (m.to_owned(), field))
}

/// `(count, min, max)` of the positions of the whole log (every app).
async fn log_extent(db: &Db) -> (i64, i64, i64) {
    const SQL: &str =
        "SELECT COUNT(*), COALESCE(MIN(position), 0), COALESCE(MAX(position), 0) FROM events";
    let row: Result<(i64, i64, i64), sqlx::Error> = match db {
        Db::Sqlite(s) => sqlx::query_as(SQL).fetch_one(&s.reader).await,
        Db::Postgres(p) => sqlx::query_as(SQL).fetch_one(&p.pool).await,
    };
    row.unwrap_or_else(|e| panic!("cannot read the log's extent: {e}"))
}

/// Runs every check; panics on the first that fails, naming it.
pub async fn check(subject: &Subject<'_>, attempts: &[Attempt]) -> Report {
    let mut report = Report {
        attempts: attempts.len(),
        caught_up_in: wait_caught_up(subject).await,
        ..Report::default()
    };
    for attempt in attempts {
        *report.answers.entry(answer(attempt)).or_default() += 1;
    }
    let events = app_events(subject).await;

    // Density: positions 1..=head, no holes, over the whole log; the app's
    // events in strictly increasing order within it.
    let (count, min, head) = log_extent(subject.db).await;
    assert!(count > 0, "the log is empty");
    assert_eq!(
        (min, count),
        (1, head),
        "the log has holes: {count} events between positions {min} and {head}"
    );
    report.head = head;
    let positions: Vec<i64> = events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .collect();
    assert_eq!(positions.len(), events.len(), "events without a position");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]) && positions.last() <= Some(&head),
        "the app's events are not in log order"
    );
    let ids: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), events.len(), "an event id appears twice");

    // Exactly once: every marker at most once in the log; every
    // acknowledged one exactly once, where the acknowledgement said.
    let mut by_marker: HashMap<String, Vec<&Value>> = HashMap::new();
    for event in &events {
        if let Some((marker, _)) = marker_of(event) {
            by_marker.entry(marker).or_default().push(event);
        }
    }
    let repeated: Vec<(&String, usize)> = by_marker
        .iter()
        .filter(|(_, e)| e.len() > 1)
        .map(|(m, e)| (m, e.len()))
        .collect();
    report.duplicates = repeated.len();
    let attempted: HashMap<&str, &Attempt> =
        attempts.iter().map(|a| (a.marker.as_str(), a)).collect();
    let strangers: Vec<&String> = by_marker
        .keys()
        .filter(|m| !attempted.contains_key(m.as_str()))
        .collect();
    assert!(strangers.is_empty(), "events no writer sent: {strangers:?}");
    let mut missing = Vec::new();
    let mut misplaced = Vec::new();
    for ack in attempts.iter().filter(|a| a.acknowledged()) {
        report.acknowledged += 1;
        match by_marker.get(&ack.marker).map(Vec::as_slice) {
            Some([event]) => {
                report.found += 1;
                if event["position"].as_i64() != ack.position
                    || event["stream"].as_str() != Some(&ack.target.stream())
                {
                    misplaced.push((ack.marker.clone(), ack.position, (*event).clone()));
                }
            }
            Some(_) => {}
            None => missing.push(ack.clone()),
        }
    }
    for marker in by_marker.keys() {
        if let Some(attempt) = attempted.get(marker.as_str()).filter(|a| !a.acknowledged()) {
            // Answered (a 503, say), yet written after that answer.
            let recorded = by_marker[marker][0]["recorded_at"]
                .as_str()
                .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok());
            let answered =
                attempt.sent_at + chrono::Duration::from_std(attempt.latency).unwrap_or_default();
            if let Some(late) = recorded
                .filter(|_| attempt.status.is_some())
                .and_then(|r| (r.to_utc() - answered).to_std().ok())
            {
                report.written_after_answer += 1;
                report.latest_write_after_answer = report.latest_write_after_answer.max(late);
            }
            *report
                .committed_unacknowledged
                .entry(answer(attempt))
                .or_default() += 1;
        }
    }
    assert!(
        repeated.is_empty(),
        "commands in the log twice: {repeated:?}"
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged commands are not in the log: {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        misplaced.is_empty(),
        "acknowledged at another position or stream than stored: {:?}",
        misplaced.iter().take(5).collect::<Vec<_>>()
    );

    // Integrity: the app's chain, through the API and the CLI.
    let (status, verified) = get(subject, "/v1/audit/verify", subject.token).await;
    assert_eq!(
        (status, &verified["ok"]),
        (200, &Value::Bool(true)),
        "{verified}"
    );
    assert_eq!(
        (
            verified["events"].as_u64(),
            verified["head_position"].as_i64()
        ),
        (Some(events.len() as u64), positions.last().copied()),
        "{verified}"
    );
    let cli = subject.spec.cli(&["verify"]);
    assert!(
        cli.status.success(),
        "herald verify failed ({}): {}{}",
        cli.status,
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    );

    // The read models: each field shows the last marker the log holds for it.
    let mut last: HashMap<Target, String> = HashMap::new();
    for event in &events {
        if let Some((marker, field)) = marker_of(event) {
            let stream = event["stream"].as_str().unwrap_or_default();
            let id = stream.split_once(':').map_or(stream, |(_, id)| id);
            last.insert(
                Target {
                    id: id.to_owned(),
                    field,
                },
                marker,
            );
        }
    }
    let mut bodies: HashMap<String, Value> = HashMap::new();
    for (target, expected) in &last {
        let path = target.path();
        if !bodies.contains_key(&path) {
            let (status, body) = get(subject, &path, subject.token).await;
            assert_eq!(status, 200, "GET {path}: {body}");
            bodies.insert(path.clone(), body);
        }
        let shown = target.visible(&bodies[&path]);
        assert_eq!(
            shown.as_deref(),
            Some(expected.as_str()),
            "{path} ({:?}) does not show the log's last write",
            target.field
        );
    }
    report.resources = bodies.len();
    report
}
