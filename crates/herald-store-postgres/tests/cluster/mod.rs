//! What only a database shared by several nodes must get right: two `PostgresStore`s on one
//! database stand for two Herald nodes, and several tasks per store for their workers.
//!
//! The concurrent tests never sleep to wait for each other: workers and readers run until the
//! expected work is done, bounded by one generous timeout that turns a hang into a failure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use herald_core::ids::{DeliveryId, EndpointId, HookId};
use herald_store::conformance::{endpoint, event};
use herald_store::models::{
    AttemptOutcome, AttemptRecord, ClaimedDelivery, EventFilter, FailurePolicy, HookRecord,
    NextStep, Ordering, Tenant,
};
use herald_store::prelude::*;
use herald_store::{ChangeNotice, StoreResult};
use herald_store_postgres::PostgresStore;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::fresh_database;

/// Long enough for any of these tests on a loaded two-core machine; only a hang reaches it.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// Two nodes on one fresh database, started at the same moment (so their migrations race).
async fn two_nodes() -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    let url = fresh_database().await;
    let (first, second) = tokio::join!(
        PostgresStore::connect(&url, 4),
        PostgresStore::connect(&url, 4)
    );
    (
        Arc::new(first.expect("node A connects")),
        Arc::new(second.expect("node B connects")),
    )
}

async fn tenant(store: &PostgresStore, id: &str) {
    store
        .create_tenant(Tenant {
            id: id.to_owned(),
            name: format!("Tenant {id}"),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant created");
}

fn delivered(claim: &ClaimedDelivery, now: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome {
        tenant_id: claim.endpoint.tenant_id.clone(),
        endpoint_id: claim.endpoint.id.clone(),
        attempt: AttemptRecord {
            delivery_id: claim.delivery_id.clone(),
            attempt_number: claim.n_attempts + 1,
            started_at: now,
            status: Some(200),
            latency_ms: 1,
            response_excerpt: None,
            error: None,
        },
        next: NextStep::Delivered,
        disable_endpoint: None,
        now,
        operational_events: Vec::new(),
    }
}

/// Waits for every task; a failure in any of them fails the test with all their messages.
async fn join_all(mut tasks: JoinSet<()>) {
    let joined = tokio::time::timeout(DEADLINE, async {
        let mut failures = Vec::new();
        while let Some(result) = tasks.join_next().await {
            if let Err(error) = result {
                failures.push(error.to_string());
            }
        }
        failures
    })
    .await
    .expect("the tasks finished before the deadline");
    assert!(joined.is_empty(), "tasks failed: {joined:#?}");
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let url = fresh_database().await;
    let mut starts = JoinSet::new();
    for _ in 0..4 {
        let url = url.clone();
        starts.spawn(async move { PostgresStore::connect(&url, 1).await.map(|_| ()) });
    }
    while let Some(started) = starts.join_next().await {
        started.expect("joined").expect("every node starts");
    }
    herald_store_postgres::migrate(&url)
        .await
        .expect("migrating again changes nothing");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM herald_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("migrations listed")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
}

/// An endpoint's claim lock key is computed by the database (`herald_endpoint_lock_key`) and
/// was computed by the nodes before; both must agree, or nodes of the two versions working one
/// endpoint during an upgrade would not exclude each other. The key is 32-bit FNV-1a of the id's
/// UTF-8 bytes: published test vectors, and ids beyond ASCII, against a Rust reference.
#[tokio::test]
async fn claim_lock_keys_are_fnv_1a_of_the_endpoint_id() {
    fn fnv_1a(text: &str) -> i32 {
        let hash = text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        i32::from_ne_bytes(hash.to_ne_bytes())
    }
    let url = fresh_database().await;
    herald_store_postgres::migrate(&url)
        .await
        .expect("migrated");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let vectors = [
        ("", 0x811c_9dc5_u32),
        ("a", 0xe40c_292c),
        ("foobar", 0xbf9c_f968),
    ];
    for (id, published) in vectors {
        assert_eq!(fnv_1a(id), i32::from_ne_bytes(published.to_ne_bytes()));
    }
    for id in ["", "a", "foobar", "ep_01J9ZK3Q8W", "ép_ünïcode_☃"] {
        let row = client
            .query_one("SELECT herald_endpoint_lock_key($1)", &[&id])
            .await
            .expect("key computed");
        let key: i32 = row.get(0);
        assert_eq!(key, fnv_1a(id), "lock key of {id:?}");
    }
}

/// Migrations are applied by their own version: one this Herald does not know (a newer Herald
/// migrated the database) is refused, not skipped or guessed around.
#[tokio::test]
async fn a_migration_this_herald_does_not_know_is_refused() {
    let url = fresh_database().await;
    herald_store_postgres::migrate(&url)
        .await
        .expect("migrated");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO herald_migrations (version, name) VALUES (999, '0999_from_the_future')",
            &[],
        )
        .await
        .expect("inserted");
    let refused = herald_store_postgres::migrate(&url).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("migration 999")),
        "{refused:?}"
    );
}

