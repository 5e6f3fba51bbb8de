//! Shared Signals push on a shared database: two `PostgresStore`s stand for two Herald nodes,
//! each with two workers leasing push streams at once. A stream must never be pushed by two
//! workers at the same time, and its SETs must go out once each, in the order queued.
//!
//! Never sleeps: the workers run until every SET is accepted, bounded by one generous timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_store::models::Tenant;
use herald_store::prelude::*;
use herald_store::ssf::{
    SsfPushAttemptRecord, SsfPushOutcome, SsfQueuedSet, SsfReceiverRecord, SsfStreamRecord,
};
use herald_store_postgres::PostgresStore;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::fresh_database;

const N_STREAMS: usize = 8;
const N_SETS_PER_STREAM: usize = 6;
/// Only a hang reaches it.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// Which streams a worker holds right now, and what each stream got, in order.
#[derive(Default)]
struct Ledger {
    held: HashMap<String, usize>,
    accepted: HashMap<String, Vec<String>>,
    n_accepted: usize,
}

async fn push_worker(store: Arc<PostgresStore>, worker: usize, ledger: Arc<Mutex<Ledger>>) {
    let mut n_attempt = 0;
    loop {
        if ledger.lock().expect("ledger").n_accepted == N_STREAMS * N_SETS_PER_STREAM {
            return;
        }
        let heads = store
            .lease_ssf_push_heads(at(10), at(70), 3)
            .await
            .expect("lease");
        if heads.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        for head in heads {
            {
                let mut ledger = ledger.lock().expect("ledger");
                if let Some(other) = ledger.held.insert(head.stream.id.clone(), worker) {
                    panic!(
                        "stream {} leased by worker {worker} while worker {other} holds it",
                        head.stream.id
                    );
                }
            }
            tokio::task::yield_now().await;
            {
                // Released before the record commits: until then the store's lease still holds.
                let mut ledger = ledger.lock().expect("ledger");
                ledger.held.remove(&head.stream.id);
                ledger
                    .accepted
                    .entry(head.stream.id.clone())
                    .or_default()
                    .push(head.set.jti.clone());
                ledger.n_accepted += 1;
            }
            n_attempt += 1;
            store
                .record_ssf_push_attempt(SsfPushAttemptRecord {
                    id: format!("att_{worker}_{n_attempt}"),
                    tenant_id: "acme".to_owned(),
                    stream_id: head.stream.id.clone(),
                    jti: head.set.jti.clone(),
                    attempted_at: at(10),
                    status_code: Some(202),
                    latency_ms: 1,
                    error: None,
                    outcome: SsfPushOutcome::Accepted,
                })
                .await
                .expect("record");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_push_one_stream_at_once_and_keep_its_order() {
    let url = fresh_database().await;
    let (node_a, node_b) = tokio::join!(
        PostgresStore::connect(&url, 4),
        PostgresStore::connect(&url, 4)
    );
    let (node_a, node_b) = (
        Arc::new(node_a.expect("node A")),
        Arc::new(node_b.expect("node B")),
    );
    node_a
        .create_tenant(Tenant {
            id: "acme".to_owned(),
            name: "Acme".to_owned(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant");
    node_a
        .create_ssf_receiver(SsfReceiverRecord {
            id: "rcv_1".to_owned(),
            tenant_id: "acme".to_owned(),
            name: None,
            token_hash: "hash-1".to_owned(),
            may_receive_all_subjects: true,
            created_at: at(0),
        })
        .await
        .expect("receiver");
    let mut expected = HashMap::new();
    for stream_idx in 0..N_STREAMS {
        let stream_id = format!("str_{stream_idx}");
        node_a
            .create_ssf_stream(SsfStreamRecord {
                id: stream_id.clone(),
                tenant_id: "acme".to_owned(),
                receiver_id: "rcv_1".to_owned(),
                config: "{\"v\":1}".to_owned(),
                status: "enabled".to_owned(),
                status_reason: None,
                created_at: at(0),
                updated_at: at(0),
            })
            .await
            .expect("stream");
        let jtis: Vec<String> = (0..N_SETS_PER_STREAM)
            .map(|set_idx| format!("set_{stream_idx}_{set_idx}"))
            .collect();
        node_a
            .enqueue_ssf_sets(
                jtis.iter()
                    .map(|jti| SsfQueuedSet {
                        stream_id: stream_id.clone(),
                        jti: jti.clone(),
                        token: format!("token-{jti}"),
                        created_at: at(5),
                    })
                    .collect(),
            )
            .await
            .expect("queued");
        expected.insert(stream_id, jtis);
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut workers = JoinSet::new();
    for (worker, node) in [&node_a, &node_a, &node_b, &node_b].into_iter().enumerate() {
        workers.spawn(push_worker(Arc::clone(node), worker, Arc::clone(&ledger)));
    }
    tokio::time::timeout(DEADLINE, async {
        while let Some(joined) = workers.join_next().await {
            joined.expect("a worker failed");
        }
    })
    .await
    .expect("every SET pushed before the deadline");
    let ledger = ledger.lock().expect("ledger");
    assert_eq!(
        ledger.accepted, expected,
        "each SET once, in order, per stream"
    );
}
