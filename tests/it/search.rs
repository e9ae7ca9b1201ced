//! Device search: one table of (tree, expected devices) run on both backends.

use std::collections::BTreeSet;

use herald_tests::app::webpush_token;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

/// (external id, device, properties)
fn fixture() -> Vec<(&'static str, Value, Value)> {
    vec![
        (
            "d1",
            json!({"push_token": "t1", "send_platform": "fcm", "device_platform": "android", "user_id": "u1"}),
            json!({"plan": "pro", "age": 31, "beta": true, "tags": ["a", "b"], "app_version": "1.10.0", "country": "DE", "levels": [1, 2, 3]}),
        ),
        (
            "d2",
            json!({"push_token": "t2", "send_platform": "apns", "device_platform": "ios", "user_id": "u2"}),
            json!({"plan": "free", "age": 17, "beta": false, "tags": ["b"], "app_version": "1.9.2", "levels": [3, -7]}),
        ),
        (
            "d3",
            json!({"push_token": webpush_token("t3"), "send_platform": "webpush", "device_platform": "web", "has_permission": false}),
            json!({"plan": "pro", "age": "31", "tags": "a", "app_version": "2.0", "levels": ["1", "3"]}),
        ),
        (
            "d4",
            json!({"push_token": "t4", "send_platform": "fcm", "device_platform": "android"}),
            json!({}),
        ),
        (
            "d5",
            json!({"push_token": "t5", "send_platform": "apns", "device_platform": "ios", "user_id": "u1"}),
            json!({"plan": "enterprise", "age": 45, "beta": true, "app_version": "1.10"}),
        ),
        (
            "d6",
            json!({"push_token": "t6", "send_platform": "fcm", "device_platform": "android", "user_id": "u3", "has_permission": false}),
            json!({"plan": "Pro", "age": 0, "tags": [], "app_version": "1.10.0.1", "levels": 3}),
        ),
    ]
}

fn leaf(key: &str, operator: &str, value: Value) -> Value {
    json!({"key": key, "operator": operator, "value": value})
}

fn exists(key: &str, operator: &str) -> Value {
    json!({"key": key, "operator": operator})
}