/// What the workers saw, checked as they go. A delivery enters `in_flight` after its claim
/// committed and leaves before its attempt is recorded, so what this holds in flight is always a
/// subset of what the database holds in flight: any limit broken here was broken there.
#[derive(Default)]
struct Ledger {
    claimed: HashSet<DeliveryId>,
    in_flight: HashMap<EndpointId, Vec<(i64, Option<String>)>>,
    fifo_order: Vec<i64>,
    subject_order: HashMap<String, Vec<i64>>,
    n_done: usize,
}

impl Ledger {
    fn start(&mut self, claim: &ClaimedDelivery) {
        assert!(
            self.claimed.insert(claim.delivery_id.clone()),
            "delivery {} was claimed twice",
            claim.delivery_id
        );
        let seq = claim.event.seq;
        let subject = claim.event.subject.clone();
        let in_flight = self.in_flight.entry(claim.endpoint.id.clone()).or_default();
        match claim.endpoint.id.as_str() {
            "ep_fifo" => {
                assert!(
                    in_flight.is_empty(),
                    "strict: seq {seq} claimed while {in_flight:?} was in flight"
                );
                self.fifo_order.push(seq);
            }
            "ep_subject" => {
                assert!(
                    in_flight.iter().all(|(_, other)| other != &subject),
                    "subject: seq {seq} of {subject:?} claimed while {in_flight:?} was in flight"
                );
                if let Some(subject) = &subject {
                    self.subject_order
                        .entry(subject.clone())
                        .or_default()
                        .push(seq);
                }
            }
            "ep_narrow" => {
                assert!(
                    in_flight.len() < 2,
                    "max_concurrency 2: seq {seq} claimed while {in_flight:?} was in flight"
                );
            }
            _ => {}
        }
        in_flight.push((seq, subject));
    }

    fn finish(&mut self, claim: &ClaimedDelivery) {
        let in_flight = self.in_flight.entry(claim.endpoint.id.clone()).or_default();
        in_flight.retain(|(seq, _)| *seq != claim.event.seq);
        self.n_done += 1;
    }
}

