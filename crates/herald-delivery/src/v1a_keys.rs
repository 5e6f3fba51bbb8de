//! Which of a tenant's Ed25519 keys sign Standard Webhooks `v1a` signatures, and which public keys
//! its consumers should trust.
//!
//! The keys live in the tenant key store beside its SET keys (algorithm `EdDSA`). The newest key
//! not retired is the current one; a key retired by a rotation keeps signing, beside the new one,
//! until its `retired_at` + the overlap, like a rotated endpoint secret and like the JWKS, which
//! publishes it for as long. So a consumer that trusts only the old `whpk_` key keeps accepting
//! deliveries through the overlap, and one that trusts only the new key accepts them at once.

use herald_core::asymmetric::{Ed25519SigningKey, JWS_ALGORITHM};
use herald_store::ssf::SsfSigningKeyRecord;
use herald_store::{Store, StoreResult};
use time::{Duration, OffsetDateTime};

/// The keys that sign now, newest first: the current key and those retired less than `overlap`
/// ago. A stored key that cannot be read is logged and left out.
pub fn live_ed25519_keys(
    records: &[SsfSigningKeyRecord],
    now: OffsetDateTime,
    overlap: Duration,
) -> Vec<Ed25519SigningKey> {
    let mut records: Vec<&SsfSigningKeyRecord> = records
        .iter()
        .filter(|record| record.algorithm == JWS_ALGORITHM)
        .filter(|record| {
            record
                .retired_at
                .is_none_or(|retired_at| retired_at + overlap > now)
        })
        .collect();
    // Newest first whatever order the store gave, so the current key's signature comes first.
    records.sort_by_key(|record| std::cmp::Reverse(record.created_at));
    records
        .into_iter()
        .filter_map(
            |record| match Ed25519SigningKey::from_private_key_text(&record.private_key) {
                Ok(key) => Some(key),
                Err(error) => {
                    tracing::error!(kid = %record.kid, %error, "stored Ed25519 key is unusable");
                    None
                }
            },
        )
        .collect()
}

/// Whether the tenant has a current (not retired) Ed25519 key.
pub fn has_current_ed25519_key(records: &[SsfSigningKeyRecord]) -> bool {
    records
        .iter()
        .any(|record| record.algorithm == JWS_ALGORITHM && record.retired_at.is_none())
}

/// The tenant's live keys, read from the store.
pub async fn load_live_ed25519_keys(
    store: &dyn Store,
    tenant_id: &str,
    now: OffsetDateTime,
    overlap: Duration,
) -> StoreResult<Vec<Ed25519SigningKey>> {
    let records = store.list_ssf_signing_keys(tenant_id).await?;
    Ok(live_ed25519_keys(&records, now, overlap))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
    }

    fn record(
        kid: &str,
        algorithm: &str,
        seed: u64,
        created_s: i64,
        retired_s: Option<i64>,
    ) -> SsfSigningKeyRecord {
        SsfSigningKeyRecord {
            kid: kid.to_owned(),
            tenant_id: "acme".to_owned(),
            algorithm: algorithm.to_owned(),
            private_key: Ed25519SigningKey::generate(&mut StdRng::seed_from_u64(seed))
                .private_key_text(),
            created_at: at(created_s),
            retired_at: retired_s.map(at),
        }
    }

    #[test]
    fn the_current_key_and_those_within_the_overlap_sign_newest_first() {
        fn check(records: &[SsfSigningKeyRecord], now_s: i64, expected: &[&SsfSigningKeyRecord]) {
            let live: Vec<String> = live_ed25519_keys(records, at(now_s), Duration::seconds(100))
                .iter()
                .map(|key| key.public_key().to_whpk())
                .collect();
            let expected: Vec<String> = expected
                .iter()
                .map(|record| {
                    Ed25519SigningKey::from_private_key_text(&record.private_key)
                        .expect("key")
                        .public_key()
                        .to_whpk()
                })
                .collect();
            assert_eq!(live, expected, "at {now_s}");
        }
        let old = record("old", "EdDSA", 1, 0, Some(50));
        let new = record("new", "EdDSA", 2, 50, None);
        let set_key = record("set", "ES256", 3, 60, None);
        let broken = SsfSigningKeyRecord {
            private_key: "not a key".to_owned(),
            ..record("broken", "EdDSA", 4, 70, Some(70))
        };
        let records = [old.clone(), set_key, new.clone(), broken];
        check(&records, 60, &[&new, &old]);
        check(&records, 149, &[&new, &old]);
        check(&records, 150, &[&new]);
        check(&records[..2], 200, &[]);
        assert!(has_current_ed25519_key(&records));
        assert!(!has_current_ed25519_key(&records[..2]));
    }
}