/// The semantics every backend must share.
fn table() -> Vec<(Value, &'static [&'static str])> {
    vec![
        (leaf("plan", "str_eq", json!("pro")), &["d1", "d3"]),
        (leaf("plan", "str_ne", json!("pro")), &["d2", "d5", "d6"]),
        (
            leaf("plan", "str_in", json!(["free", "enterprise"])),
            &["d2", "d5"],
        ),
        (leaf("plan", "str_prefix", json!("pr")), &["d1", "d3"]),
        (
            leaf("plan", "str_prefix", json!("")),
            &["d1", "d2", "d3", "d5", "d6"],
        ),
        (leaf("country", "str_prefix", json!("D")), &["d1"]),
        (leaf("age", "int_eq", json!(31)), &["d1"]),
        (leaf("age", "int_gt", json!(17)), &["d1", "d5"]),
        (leaf("age", "int_gte", json!(17)), &["d1", "d2", "d5"]),
        (leaf("age", "int_lt", json!(17)), &["d6"]),
        (leaf("age", "int_lte", json!(0)), &["d6"]),
        (leaf("beta", "bool_eq", json!(true)), &["d1", "d5"]),
        (leaf("beta", "bool_eq", json!(false)), &["d2"]),
        (leaf("tags", "str_exists", json!("a")), &["d1"]),
        (leaf("tags", "str_exists", json!("b")), &["d1", "d2"]),
        // Integer lists: a list of strings or an integer is another type.
        (leaf("levels", "int_exists", json!(3)), &["d1", "d2"]),
        (leaf("levels", "int_exists", json!(-7)), &["d2"]),
        (leaf("levels", "int_exists", json!(4)), &[]),
        (leaf("levels", "str_exists", json!("3")), &["d3"]),
        (leaf("levels", "int_eq", json!(3)), &["d6"]),
        (
            json!({"not": leaf("levels", "int_exists", json!(1))}),
            &["d2", "d3", "d4", "d5", "d6"],
        ),
        (exists("tags", "exists"), &["d1", "d2", "d3", "d6"]),
        (exists("beta", "not_exists"), &["d3", "d4", "d6"]),
        (exists("nothing", "exists"), &[]),
        (
            leaf("app_version", "version_gte", json!("1.10")),
            &["d1", "d3", "d5", "d6"],
        ),
        (leaf("app_version", "version_lt", json!("1.10")), &["d2"]),
        (
            leaf("app_version", "version_gte", json!("1.10.0.1")),
            &["d3", "d6"],
        ),
        (
            leaf("device_platform", "str_eq", json!("ios")),
            &["d2", "d5"],
        ),
        (
            leaf("send_platform", "str_in", json!(["fcm", "webpush"])),
            &["d1", "d3", "d4", "d6"],
        ),
        (leaf("user_id", "str_eq", json!("u1")), &["d1", "d5"]),
        (leaf("user_id", "str_ne", json!("u1")), &["d2", "d6"]),
        (exists("user_id", "exists"), &["d1", "d2", "d5", "d6"]),
        (exists("user_id", "not_exists"), &["d3", "d4"]),
        (
            leaf("has_permission", "bool_eq", json!(false)),
            &["d3", "d6"],
        ),
        (
            json!({"join_type": "AND", "conditions": [leaf("plan", "str_eq", json!("pro")), leaf("device_platform", "str_eq", json!("android"))]}),
            &["d1"],
        ),
        (
            json!({"join_type": "AND", "conditions": [leaf("age", "int_gte", json!(17)), leaf("plan", "str_prefix", json!("")), leaf("age", "int_lte", json!(31))]}),
            &["d1", "d2"],
        ),
        (
            json!({"join_type": "AND", "conditions": [leaf("age", "int_gt", json!(0)), leaf("age", "int_lt", json!(31)), leaf("age", "int_lte", json!(17))]}),
            &["d2"],
        ),
        (
            json!({"join_type": "OR", "conditions": [leaf("user_id", "str_eq", json!("u3")), leaf("age", "int_lt", json!(17)), leaf("app_version", "version_gte", json!("2"))]}),
            &["d3", "d6"],
        ),
        (
            json!({"join_type": "OR", "conditions": [leaf("has_permission", "bool_eq", json!(false)), exists("beta", "not_exists")]}),
            &["d3", "d4", "d6"],
        ),
        (
            json!({"join_type": "OR", "conditions": [leaf("age", "int_gt", json!(40)), leaf("beta", "bool_eq", json!(false))]}),
            &["d2", "d5"],
        ),
        (
            json!({"not": leaf("plan", "str_eq", json!("pro"))}),
            &["d2", "d4", "d5", "d6"],
        ),
        (
            json!({"not": leaf("age", "int_gte", json!(18))}),
            &["d2", "d3", "d4", "d6"],
        ),
        (
            json!({"not": {"not": leaf("plan", "str_eq", json!("pro"))}}),
            &["d1", "d3"],
        ),
        (
            json!({"join_type": "AND", "conditions": [
                {"join_type": "OR", "conditions": [leaf("device_platform", "str_eq", json!("ios")), leaf("tags", "str_exists", json!("a"))]},
                {"not": leaf("beta", "bool_eq", json!(false))},
            ]}),
            &["d1", "d5"],
        ),
    ]
}