/// One worker: claims, checks, records, until every delivery is done.
async fn work(store: Arc<PostgresStore>, ledger: Arc<Mutex<Ledger>>, n_deliveries: usize) {
    let now = at(1);
    loop {
        let claimed = store
            .claim_due(now, 3, Duration::seconds(300))
            .await
            .expect("claim");
        if claimed.is_empty() {
            if ledger.lock().expect("no other worker failed").n_done == n_deliveries {
                return;
            }
            // Work is left but held by other workers (in flight, or behind an ordered head).
            tokio::task::yield_now().await;
            continue;
        }
        {
            let mut ledger = ledger.lock().expect("no other worker failed");
            for claim in &claimed {
                ledger.start(claim);
            }
        }
        tokio::task::yield_now().await;
        for claim in &claimed {
            ledger.lock().expect("no other worker failed").finish(claim);
            store
                .record_attempt(delivered(claim, now))
                .await
                .expect("recorded");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claim_each_delivery_once_in_order_within_limits() {
    let (node_a, node_b) = two_nodes().await;
    tenant(&node_a, "acme").await;
    let mut narrow = endpoint("acme", "ep_narrow", &["*"], Ordering::None);
    narrow.max_concurrency = 2;
    for record in [
        endpoint("acme", "ep_free", &["*"], Ordering::None),
        endpoint("acme", "ep_fifo", &["*"], Ordering::Strict),
        endpoint("acme", "ep_subject", &["*"], Ordering::Subject),
        narrow,
    ] {
        node_a.create_endpoint(record).await.expect("endpoint");
    }
    let n_events = 30;
    let subjects = ["alice", "bob", "carol"];
    let events = (0..n_events)
        .map(|n| {
            event(
                &format!("e{n}"),
                "user.updated",
                Some(subjects[n % subjects.len()]),
            )
        })
        .collect();
    node_b
        .publish("acme", events, at(0))
        .await
        .expect("published");
    let n_deliveries = 4 * n_events;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut workers = JoinSet::new();
    for _ in 0..3 {
        for node in [&node_a, &node_b] {
            workers.spawn(work(Arc::clone(node), Arc::clone(&ledger), n_deliveries));
        }
    }
    join_all(workers).await;
    assert_eq!(node_a.count_pending().await.expect("count"), 0);

    let ledger = ledger.lock().expect("every worker succeeded");
    assert_eq!(ledger.claimed.len(), n_deliveries);
    let all_seqs: Vec<i64> = (1..=i64::try_from(n_events).expect("small")).collect();
    assert_eq!(ledger.fifo_order, all_seqs, "strict: first in, first out");
    for (subject, seqs) in &ledger.subject_order {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, &sorted, "subject {subject}: in seq order");
        assert_eq!(seqs.len(), n_events / subjects.len());
    }
}

#[tokio::test]
async fn a_dead_nodes_lease_is_taken_over_after_it_expires() {
    let (node_a, node_b) = two_nodes().await;
    tenant(&node_a, "acme").await;
    node_a
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::Strict))
        .await
        .expect("endpoint");
    node_a
        .publish(
            "acme",
            vec![
                event("e1", "user.created", Some("u1")),
                event("e2", "user.created", Some("u1")),
            ],
            at(0),
        )
        .await
        .expect("published");
    let lease = Duration::seconds(90);
    let taken = node_a.claim_due(at(1), 10, lease).await.expect("claim");
    assert_eq!(taken.len(), 1, "strict: the head only");
    // Node A dies here, mid-attempt. Until its lease runs out nobody else may send e1 (or e2,
    // which is behind it); then node B takes e1 over.
    assert!(
        node_b
            .claim_due(at(90), 10, lease)
            .await
            .expect("claim")
            .is_empty()
    );
    let taken_over = node_b.claim_due(at(91), 10, lease).await.expect("claim");
    assert_eq!(
        taken_over
            .iter()
            .map(|claim| claim.delivery_id.as_str())
            .collect::<Vec<_>>(),
        [taken[0].delivery_id.as_str()]
    );
    assert_eq!(taken_over[0].event.id, "e1");
}

/// Publishes `n_batches` batches of one to three events, returning the seqs it was given.
async fn publish_batches(store: Arc<PostgresStore>, name: String, n_batches: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    for batch in 0..n_batches {
        let events = (0..=batch % 3)
            .map(|n| event(&format!("{name}-{batch}-{n}"), "user.created", None))
            .collect();
        let published = store
            .publish("acme", events, at(1))
            .await
            .expect("published");
        seqs.extend(published.iter().map(|answer| answer.seq));
    }
    seqs
}

