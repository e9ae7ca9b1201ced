//! The event store conformance suite: the same tests against both adapters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::Metadata;
use domain::ids::AppId;
use herald_tests::{Backend, TestDb, on_both};
use infra::store::chain::ChainVerifier;
use infra::store::{
    AppendRequest, EventStore, ExpectedVersion, NewEvent, SqlEventStore, StoreError,
};
use serde_json::json;
use uuid::Uuid;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "test.happened".into(),
        schema_version: 1,
        data: json!({"n": n, "text": "é\"\n"}),
    }
}

fn request(
    app: AppId,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest {
        stream: stream.into(),
        expected,
        events,
        metadata: Metadata::system(app, "test"),
        new_key: None,
    }
}

async fn open(db: &TestDb) -> Arc<SqlEventStore> {
    Arc::new(
        SqlEventStore::open(db.db.clone())
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    )
}

async fn open_other(db: &TestDb) -> Arc<SqlEventStore> {
    Arc::new(
        SqlEventStore::open(db.another_pool().await)
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    )
}

on_both!(conflicting_appends_exactly_one_wins, conflicting_appends);
async fn conflicting_appends(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let stores = [open(&db).await, open_other(&db).await];
    let app = AppId::generate();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(request(
                    app,
                    "s",
                    ExpectedVersion::NoStream,
                    vec![event(0), event(1)],
                ))
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(a) => {
                wins += 1;
                assert_eq!(a.stream_version, 2);
            }
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 2),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let events = stores[0]
        .load_stream(app, "s")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1, 2]
    );
    // An exact expectation works the same way.
    let stale = stores[1]
        .append(request(
            app,
            "s",
            ExpectedVersion::Exactly(1),
            vec![event(2)],
        ))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { actual: 2, .. })),
        "{stale:?}"
    );
    let fresh = stores[1]
        .append(request(
            app,
            "s",
            ExpectedVersion::Exactly(2),
            vec![event(2)],
        ))
        .await;
    assert_eq!(fresh.map(|a| a.stream_version), Ok(3));
}

on_both!(
    a_retried_append_returns_the_original_result,
    idempotent_retry
);
async fn idempotent_retry(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = open(&db).await;
    let app = AppId::generate();
    let original = request(
        app,
        "s",
        ExpectedVersion::NoStream,
        vec![event(1), event(2)],
    );
    let first = store
        .append(original.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .append(request(app, "other", ExpectedVersion::Any, vec![event(3)]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let head = store.head().await.unwrap_or_default();
    // The same ids again, even with an expectation that no longer holds.
    let retry = store
        .append(original.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retry, first);
    // Several retries racing each other and other writers.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let r = original.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store.append(r).await.map(Some)
            } else {
                store
                    .append(request(
                        app,
                        &format!("x{i}"),
                        ExpectedVersion::Any,
                        vec![event(i)],
                    ))
                    .await
                    .map(|_| None)
            }
        }));
    }
    for task in tasks {
        if let Some(again) = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
        {
            assert_eq!(again, first);
        }
    }
    assert_eq!(store.head().await.unwrap_or_default(), head + 4);
    // A partial overlap is refused and writes nothing.
    let mixed = request(
        app,
        "s",
        ExpectedVersion::Any,
        vec![event(9), original.events[0].clone()],
    );
    assert_eq!(
        store.append(mixed).await,
        Err(StoreError::DuplicateEventIds)
    );
    assert_eq!(store.head().await.unwrap_or_default(), head + 4);
}

