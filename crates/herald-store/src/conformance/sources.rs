//! Inbound sources: per tenant, with their outcome counters and recent errors.

use std::sync::Arc;

use crate::models::{
    SOURCE_ERRORS_KEPT, SourceErrorEntry, SourceKind, SourceOutcome, SourceRecord,
};
use crate::{Store, StoreError};

use super::{at, ids, tenant};

fn source(tenant_id: &str, id: &str, kind: SourceKind) -> SourceRecord {
    SourceRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        kind,
        name: Some(format!("{} in production", kind.as_str())),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        header_name: None,
        username: None,
        accepted_topics: Vec::new(),
        lease_expires_at: None,
        n_accepted: 0,
        n_duplicates: 0,
        n_refused: 0,
        last_success_at: None,
        last_error_at: None,
        last_errors: Vec::new(),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub async fn sources_are_per_tenant_and_count_their_outcomes(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let missing_tenant = store
        .create_source(source("ghost", "src_0", SourceKind::Authgear))
        .await;
    assert!(
        matches!(missing_tenant, Err(StoreError::NotFound(_))),
        "{missing_tenant:?}"
    );
    let mut asgardeo = source("acme", "src_b", SourceKind::Asgardeo);
    asgardeo.accepted_topics = vec![
        "myorg-USER_OPERATIONS".to_owned(),
        "myorg-LOGINS".to_owned(),
    ];
    asgardeo.created_at = at(2);
    let mut onewelcome = source("acme", "src_c", SourceKind::Onewelcome);
    onewelcome.username = Some("exporter".to_owned());
    onewelcome.name = None;
    onewelcome.created_at = at(3);
    for record in [
        source("acme", "src_a", SourceKind::Authgear),
        asgardeo.clone(),
        onewelcome.clone(),
        source("beta", "src_x", SourceKind::Authgear),
    ] {
        store.create_source(record).await.expect("source");
    }
    let listed = store.list_sources("acme").await.expect("list");
    assert_eq!(ids(&listed, |s| s.id.as_str()), ["src_a", "src_b", "src_c"]);
    assert_eq!(listed[1], asgardeo);
    assert_eq!(listed[2], onewelcome);
    assert_eq!(
        store.get_source("acme", "src_b").await.expect("get"),
        Some(asgardeo.clone())
    );
    // Another tenant's source is absent, by tenant; the ingest lookup by id alone finds it.
    assert!(
        store
            .get_source("beta", "src_b")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store.get_source_by_id("src_b").await.expect("by id"),
        Some(asgardeo.clone())
    );
    assert!(
        store
            .get_source_by_id("src_none")
            .await
            .expect("by id")
            .is_none()
    );

    // Outcomes add up, errors are kept newest first and capped.
    for (idx, seconds) in (10..10 + SOURCE_ERRORS_KEPT as i64 + 2).enumerate() {
        store
            .record_source_outcome(
                "src_b",
                SourceOutcome {
                    at: at(seconds),
                    n_accepted: 0,
                    n_duplicates: 0,
                    n_refused: 1,
                    error: Some(SourceErrorEntry {
                        at: at(seconds),
                        status: 401,
                        detail: format!("refusal {idx}"),
                    }),
                },
            )
            .await
            .expect("outcome");
    }
    store
        .record_source_outcome(
            "src_b",
            SourceOutcome {
                at: at(100),
                n_accepted: 3,
                n_duplicates: 1,
                n_refused: 0,
                error: None,
            },
        )
        .await
        .expect("outcome");
    let lease = Some(at(864_000));
    store
        .record_source_lease("src_b", lease)
        .await
        .expect("lease");
    // Counting a source that is gone is no error: a request may race with a delete.
    store
        .record_source_outcome(
            "src_none",
            SourceOutcome {
                at: at(1),
                n_accepted: 1,
                n_duplicates: 0,
                n_refused: 0,
                error: None,
            },
        )
        .await
        .expect("outcome of a missing source");

    let counted = store
        .get_source("acme", "src_b")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        (counted.n_accepted, counted.n_duplicates, counted.n_refused),
        (3, 1, SOURCE_ERRORS_KEPT as u64 + 2)
    );
    assert_eq!(counted.last_success_at, Some(at(100)));
    assert_eq!(
        counted.last_error_at,
        Some(at(10 + SOURCE_ERRORS_KEPT as i64 + 1))
    );
    assert_eq!(counted.lease_expires_at, lease);
    assert_eq!(counted.last_errors.len(), SOURCE_ERRORS_KEPT);
    assert_eq!(
        counted.last_errors[0].detail,
        format!("refusal {}", SOURCE_ERRORS_KEPT + 1)
    );
    assert_eq!(counted.last_errors[0].status, 401);
    assert_eq!(
        counted.last_errors[SOURCE_ERRORS_KEPT - 1].detail,
        "refusal 2"
    );

    // An update changes the settings and keeps the counters, errors and lease.
    let mut changed = asgardeo.clone();
    changed.name = Some("renamed".to_owned());
    changed.secret = "rotated-secret".to_owned();
    changed.accepted_topics = vec!["myorg-SESSIONS".to_owned()];
    changed.n_accepted = 999;
    changed.updated_at = at(200);
    let updated = store.update_source(changed).await.expect("updated");
    assert_eq!(updated.n_accepted, 3);
    let read_back = store
        .get_source("acme", "src_b")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(read_back, updated);
    assert_eq!(read_back.name.as_deref(), Some("renamed"));
    assert_eq!(read_back.secret, "rotated-secret");
    assert_eq!(read_back.accepted_topics, ["myorg-SESSIONS"]);
    assert_eq!(read_back.updated_at, at(200));
    assert_eq!(read_back.last_errors.len(), SOURCE_ERRORS_KEPT);
    assert_eq!(read_back.lease_expires_at, lease);
    store
        .record_source_lease("src_b", None)
        .await
        .expect("unsubscribed");
    assert_eq!(
        store
            .get_source("acme", "src_b")
            .await
            .expect("get")
            .expect("there")
            .lease_expires_at,
        None
    );

    // Another tenant can neither update nor delete it.
    let mut hijack = source("beta", "src_b", SourceKind::Authgear);
    hijack.secret = "stolen".to_owned();
    assert!(matches!(
        store.update_source(hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_source("beta", "src_b").await.expect("delete"));
    assert!(store.delete_source("acme", "src_b").await.expect("delete"));
    assert!(!store.delete_source("acme", "src_b").await.expect("delete"));
    assert!(
        store
            .get_source_by_id("src_b")
            .await
            .expect("by id")
            .is_none()
    );
    assert_eq!(
        ids(&store.list_sources("acme").await.expect("list"), |s| s
            .id
            .as_str()),
        ["src_a", "src_c"]
    );
}