async fn search(app: &TestApp, token: &str, body: Value) -> Vec<String> {
    let resp = app.post("/v1/devices/search", token, body.clone()).await;
    assert_eq!(resp.status, 200, "{body}: {:?}", resp.body);
    resp.body["devices"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|d| d["external_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn load(app: &TestApp, token: &str) {
    for (id, device, properties) in fixture() {
        assert_eq!(
            app.put(&format!("/v1/devices/{id}"), token, device)
                .await
                .status,
            201
        );
        let patched = app
            .patch(
                &format!("/v1/devices/{id}/properties"),
                token,
                json!({"properties": properties}),
            )
            .await;
        assert_eq!(patched.status, 200, "{:?}", patched.body);
    }
}

on_both!(
    a_search_can_be_limited_to_a_list_of_devices,
    limited_to_external_ids
);
async fn limited_to_external_ids(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    load(&app, &key.token).await;
    let other = app.create_app("b").await;
    load(&app, &other.token).await;

    let ids = json!(["d5", "d2", "nope", "d3"]);
    assert_eq!(
        search(&app, &key.token, json!({"external_ids": ids})).await,
        ["d2", "d3", "d5"]
    );
    assert_eq!(
        search(
            &app,
            &key.token,
            json!({"external_ids": ids, "conditions": leaf("plan", "str_eq", json!("pro"))})
        )
        .await,
        ["d3"]
    );
    // Paged like any search.
    let first = app
        .post(
            "/v1/devices/search",
            &key.token,
            json!({"external_ids": ids, "limit": 2}),
        )
        .await;
    assert_eq!(first.body["devices"].as_array().map(Vec::len), Some(2));
    let rest = search(
        &app,
        &key.token,
        json!({"external_ids": ids, "cursor": first.body["next_cursor"]}),
    )
    .await;
    assert_eq!(rest, ["d5"]);

    for (bad, field) in [
        (json!([]), "external_ids"),
        (json!(["d1", ""]), "external_ids[1]"),
        (json!(vec!["d"; 1001]), "external_ids"),
    ] {
        let resp = app
            .post(
                "/v1/devices/search",
                &key.token,
                json!({"external_ids": bad}),
            )
            .await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
        assert_eq!(resp.invalid_fields(), [field], "{}", resp.body);
    }
}

on_both!(the_search_semantics_table, semantics_table);
async fn semantics_table(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    load(&app, &key.token).await;
    // Another app's devices never show up.
    let other = app.create_app("b").await;
    load(&app, &other.token).await;

    // The in-memory evaluation (feature flags) agrees with SQL, leaf by leaf.
    let mut devices = Vec::new();
    for (id, _, _) in fixture() {
        devices.push(app.get(&format!("/v1/devices/{id}"), &key.token).await.body);
    }
    for (tree, expected) in table() {
        let found = search(&app, &key.token, json!({"conditions": tree})).await;
        assert_eq!(found, expected.to_vec(), "{tree}");
        let condition =
            domain::conditions::Condition::parse(&tree).unwrap_or_else(|e| panic!("{e}"));
        let in_memory: Vec<String> = devices
            .iter()
            .filter(|d| {
                let properties: domain::properties::Properties =
                    serde_json::from_value(d["properties"].clone()).unwrap_or_default();
                condition.matches(&domain::conditions::Facts {
                    external_id: d["external_id"].as_str().unwrap_or_default(),
                    properties: &properties,
                    device_platform: d["device_platform"].as_str(),
                    send_platform: d["send_platform"].as_str(),
                    user_id: d["user_id"].as_str(),
                    random_bucket: d["random_bucket"].as_i64().unwrap_or_default(),
                    has_permission: d["has_permission"].as_bool().unwrap_or_default(),
                })
            })
            .filter_map(|d| d["external_id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(in_memory, expected.to_vec(), "in memory: {tree}");
    }
    let all = search(&app, &key.token, json!({})).await;
    assert_eq!(all, ["d1", "d2", "d3", "d4", "d5", "d6"]);

    // random_bucket: a stable sample; compare with the buckets drawn.
    let mut buckets = Vec::new();
    for id in &all {
        let d = app.get(&format!("/v1/devices/{id}"), &key.token).await;
        buckets.push((
            id.clone(),
            d.body["random_bucket"].as_i64().unwrap_or_default(),
        ));
    }
    buckets.sort_by_key(|b| b.1);
    let threshold = buckets[2].1;
    let expected: BTreeSet<String> = buckets
        .iter()
        .filter(|b| b.1 <= threshold)
        .map(|b| b.0.clone())
        .collect();
    let found: BTreeSet<String> = search(
        &app,
        &key.token,
        json!({"conditions": leaf("random_bucket", "int_lte", json!(threshold))}),
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(found, expected);

    // A deleted device leaves the results.
    assert_eq!(app.delete("/v1/devices/d1", &key.token).await.status, 204);
    let found = search(
        &app,
        &key.token,
        json!({"conditions": leaf("plan", "str_eq", json!("pro"))}),
    )
    .await;
    assert_eq!(found, ["d3"]);
    // Changing a property's type changes what matches.
    let retyped = app
        .patch(
            "/v1/devices/d3/properties",
            &key.token,
            json!({"properties": {"age": 31, "tags": ["a"]}}),
        )
        .await;
    assert_eq!(retyped.status, 200);
    assert_eq!(
        search(
            &app,
            &key.token,
            json!({"conditions": leaf("age", "int_eq", json!(31))})
        )
        .await,
        ["d3"]
    );
    assert_eq!(
        search(
            &app,
            &key.token,
            json!({"conditions": leaf("tags", "str_exists", json!("a"))})
        )
        .await,
        ["d3"]
    );
}

on_both!(search_pages_with_an_opaque_cursor, paging);
async fn paging(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    load(&app, &key.token).await;
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let resp = app
            .post(
                "/v1/devices/search",
                &key.token,
                json!({"limit": 4, "cursor": cursor}),
            )
            .await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        pages += 1;
        for d in resp.body["devices"].as_array().cloned().unwrap_or_default() {
            seen.push(d["external_id"].as_str().unwrap_or_default().to_owned());
        }
        cursor = resp.body["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ["d1", "d2", "d3", "d4", "d5", "d6"]);

    // A top-level OR pages through its union one device at a time.
    let or = json!({"join_type": "OR", "conditions": [
        leaf("plan", "str_eq", json!("pro")), leaf("device_platform", "str_eq", json!("ios")),
        leaf("tags", "exists", Value::Null)]});
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..10 {
        let resp = app
            .post(
                "/v1/devices/search",
                &key.token,
                json!({"conditions": or, "limit": 1, "cursor": cursor}),
            )
            .await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        for d in resp.body["devices"].as_array().cloned().unwrap_or_default() {
            seen.push(d["external_id"].as_str().unwrap_or_default().to_owned());
        }
        cursor = resp.body["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, ["d1", "d2", "d3", "d5", "d6"]);
    let exact = app
        .post("/v1/devices/search", &key.token, json!({"limit": 6}))
        .await;
    assert!(exact.body["next_cursor"].is_null(), "no empty last page");
}

on_both!(bad_searches_name_the_bad_node, refusals);
async fn refusals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let cases = vec![
        (
            json!({"conditions": {"join_type": "AND", "conditions": [leaf("a", "str_eq", json!("x")),
            {"join_type": "OR", "conditions": [leaf("b", "str_like", json!("x"))]}]}}),
            "conditions[1].conditions[0].operator",
        ),
        (
            json!({"conditions": leaf("a", "int_gt", json!("1"))}),
            "conditions.value",
        ),
        (
            json!({"conditions": leaf("a", "str_in", json!("x"))}),
            "conditions.value",
        ),
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 1001}), "limit"),
        (json!({"cursor": "garbage"}), "cursor"),
        (json!({"colour": 1}), "colour"),
    ];
    for (body, field) in cases {
        assert_eq!(
            app.post("/v1/devices/search", &key.token, body.clone())
                .await
                .invalid_fields(),
            [field],
            "{body}"
        );
    }
    let mut deep = leaf("a", "exists", Value::Null);
    for _ in 0..16 {
        deep = json!({"not": deep});
    }
    assert_eq!(
        app.post(
            "/v1/devices/search",
            &key.token,
            json!({"conditions": deep})
        )
        .await
        .status,
        400
    );
    let wide: Vec<Value> = (0..257)
        .map(|i| leaf(&format!("k{i}"), "exists", Value::Null))
        .collect();
    let resp = app
        .post(
            "/v1/devices/search",
            &key.token,
            json!({"conditions": {"join_type": "OR", "conditions": wide}}),
        )
        .await;
    assert_eq!(resp.invalid_fields(), ["conditions"]);
    // Search needs the read role only.
    let writer = app
        .post(
            "/v1/api-keys",
            &key.token,
            json!({"name": "w", "roles": ["write"]}),
        )
        .await;
    let writer = writer.body["token"].as_str().unwrap_or_default().to_owned();
    app.post("/v1/devices/search", &writer, json!({}))
        .await
        .problem(403);
}

on_both!(
    every_property_test_finds_its_rows_through_a_value_index,
    property_plans
);
/// Each property row is in one of two partial indexes (strings and lists
/// of strings without an integer, the rest with one): every leaf must name
/// its half so that the planner can use it, on both backends, where a
/// full scan of the property table would answer the same (tiny) fixture
/// just as right.
async fn property_plans(backend: Backend) {
    use domain::conditions::Condition;
    use projections::bind_search;
    use projections::db::Db;
    use projections::devices::search::statement;
    use sqlx::Row;

    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("plans").await;
    load(&app, &key.token).await;
    let app_id = domain::ids::AppId(key.app_id.parse().unwrap_or_else(|e| panic!("{e}")));
    let strings = ["device_properties_str"];
    let integers = ["device_properties_int"];
    let both = ["device_properties_str", "device_properties_int"];
    let cases: Vec<(Value, &[&str])> = vec![
        (leaf("plan", "str_eq", json!("pro")), &strings),
        (leaf("plan", "str_ne", json!("pro")), &strings),
        (leaf("plan", "str_in", json!(["free", "pro"])), &strings),
        (leaf("plan", "str_prefix", json!("pr")), &strings),
        (leaf("plan", "str_prefix", json!("")), &strings),
        (leaf("tags", "str_exists", json!("a")), &strings),
        (leaf("age", "int_eq", json!(31)), &integers),
        (leaf("age", "int_gt", json!(17)), &integers),
        (leaf("beta", "bool_eq", json!(true)), &integers),
        (leaf("levels", "int_exists", json!(3)), &integers),
        (
            json!({"join_type": "AND", "conditions": [
                leaf("age", "int_gte", json!(17)),
                leaf("age", "int_lt", json!(40)),
            ]}),
            &integers,
        ),
        (exists("tags", "exists"), &both),
        // A top-level OR of simple leaves: each leaf's own first page.
        (
            json!({"join_type": "OR", "conditions": [
                leaf("plan", "str_eq", json!("pro")),
                exists("levels", "exists"),
            ]}),
            &both,
        ),
    ];
    for (tree, indexes) in cases {
        let condition = Condition::parse(&tree).expect("a valid tree");
        let (sql, compiled) = statement(app_id, Some(&condition), 0, 50);
        let plan: Vec<String> = match app.herald.db() {
            Db::Sqlite(db) => {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let query = bind_search!(sqlx::query(&explain), &compiled.binds);
                let rows = query.fetch_all(&db.reader).await.expect("a plan");
                rows.iter().map(|r| r.get::<String, _>("detail")).collect()
            }
            Db::Postgres(db) => {
                let mut conn = db.pool.acquire().await.expect("a connection");
                // A scan is the cheapest plan for a fixture this small:
                // price it out, so that a scan appears only if no index
                // can serve the test.
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut *conn)
                    .await
                    .expect("set");
                let explain = format!("EXPLAIN {sql}");
                let query = bind_search!(sqlx::query(&explain), &compiled.binds);
                let rows = query.fetch_all(&mut *conn).await.expect("a plan");
                sqlx::query("RESET enable_seqscan")
                    .execute(&mut *conn)
                    .await
                    .expect("reset");
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
        };
        let plan = plan.join("\n");
        for index in indexes {
            assert!(plan.contains(index), "{tree}: {index} not used:\n{plan}");
        }
        // The property table's own reads (PostgreSQL: "… on
        // device_properties"; SQLite: "SEARCH|SCAN device_properties …").
        let reads = plan.lines().filter(|l| {
            let l = l.trim_start();
            l.contains(" on device_properties")
                || l.starts_with("SCAN device_properties")
                || l.starts_with("SEARCH device_properties")
        });
        for line in reads {
            assert!(
                !line.contains("Seq Scan") && !line.trim_start().starts_with("SCAN"),
                "{tree}: the property table scanned:\n{plan}"
            );
        }
    }
}