on_both!(
    concurrent_writers_on_separate_pools_never_show_a_hole,
    ordered_under_concurrency
);
async fn ordered_under_concurrency(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    const PROCESSES: usize = 3;
    const WRITERS: usize = 8;
    const APPENDS: usize = 25;
    let total = (PROCESSES * WRITERS * APPENDS * 2) as i64;
    let mut stores = Vec::new();
    for p in 0..PROCESSES {
        stores.push(if p == 0 {
            open(&db).await
        } else {
            open_other(&db).await
        });
    }
    let reader = open_other(&db).await;
    let apps = [AppId::generate(), AppId::generate()];

    let read = tokio::spawn(async move {
        let mut seen = 0i64;
        let mut versions: HashMap<String, i64> = HashMap::new();
        while seen < total {
            let batch = reader
                .read_all(seen, 97)
                .await
                .unwrap_or_else(|e| panic!("read: {e}"));
            for e in &batch {
                assert_eq!(
                    e.position,
                    seen + 1,
                    "a reader saw position {} after {}",
                    e.position,
                    seen
                );
                seen = e.position;
                let v = versions
                    .entry(format!("{}/{}", e.app_id, e.stream))
                    .or_default();
                assert_eq!(e.stream_version, *v + 1, "stream versions must be dense");
                *v = e.stream_version;
            }
            if batch.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        seen
    });

    let mut writers = Vec::new();
    for (p, store) in stores.iter().enumerate() {
        for w in 0..WRITERS {
            let store = store.clone();
            let app = apps[(p + w) % 2];
            writers.push(tokio::spawn(async move {
                for i in 0..APPENDS {
                    let stream = format!("p{p}-w{w}-{}", i % 3);
                    store
                        .append(request(
                            app,
                            &stream,
                            ExpectedVersion::Any,
                            vec![event(i as i64), event(-1)],
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("append: {e}"));
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let seen = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .unwrap_or_else(|_| panic!("the reader did not see every event"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen, total);
    // Every app's chain verifies across all those writers.
    for app in apps {
        let mut verifier = ChainVerifier::default();
        for e in stores[0]
            .read_app(app, 0, 100_000)
            .await
            .unwrap_or_default()
        {
            verifier
                .push(&e)
                .unwrap_or_else(|b| panic!("chain broke at {}: {}", b.position, b.reason));
        }
        assert!(verifier.events() > 0);
    }
}

on_both!(a_failing_multi_event_append_leaves_nothing, atomic_append);
async fn atomic_append(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // Make the database itself refuse one event type, so the failure happens
    // inside the transaction, after the first event's row was written.
    let refuse = match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.event_type = 'boom' \
                            BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        }
        Backend::Postgres => {
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
                              BEGIN IF NEW.event_type = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; \
                              RETURN NEW; END $$; \
                              CREATE TRIGGER refuse_boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_boom();"
        }
    };
    match &db.db {
        projections::db::Db::Sqlite(s) => {
            sqlx::raw_sql(refuse).execute(&s.writer).await.map(|_| ())
        }
        projections::db::Db::Postgres(p) => {
            sqlx::raw_sql(refuse).execute(&p.pool).await.map(|_| ())
        }
    }
    .unwrap_or_else(|e| panic!("trigger: {e}"));

    let store = open(&db).await;
    let app = AppId::generate();
    store
        .append(request(app, "s", ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut boom = event(3);
    boom.event_type = "boom".into();
    let failing = request(
        app,
        "s",
        ExpectedVersion::Exactly(1),
        vec![event(2), boom, event(4)],
    );
    let result = store.append(failing).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
    assert_eq!(store.head().await.unwrap_or_default(), 1);
    assert_eq!(
        store.load_stream(app, "s").await.unwrap_or_default().len(),
        1
    );

    // Neighbours in the same group-commit batch are not harmed by it.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut e = event(i);
            if i == 5 {
                e.event_type = "boom".into();
            }
            store
                .append(request(
                    app,
                    &format!("n{i}"),
                    ExpectedVersion::NoStream,
                    vec![event(i), e],
                ))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap_or_else(|e| panic!("{e}")).is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 9);
    assert_eq!(store.head().await.unwrap_or_default(), 1 + 9 * 2);

    // Bodies without a canonical form are refused before the database.
    let float = NewEvent {
        data: json!({"x": 1.5}),
        ..event(0)
    };
    let refused = store
        .append(request(
            app,
            "s",
            ExpectedVersion::Any,
            vec![event(5), float],
        ))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unstorable(_))),
        "{refused:?}"
    );
    // So are strings PostgreSQL cannot hold, on every backend alike.
    let nul = NewEvent {
        data: json!({"tags": ["a\u{0}"]}),
        ..event(6)
    };
    let refused = store
        .append(request(app, "s", ExpectedVersion::Any, vec![nul]))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Unstorable(m)) if m.contains("data.tags[0]")),
        "{refused:?}"
    );
    let refused = store
        .append(request(app, "s\u{0}", ExpectedVersion::Any, vec![event(7)]))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unstorable(_))),
        "{refused:?}"
    );
    assert_eq!(store.head().await.unwrap_or_default(), 19);
}

