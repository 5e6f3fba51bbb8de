//! Shared Signals durable delivery: streams that follow the log and push under a lease.

use std::sync::Arc;

use crate::Store;

use super::{at, event, tenant};

pub async fn ssf_streams_follow_the_log_and_push_under_a_lease(store: Arc<dyn Store>) {
    use crate::ssf::{
        SsfPushAttemptRecord, SsfPushOutcome, SsfQueuedSet, SsfReceiverRecord, SsfStreamRecord,
    };
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let publish = |ids: &[&str]| {
        let events = ids
            .iter()
            .map(|id| event(id, "user.disabled", Some("u1")))
            .collect();
        let store = Arc::clone(&store);
        async move {
            store
                .publish("acme", events, at(1))
                .await
                .expect("published")
        }
    };
    publish(&["e1", "e2"]).await;
    store
        .create_ssf_receiver(SsfReceiverRecord {
            id: "rcv_1".to_owned(),
            tenant_id: "acme".to_owned(),
            name: None,
            token_hash: "hash-1".to_owned(),
            may_receive_all_subjects: false,
            created_at: at(1),
        })
        .await
        .expect("receiver");
    let mut stream = SsfStreamRecord {
        id: "str_1".to_owned(),
        tenant_id: "acme".to_owned(),
        receiver_id: "rcv_1".to_owned(),
        config: "{\"v\":1}".to_owned(),
        status: "enabled".to_owned(),
        status_reason: None,
        created_at: at(1),
        updated_at: at(1),
    };
    store
        .create_ssf_stream(stream.clone())
        .await
        .expect("stream");
    let behind = |limit: usize| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_ssf_streams_behind(limit)
                .await
                .expect("behind")
                .into_iter()
                .map(|behind| (behind.stream.id, behind.cursor_seq, behind.log_end_seq))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(behind(10).await, [], "a new stream starts at the log's end");

    publish(&["e3", "e4"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 2, 4)]);
    let set = |jti: &str, seconds: i64| SsfQueuedSet {
        stream_id: "str_1".to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{jti}"),
        created_at: at(seconds),
    };
    assert!(
        store
            .advance_ssf_stream("str_1", 2, 4, vec![set("a", 5), set("b", 5)])
            .await
            .expect("advance")
    );
    assert!(
        !store
            .advance_ssf_stream("str_1", 2, 4, vec![set("a2", 5)])
            .await
            .expect("advance from a stale cursor"),
        "a second worker from the same cursor changes nothing"
    );
    assert_eq!(behind(10).await, []);
    let queued: Vec<String> = store
        .peek_ssf_sets("str_1", 10)
        .await
        .expect("peek")
        .into_iter()
        .map(|set| set.jti)
        .collect();
    assert_eq!(queued, ["a", "b"]);

    // Pushes: the head only, under a lease; a retry waits, then the next SET comes.
    let heads = |now: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .lease_ssf_push_heads(at(now), at(now + 60), 10)
                .await
                .expect("lease")
                .into_iter()
                .map(|head| (head.set.jti, head.n_attempts))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(heads(10).await, [("a".to_owned(), 0)]);
    assert_eq!(heads(10).await, [], "a leased stream is not leased twice");
    let attempt =
        |id: &str, jti: &str, seconds: i64, outcome: SsfPushOutcome| SsfPushAttemptRecord {
            id: id.to_owned(),
            tenant_id: "acme".to_owned(),
            stream_id: "str_1".to_owned(),
            jti: jti.to_owned(),
            attempted_at: at(seconds),
            status_code: Some(503),
            latency_ms: 12,
            error: Some("status 503".to_owned()),
            outcome,
        };
    let retry = SsfPushOutcome::Retry {
        next_attempt_at: at(20),
    };
    store
        .record_ssf_push_attempt(attempt("att_1", "a", 10, retry))
        .await
        .expect("record");
    assert_eq!(heads(15).await, [], "the head waits for its retry time");
    assert_eq!(heads(20).await, [("a".to_owned(), 1)]);
    store
        .record_ssf_push_attempt(attempt("att_2", "a", 21, SsfPushOutcome::Accepted))
        .await
        .expect("record");
    assert_eq!(heads(22).await, [("b".to_owned(), 0)]);
    store
        .record_ssf_push_attempt(attempt("att_3", "b", 23, SsfPushOutcome::Rejected))
        .await
        .expect("record");
    assert_eq!(heads(24).await, []);
    let attempts = store
        .list_ssf_push_attempts("acme", "str_1", 10)
        .await
        .expect("attempts");
    assert_eq!(
        attempts
            .iter()
            .map(|attempt| (attempt.id.as_str(), attempt.outcome))
            .collect::<Vec<_>>(),
        [
            ("att_3", SsfPushOutcome::Rejected),
            ("att_2", SsfPushOutcome::Accepted),
            ("att_1", retry),
        ]
    );
    assert_eq!(attempts[2], attempt("att_1", "a", 10, retry));
    // Retention: attempts made before the cutoff go, in batches.
    assert_eq!(
        store
            .remove_expired_ssf_push_attempts(at(22), 1)
            .await
            .expect("retention"),
        1
    );
    assert_eq!(
        store
            .remove_expired_ssf_push_attempts(at(22), 10)
            .await
            .expect("retention"),
        1
    );
    let kept = store
        .list_ssf_push_attempts("acme", "str_1", 10)
        .await
        .expect("attempts");
    assert_eq!(
        kept.iter()
            .map(|attempt| attempt.id.as_str())
            .collect::<Vec<_>>(),
        ["att_3"]
    );
    assert!(
        store
            .list_ssf_push_attempts("beta", "str_1", 10)
            .await
            .expect("attempts")
            .is_empty()
    );

    // A poll stream's SETs are parked (never pushed) until scheduled again.
    store
        .enqueue_ssf_sets(vec![set("c", 30)])
        .await
        .expect("enqueue");
    store.schedule_ssf_queue("str_1", None).await.expect("park");
    assert_eq!(heads(40).await, []);
    store
        .schedule_ssf_queue("str_1", Some(at(41)))
        .await
        .expect("unpark");
    assert_eq!(heads(41).await, [("c".to_owned(), 0)]);
    store.schedule_ssf_queue("str_1", None).await.expect("park");

    // Paused: still follows the log (its SETs are kept) but nothing is pushed.
    stream.status = "paused".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("pause");
    publish(&["e5"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 4, 5)]);
    store
        .schedule_ssf_queue("str_1", Some(at(50)))
        .await
        .expect("due");
    assert_eq!(heads(50).await, [], "a paused stream is not pushed");

    // Disabled drops: it does not follow the log, and enabled again it starts at the log's end.
    stream.status = "disabled".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("disable");
    publish(&["e6"]).await;
    assert_eq!(behind(10).await, []);
    assert!(
        !store
            .advance_ssf_stream("str_1", 5, 6, vec![])
            .await
            .expect("advance"),
        "a disabled stream's cursor does not move"
    );
    stream.status = "enabled".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("enable");
    assert_eq!(behind(10).await, []);
    publish(&["e7"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 6, 7)]);
}
