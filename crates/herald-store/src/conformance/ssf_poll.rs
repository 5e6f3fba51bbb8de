//! Shared Signals: signing keys, streams, subjects and the poll queue.

use std::sync::Arc;

use crate::{Store, StoreError};

use super::{at, tenant};

pub async fn ssf_keys_streams_subjects_and_poll_queue(store: Arc<dyn Store>) {
    use crate::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let key = |tenant_id: &str, kid: &str, seconds: i64| SsfSigningKeyRecord {
        kid: kid.to_owned(),
        tenant_id: tenant_id.to_owned(),
        algorithm: "ES256".to_owned(),
        private_key: format!("private-{kid}"),
        created_at: at(seconds),
        retired_at: None,
    };
    let missing = store.create_ssf_signing_key(key("ghost", "k0", 0)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    for record in [
        key("acme", "k1", 1),
        key("acme", "k2", 2),
        key("beta", "k3", 3),
    ] {
        store.create_ssf_signing_key(record).await.expect("key");
    }
    let duplicate = store.create_ssf_signing_key(key("acme", "k1", 5)).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(
        store
            .retire_ssf_signing_keys("acme", "k2", at(10))
            .await
            .expect("retire"),
        1
    );
    assert_eq!(
        store
            .retire_ssf_signing_keys("acme", "k2", at(11))
            .await
            .expect("retire again"),
        0
    );
    let keys = store.list_ssf_signing_keys("acme").await.expect("keys");
    assert_eq!(
        keys.iter().map(|key| key.kid.as_str()).collect::<Vec<_>>(),
        ["k2", "k1"]
    );
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(at(10)));
    assert_eq!(keys[1].private_key, "private-k1");

    let receiver = SsfReceiverRecord {
        id: "rcv_1".to_owned(),
        tenant_id: "acme".to_owned(),
        name: Some("RP".to_owned()),
        token_hash: "hash-1".to_owned(),
        may_receive_all_subjects: true,
        created_at: at(1),
    };
    store
        .create_ssf_receiver(receiver.clone())
        .await
        .expect("receiver");
    assert_eq!(
        store
            .find_ssf_receiver_by_token("hash-1")
            .await
            .expect("find"),
        Some(receiver.clone())
    );
    assert_eq!(
        store
            .find_ssf_receiver_by_token("hash-2")
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.list_ssf_receivers("acme").await.expect("list"),
        vec![receiver.clone()]
    );
    assert!(
        store
            .list_ssf_receivers("beta")
            .await
            .expect("list")
            .is_empty()
    );

    let stream = |id: &str, seconds: i64| SsfStreamRecord {
        id: id.to_owned(),
        tenant_id: "acme".to_owned(),
        receiver_id: "rcv_1".to_owned(),
        config: "{\"v\":1}".to_owned(),
        status: "enabled".to_owned(),
        status_reason: None,
        created_at: at(seconds),
        updated_at: at(seconds),
    };
    store
        .create_ssf_stream(stream("str_1", 1))
        .await
        .expect("stream");
    store
        .create_ssf_stream(stream("str_2", 2))
        .await
        .expect("stream");
    let mut paused = stream("str_1", 1);
    paused.status = "paused".to_owned();
    paused.status_reason = Some("maintenance".to_owned());
    paused.updated_at = at(5);
    store
        .update_ssf_stream(paused.clone())
        .await
        .expect("update");
    let mut foreign = paused.clone();
    foreign.tenant_id = "beta".to_owned();
    let refused = store.update_ssf_stream(foreign).await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    let streams = store.list_ssf_streams("acme").await.expect("streams");
    assert_eq!(streams, vec![paused, stream("str_2", 2)]);
    assert!(
        store
            .list_ssf_streams("beta")
            .await
            .expect("streams")
            .is_empty()
    );

    store
        .add_ssf_subject("str_1", "subject-a")
        .await
        .expect("add");
    store
        .add_ssf_subject("str_1", "subject-a")
        .await
        .expect("add twice");
    store
        .add_ssf_subject("str_1", "subject-b")
        .await
        .expect("add");
    assert_eq!(
        store.list_ssf_subjects("str_1").await.expect("subjects"),
        ["subject-a", "subject-b"]
    );
    assert!(
        store
            .remove_ssf_subject("str_1", "subject-a")
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_ssf_subject("str_1", "subject-a")
            .await
            .expect("remove twice")
    );
    assert_eq!(
        store.list_ssf_subjects("str_1").await.expect("subjects"),
        ["subject-b"]
    );

    let queued = |stream_id: &str, jti: &str| SsfQueuedSet {
        stream_id: stream_id.to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{jti}"),
        created_at: at(7),
    };
    store
        .enqueue_ssf_sets(vec![
            queued("str_1", "j3"),
            queued("str_1", "j1"),
            queued("str_1", "j2"),
            queued("str_2", "j9"),
        ])
        .await
        .expect("enqueue");
    store
        .enqueue_ssf_sets(vec![queued("str_1", "j3")])
        .await
        .expect("enqueue again");
    let peeked = store.peek_ssf_sets("str_1", 2).await.expect("peek");
    assert_eq!(
        peeked
            .iter()
            .map(|set| set.jti.as_str())
            .collect::<Vec<_>>(),
        ["j3", "j1"],
        "in the order queued"
    );
    assert_eq!(peeked[0].token, "token-j3");
    assert_eq!(
        store
            .ack_ssf_sets(
                "str_1",
                vec!["j3".to_owned(), "j9".to_owned(), "nope".to_owned()]
            )
            .await
            .expect("ack"),
        1,
        "only the stream's own SETs are acknowledged"
    );
    let left = store.peek_ssf_sets("str_1", 10).await.expect("peek");
    assert_eq!(
        left.iter().map(|set| set.jti.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    assert_eq!(store.clear_ssf_queue("str_1").await.expect("clear"), 2);
    assert!(
        store
            .peek_ssf_sets("str_1", 10)
            .await
            .expect("peek")
            .is_empty()
    );
    assert_eq!(
        store.peek_ssf_sets("str_2", 10).await.expect("peek").len(),
        1
    );

    assert!(
        !store
            .delete_ssf_stream("beta", "str_2")
            .await
            .expect("foreign delete")
    );
    assert!(
        store
            .delete_ssf_stream("acme", "str_2")
            .await
            .expect("delete")
    );
    assert!(
        store
            .peek_ssf_sets("str_2", 10)
            .await
            .expect("peek")
            .is_empty(),
        "the queue goes with the stream"
    );
    assert_eq!(
        store.list_ssf_streams("acme").await.expect("streams").len(),
        1
    );
}