on_both!(each_apps_chain_verifies, chain_verifies);
async fn chain_verifies(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = open(&db).await;
    let (a, b) = (AppId::generate(), AppId::generate());
    for i in 0..20 {
        let app = if i % 3 == 0 { b } else { a };
        store
            .append(request(
                app,
                &format!("s{}", i % 4),
                ExpectedVersion::Any,
                vec![event(i)],
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for app in [a, b] {
        let events = store.read_app(app, 0, 1000).await.unwrap_or_default();
        let mut verifier = ChainVerifier::default();
        for e in &events {
            assert_eq!(e.app_id, app);
            verifier
                .push(e)
                .unwrap_or_else(|b| panic!("{}: {}", b.position, b.reason));
        }
        assert_eq!(
            verifier.head_position(),
            events.last().map(|e| e.position).unwrap_or_default()
        );
        assert_eq!(
            verifier.head_hash(),
            events.last().map(|e| e.hash.clone()).unwrap_or_default()
        );
        // Any change is caught where it happens.
        let mut altered = events.clone();
        altered[3].data = json!({"n": 999});
        let mut verifier = ChainVerifier::default();
        let broke = altered
            .iter()
            .try_for_each(|e| verifier.push(e))
            .err()
            .map(|b| b.position);
        assert_eq!(broke, Some(altered[3].position));
        // Removing an event breaks the next one.
        let mut removed = events.clone();
        let gone = removed.remove(2);
        let mut verifier = ChainVerifier::default();
        let broke = removed
            .iter()
            .try_for_each(|e| verifier.push(e))
            .err()
            .map(|b| b.position);
        assert!(broke.is_some_and(|p| p > gone.position));
    }
}

on_both!(an_unreachable_database_is_a_typed_error, unreachable);
async fn unreachable(backend: Backend) {
    let options = infra::database::DbOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(2),
    };
    let result = match backend {
        Backend::Sqlite => {
            // A data directory that cannot exist: a file stands in its way.
            let file = herald_tests::backend::temp_dir("blocked").join("file");
            std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
            infra::database::open_sqlite(&file.join("data"), &options)
                .await
                .map(|_| ())
        }
        Backend::Postgres => {
            infra::database::open_postgres("postgres://postgres@127.0.0.1:1/none", &options)
                .await
                .map(|_| ())
        }
    };
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    if backend == Backend::Postgres {
        pg_goes_away_and_comes_back().await;
    }
}

/// An open store whose database disappears answers `Unavailable`, then
/// works again once the database is back.
async fn pg_goes_away_and_comes_back() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let proxy = herald_tests::proxy::Proxy::start(herald_tests::backend::pg_addr().await).await;
    let url = herald_tests::backend::pg_url_via(proxy.addr);
    let via_proxy = TestDb::connect_pg(&db.schema, &url, 4).await;
    let store = SqlEventStore::open(via_proxy)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = AppId::generate();
    store
        .append(request(app, "s", ExpectedVersion::Any, vec![event(1)]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    proxy.cut();
    let down = store
        .append(request(app, "s", ExpectedVersion::Any, vec![event(2)]))
        .await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let read = store.read_all(0, 10).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    proxy.restore().await;
    let back = store
        .append(request(app, "s", ExpectedVersion::Any, vec![event(3)]))
        .await;
    assert_eq!(back.map(|a| a.stream_version), Ok(2));
}

on_both!(
    loads_asked_together_each_get_their_own_stream,
    grouped_loads
);
async fn grouped_loads(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = open(&db).await;
    // The same stream names in two apps, of different lengths; one empty.
    let apps = [AppId::generate(), AppId::generate()];
    for (a, app) in apps.iter().enumerate() {
        for s in 0..12i64 {
            let events: Vec<NewEvent> =
                (0..(s + a as i64) % 5).map(|n| event(s * 10 + n)).collect();
            if events.is_empty() {
                continue; // the stream stays empty
            }
            store
                .append(request(
                    *app,
                    &format!("s{s}"),
                    ExpectedVersion::Any,
                    events,
                ))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // Every stream, some twice, loaded at once (so in groups), each
    // compared with the stream read on its own.
    let loads = apps.iter().flat_map(|app| {
        let store = store.clone();
        (0..12).chain(0..3).map(move |s| {
            let store = store.clone();
            async move {
                let stream = format!("s{s}");
                let loaded = store.load_stream(*app, &stream).await;
                (*app, stream, loaded)
            }
        })
    });
    for (app, stream, loaded) in futures::future::join_all(loads).await {
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        let alone = store
            .read_stream(app, &stream, 1, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids = |events: &[domain::RecordedEvent]| {
            events
                .iter()
                .map(|e| (e.app_id, e.stream.clone(), e.stream_version, e.event_id))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&loaded), ids(&alone), "{stream} of {app:?}");
    }
}
