//! Hooks in their per-type order, and the decisions they leave behind.

use std::sync::Arc;

use herald_core::ids::{HookDecisionId, HookId};
use serde_json::json;

use crate::models::{DecisionRecord, FailurePolicy, HookRecord};
use crate::{Store, StoreError};

use super::{at, ids, tenant, test_secret};

/// A hook of `tenant_id`; `id` is a valid hook id such as `"hk_a"`.
fn hook(tenant_id: &str, id: &str, event_type: &str, position: i32) -> HookRecord {
    HookRecord {
        id: HookId::parse(id).expect("a fixture's hook id"),
        tenant_id: tenant_id.to_owned(),
        event_type: event_type.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        position,
        timeout_ms: 5_000,
        failure_policy: FailurePolicy::FailClosed,
        secret: test_secret(),
        enabled: true,
        created_at: at(i64::from(position)),
        updated_at: at(i64::from(position)),
    }
}

pub async fn hooks_are_ordered_per_event_type_and_tenant(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let missing_tenant = store
        .create_hook(hook("ghost", "hk_0", "user.pre_create", 1))
        .await;
    assert!(
        matches!(missing_tenant, Err(StoreError::NotFound(_))),
        "{missing_tenant:?}"
    );
    for record in [
        hook("acme", "hk_c", "user.pre_create", 30),
        hook("acme", "hk_a", "user.pre_create", 10),
        hook("acme", "hk_j", "oidc.jwt.pre_create", 1),
        hook("acme", "hk_b", "user.pre_create", 20),
        hook("beta", "hk_x", "user.pre_create", 5),
    ] {
        store.create_hook(record).await.expect("hook");
    }
    let listed = store.list_hooks("acme").await.expect("list");
    assert_eq!(
        ids(&listed, |h| h.id.as_str()),
        ["hk_j", "hk_a", "hk_b", "hk_c"]
    );
    let mut changed = listed[1].clone();
    changed.position = 99;
    changed.failure_policy = FailurePolicy::FailOpen;
    changed.enabled = false;
    store.update_hook(changed.clone()).await.expect("updated");
    assert_eq!(
        store.get_hook("acme", "hk_a").await.expect("get"),
        Some(changed)
    );
    assert_eq!(
        ids(&store.list_hooks("acme").await.expect("list"), |h| h
            .id
            .as_str()),
        ["hk_j", "hk_b", "hk_c", "hk_a"]
    );
    assert!(store.get_hook("beta", "hk_a").await.expect("get").is_none());
    let hijack = hook("beta", "hk_a", "user.pre_create", 1);
    assert!(matches!(
        store.update_hook(hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_hook("beta", "hk_a").await.expect("delete"));
    assert!(store.delete_hook("acme", "hk_a").await.expect("delete"));
    assert_eq!(store.list_hooks("acme").await.expect("list").len(), 3);
    assert_eq!(
        ids(&store.list_hooks("beta").await.expect("list"), |h| h
            .id
            .as_str()),
        ["hk_x"]
    );
}

pub async fn decisions_are_listed_by_cursor_and_expire(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let decision = |tenant_id: &str, id: &str, seconds: i64, is_allowed: bool| DecisionRecord {
        id: HookDecisionId::parse(id).expect("a fixture's decision id"),
        tenant_id: tenant_id.to_owned(),
        event_type: "user.pre_create".to_owned(),
        event_id: Some(format!("evt-{id}")),
        is_allowed,
        reasons: if is_allowed {
            json!([])
        } else {
            json!([{"title": "No", "reason": "blocked"}])
        },
        trace: json!([{"hook_id": "hk_a", "outcome": "allowed", "status": 200, "latency_ms": 1}]),
        latency_us: 1500,
        created_at: at(seconds),
    };
    store
        .record_decisions(vec![
            decision("acme", "hd_1", 1, true),
            decision("acme", "hd_2", 2, false),
            decision("beta", "hd_3", 3, true),
            decision("acme", "hd_4", 100, true),
        ])
        .await
        .expect("recorded");
    let first = store.list_decisions("acme", None, 2).await.expect("list");
    assert_eq!(ids(&first, |d| d.id.as_str()), ["hd_1", "hd_2"]);
    assert_eq!(first[1], decision("acme", "hd_2", 2, false));
    let rest = store
        .list_decisions("acme", Some("hd_2"), 10)
        .await
        .expect("list");
    assert_eq!(ids(&rest, |d| d.id.as_str()), ["hd_4"]);
    assert_eq!(
        ids(
            &store.list_decisions("beta", None, 10).await.expect("list"),
            |d| d.id.as_str()
        ),
        ["hd_3"]
    );
    assert_eq!(store.remove_expired(at(50), 10).await.expect("removed"), 3);
    assert_eq!(
        ids(
            &store.list_decisions("acme", None, 10).await.expect("list"),
            |d| d.id.as_str()
        ),
        ["hd_4"]
    );
}
