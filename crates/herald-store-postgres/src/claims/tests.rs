//! The claim's pure helpers, and the plans its functions (migration 0012) cache.

use std::future::poll_fn;

use herald_store::conformance::{endpoint, event};
use herald_store::models::{Ordering, Tenant};
use herald_store::prelude::*;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::*;
use crate::PostgresStore;
use crate::test_support::{
    database_url, drop_database, fresh_database, unique_indexes, unkeyed_nodes,
};

#[test]
fn columns_are_prefixed() {
    assert_eq!(prefixed("a, b,c", "t."), "t.a, t.b, t.c");
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// A store on `url` with the tenant `acme`.
async fn store_with_tenant(url: &str) -> PostgresStore {
    let store = PostgresStore::connect(url, 2).await.expect("connects");
    store
        .create_tenant(Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant");
    store
}

/// A claim of at most 10 at `at(2)`, with 30 s leases, as the store makes it: the ids leased.
async fn claim_ten(client: &tokio_postgres::Client) -> Vec<tokio_postgres::Row> {
    let now_ms = ms(at(2));
    client
        .query(
            "SELECT id FROM herald_claim($1, 10, $2, 0)",
            &[&now_ms, &(now_ms + 30_000)],
        )
        .await
        .expect("claimed")
}

/// The claim functions cache one plan per statement (their `SET` clauses), made the first time
/// each statement runs: here, while the tables hold a handful of rows, where the planner's
/// estimates are least like the tables the plans will run on. Every one must still read by key.
/// `auto_explain` reports each statement the functions run, as a notice to the session.
#[tokio::test]
async fn claim_functions_cache_keyed_plans_made_on_nearly_empty_tables() {
    let (name, config) = fresh_database().await;
    let url = database_url(&name);
    let store = store_with_tenant(&url).await;
    // One endpoint of each kind, so that a claim runs every statement of the functions: the
    // earliest due with a rate limit's bucket, subject heads, and the strict head.
    let mut limited = endpoint("acme", "ep_plain", &["*"], Ordering::None);
    limited.rate_limit_per_s = Some(100);
    store.create_endpoint(limited).await.expect("endpoint");
    for (id, ordering) in [
        ("ep_subject", Ordering::Subject),
        ("ep_strict", Ordering::Strict),
    ] {
        store
            .create_endpoint(endpoint("acme", id, &["*"], ordering))
            .await
            .expect("endpoint");
    }
    let events = (0..3)
        .map(|n| event(&format!("e{n}"), "user.created", Some("u1")))
        .collect();
    store
        .publish("acme", events, at(1))
        .await
        .expect("published");

    let (client, mut connection) = config.connect(NoTls).await.expect("connects");
    let (notices, mut plans) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|context| connection.poll_message(context)).await {
            match message {
                Ok(AsyncMessage::Notice(notice)) => {
                    let _ = notices.send(notice.message().to_owned());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let unique = unique_indexes(&client).await;
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_format = json;
             SET auto_explain.log_level = notice;",
        )
        .await
        .expect("auto_explain loaded (a contrib module of PostgreSQL)");
    let claimed = claim_ten(&client).await;
    // The plain endpoint's three, the subject's head and the strict head.
    assert_eq!(claimed.len(), 5);
    client
        .query("SELECT MIN(due_at) FROM herald_endpoints_with_work()", &[])
        .await
        .expect("next due");
    drop(client);

    let mut unkeyed = Vec::new();
    let mut n_plans = 0;
    while let Some(notice) = plans.recv().await {
        let Some((_, json)) = notice.split_once("plan:") else {
            continue;
        };
        let plan: serde_json::Value = serde_json::from_str(json.trim()).expect("a JSON plan");
        n_plans += 1;
        let found = unkeyed_nodes(&plan["Plan"], &unique);
        if !found.is_empty() {
            let text = plan["Query Text"].as_str().unwrap_or_default();
            unkeyed.push(format!("{found:?} in {text}"));
        }
    }
    drop(store);
    drop_database(&name).await;
    assert!(
        n_plans >= 12,
        "every statement of the functions was explained: {n_plans}"
    );
    assert!(unkeyed.is_empty(), "{unkeyed:#?}");
}

/// A store whose history is all delivered is what the planner sees when it makes the claim's
/// cached plans: its statistics say no delivery is waiting. The plan made then must still read an
/// endpoint's waiting deliveries in due order and stop at the claim's limit: a plan that read
/// and sorted the whole backlog instead made every claim cost O(backlog) (7 ms against 3 ms in
/// the benchmark with 1,000,000 delivered deliveries).
#[tokio::test]
async fn a_claim_planned_on_delivered_history_reads_only_what_it_takes() {
    let (name, config) = fresh_database().await;
    let url = database_url(&name);
    let store = store_with_tenant(&url).await;
    store
        .create_endpoint(endpoint("acme", "ep_plain", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    // Delivered history, analysed as autovacuum would, then a backlog.
    crate::history::fill_delivered_history(&url, "acme", &["ep_plain".to_owned()], 200_000, at(0))
        .await
        .expect("history");
    let backlog = 500;
    let events = (0..backlog)
        .map(|n| event(&format!("e{n}"), "user.created", None))
        .collect();
    store
        .publish("acme", events, at(1))
        .await
        .expect("published");

    let (client, connection) = config.connect(NoTls).await.expect("connects");
    tokio::spawn(connection);
    client.batch_execute("BEGIN").await.expect("begun");
    let claimed = claim_ten(&client).await;
    // Rows of `deliveries` this transaction fetched through an index.
    let fetched: i64 = client
        .query_one(
            "SELECT idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'deliveries'",
            &[],
        )
        .await
        .expect("statistics")
        .get(0);
    client.batch_execute("ROLLBACK").await.expect("ended");
    drop(client);
    drop(store);
    drop_database(&name).await;
    assert_eq!(claimed.len(), 10);
    assert!(
        fetched < 100,
        "a claim of 10 fetched {fetched} deliveries of a backlog of {backlog}"
    );
}