/// Pages through the log by `after_seq` until it has seen `n_events`, asserting that every page
/// continues exactly where the last one ended: an event that committed later with a smaller seq
/// than one already read would show up as a gap.
async fn read_all_pages(store: Arc<PostgresStore>, n_events: usize) -> StoreResult<Vec<i64>> {
    let mut seen = Vec::new();
    let mut after_seq = 0;
    while seen.len() < n_events {
        let page = store
            .list_events(
                "acme",
                &EventFilter {
                    after_seq,
                    limit: 7,
                    ..Default::default()
                },
            )
            .await?;
        for stored in &page {
            assert_eq!(
                stored.event.seq,
                after_seq + 1,
                "the reader, after seq {after_seq}, skipped to {}",
                stored.event.seq
            );
            after_seq = stored.event.seq;
            seen.push(after_seq);
        }
        if page.is_empty() {
            tokio::task::yield_now().await;
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_get_gap_free_seqs_that_readers_never_miss() {
    let (node_a, node_b) = two_nodes().await;
    tenant(&node_a, "acme").await;
    // A subscriber makes each publish transaction longer, widening the window for races.
    node_a
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    let n_batches = 24;
    // Batch sizes cycle 1, 2, 3: 24 batches hold 48 events.
    let per_publisher = 48;
    let publishers = [
        ("a1", &node_a),
        ("a2", &node_a),
        ("b1", &node_b),
        ("b2", &node_b),
    ];
    let n_events = per_publisher * publishers.len();

    let reader = tokio::spawn(read_all_pages(Arc::clone(&node_b), n_events));
    let mut publishing = JoinSet::new();
    for (name, node) in publishers {
        publishing.spawn(publish_batches(
            Arc::clone(node),
            name.to_owned(),
            n_batches,
        ));
    }
    let mut all_seqs = Vec::new();
    let published = tokio::time::timeout(DEADLINE, async {
        while let Some(seqs) = publishing.join_next().await {
            all_seqs.extend(seqs.expect("a publisher succeeded"));
        }
    });
    published.await.expect("published before the deadline");
    all_seqs.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(n_events).expect("small")).collect();
    assert_eq!(all_seqs, expected, "gap-free and each seq given once");

    let seen = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("read before the deadline")
        .expect("the reader succeeded")
        .expect("pages read");
    assert_eq!(seen, expected, "the reader saw every event once, in order");
}

#[tokio::test]
async fn changes_on_one_node_wake_a_listener_on_another() {
    let (node_a, node_b) = two_nodes().await;
    let wakeup = Arc::new(Notify::new());
    let _listener = node_a
        .listen_for_wakeups(Arc::clone(&wakeup), Arc::new(|_| {}))
        .await
        .expect("listening");
    tenant(&node_b, "acme").await;
    node_b
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    let woken = || async {
        tokio::time::timeout(DEADLINE, wakeup.notified())
            .await
            .is_ok()
    };

    node_b
        .publish("acme", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    assert!(woken().await, "a publish wakes the other node");

    let claimed = node_b
        .claim_due(at(1), 1, Duration::seconds(90))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        woken().await,
        "a lease is announced, so others wake when it expires"
    );

    node_b
        .release(claimed[0].delivery_id.as_str(), at(5))
        .await
        .expect("released");
    assert!(woken().await, "a release wakes the other node");

    let mut paused = endpoint("acme", "ep_1", &["*"], Ordering::None);
    paused.paused = true;
    node_b
        .update_endpoint(paused.clone())
        .await
        .expect("paused");
    let mut resumed = paused;
    resumed.paused = false;
    node_b.update_endpoint(resumed).await.expect("resumed");
    assert!(
        woken().await,
        "resuming an endpoint wakes the other node: its queue is due there too"
    );
}

/// Every hook change on one node reaches the other's change handler as a notice for that tenant,
/// when it commits, so the other node's hooks cache can drop the tenant's chains.
#[tokio::test]
async fn hook_changes_on_one_node_reach_the_other_as_notices() {
    let (node_a, node_b) = two_nodes().await;
    let (sender, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let _listener = node_a
        .listen_for_wakeups(
            Arc::new(Notify::new()),
            Arc::new(move |notice| {
                let _ = sender.send(notice);
            }),
        )
        .await
        .expect("listening");
    tenant(&node_b, "acme").await;
    let mut next_notice = async || {
        tokio::time::timeout(DEADLINE, notices.recv())
            .await
            .expect("a notice before the deadline")
            .expect("the listener runs")
    };
    let acme = ChangeNotice::Hooks {
        tenant_id: "acme".to_owned(),
    };
    let mut hook = hook_template();
    node_b.create_hook(hook.clone()).await.expect("created");
    assert_eq!(next_notice().await, acme, "created");
    hook.enabled = false;
    node_b.update_hook(hook).await.expect("updated");
    assert_eq!(next_notice().await, acme, "updated");
    assert!(node_b.delete_hook("acme", "hk_1").await.expect("deleted"));
    assert_eq!(next_notice().await, acme, "deleted");
    assert!(!node_b.delete_hook("acme", "hk_1").await.expect("deleted"));
    // Deleting nothing announces nothing: the next notice is the next change's, another tenant's.
    tenant(&node_b, "beta").await;
    let beta_hook = HookRecord {
        id: HookId::parse("hk_2").expect("a hook id"),
        tenant_id: "beta".to_owned(),
        ..hook_template()
    };
    node_b.create_hook(beta_hook).await.expect("created");
    assert_eq!(
        next_notice().await,
        ChangeNotice::Hooks {
            tenant_id: "beta".to_owned()
        },
        "deleting nothing announced something"
    );
}

fn hook_template() -> HookRecord {
    HookRecord {
        id: HookId::parse("hk_1").expect("a hook id"),
        tenant_id: "acme".to_owned(),
        event_type: "user.pre_create".to_owned(),
        url: "https://hooks.example.com/1".to_owned(),
        position: 0,
        timeout_ms: 5_000,
        failure_policy: FailurePolicy::FailClosed,
        secret: herald_core::secret::SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("a valid secret"),
        enabled: true,
        created_at: at(0),
        updated_at: at(0),
    }
}
