//! The body of the `signatures` fuzz target, shared with the corpus replay test of herald-core
//! (`crates/herald-core/tests/fuzz_corpus.rs`): the headers a receiver gets, as untrusted text,
//! through Standard Webhooks and native signature verification, and signing secrets as a user
//! types them.
//!
//! The input is split at newlines into: a signing secret, `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, a native signature header value; the rest is the body. Besides "never
//! panics", it checks that whatever Herald signs verifies with the same secret.

use std::time::Duration;

use herald_core::secret::SigningSecret;
use herald_core::signing::{
    NativeSignature, ReceivedStandardHeaders, SignedHeaders, verify_native, verify_standard,
};
use time::OffsetDateTime;

const NATIVE_KINDS: [NativeSignature; 3] = [
    NativeSignature::AuthgearBodyHex,
    NativeSignature::HubSignatureSha256,
    NativeSignature::None,
];

pub fn run(data: &[u8]) {
    let mut fields = data.splitn(6, |byte| *byte == b'\n');
    let mut next_text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let secret_text = next_text();
    let webhook_id = next_text();
    let webhook_timestamp = next_text();
    let webhook_signature = next_text();
    let native_value = next_text();
    let body = fields.next().unwrap_or_default();

    let Ok(secret) = SigningSecret::parse(&secret_text) else {
        return;
    };
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a valid time");
    let received = ReceivedStandardHeaders {
        webhook_id: &webhook_id,
        webhook_timestamp: &webhook_timestamp,
        webhook_signature: &webhook_signature,
    };
    for tolerance_s in [0, 300, u64::MAX] {
        let _ = verify_standard(
            &[&secret],
            &received,
            body,
            now,
            Duration::from_secs(tolerance_s),
        );
    }
    for kind in NATIVE_KINDS {
        let _ = verify_native(kind, &[&secret], &native_value, body);
    }

    // What Herald signs, a receiver with the same secret accepts.
    for kind in NATIVE_KINDS {
        let Ok(signed) = SignedHeaders::new(&[&secret], &webhook_id, 1_700_000_000, body, kind)
        else {
            continue;
        };
        let headers = ReceivedStandardHeaders {
            webhook_id: signed.get("webhook-id").expect("webhook-id"),
            webhook_timestamp: signed.get("webhook-timestamp").expect("webhook-timestamp"),
            webhook_signature: signed.get("webhook-signature").expect("webhook-signature"),
        };
        let verified = verify_standard(&[&secret], &headers, body, now, Duration::ZERO);
        assert_eq!(verified, Ok(()), "Herald's own signature does not verify");
        if let Some(name) = kind.header_name() {
            let value = signed.get(name).expect("the native header");
            assert_eq!(verify_native(kind, &[&secret], value, body), Ok(()));
        }
    }
}
