//! Interoperability: Herald's Standard Webhooks signatures against the official Rust library.
//!
//! Consumers verify Herald's deliveries with the `standardwebhooks` libraries, so agreement with
//! one of them is the real contract. Both directions are checked: the library accepts what Herald
//! signs, and Herald's verifier accepts what the library signs. The library checks timestamps
//! against the real clock, so these tests sign at the real current time (they never wait).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use standardwebhooks::Webhook;
use time::OffsetDateTime;

use herald_core::clock::{Clock, SystemClock};
use herald_core::secret::SigningSecret;
use herald_core::signing::{
    DEFAULT_TIMESTAMP_TOLERANCE, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE,
    HEADER_WEBHOOK_TIMESTAMP, NativeSignature, ReceivedStandardHeaders, SignedHeaders,
    standard_signature, verify_standard,
};

const BODY: &[u8] = br#"{"id":"0190f2a4-6c1e-7a3b-9d2e-5f4a3b2c1d0e","seq":1,"type":"user.created","payload":{},"context":{}}"#;

/// The official verifier for a secret as Herald reads it: `whsec_` secrets through the library's
/// own parser, plain ones (which the library would try to base64-decode) by their bytes.
fn official_webhook(secret: &SigningSecret) -> Webhook {
    if secret.expose_text().starts_with("whsec_") {
        Webhook::new(secret.expose_text()).expect("the library reads whsec_ secrets")
    } else {
        Webhook::from_bytes(secret.key_bytes().to_vec()).expect("any key is usable")
    }
}

fn header_map(signed_headers: &SignedHeaders) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in signed_headers.pairs() {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("signed header values are valid HTTP"),
        );
    }
    headers
}

fn now_s() -> i64 {
    SystemClock.now().unix_timestamp()
}

/// Signs `body` with Herald using `signing_secrets` (newest first), then checks whether the
/// official library configured with `verifying_secret` accepts it.
fn check_official_accepts(
    signing_secrets: &[&SigningSecret],
    verifying_secret: &SigningSecret,
    body: &[u8],
    expected_accept: bool,
) {
    let signed_headers = SignedHeaders::new(
        signing_secrets,
        "msg_2Kd8f0",
        now_s(),
        BODY,
        NativeSignature::AuthgearBodyHex,
    )
    .expect("there is a secret and the id is a valid header value");
    let verdict = official_webhook(verifying_secret).verify(body, &header_map(&signed_headers));
    assert_eq!(
        verdict.is_ok(),
        expected_accept,
        "{verdict:?} for {signed_headers:?}"
    );
}

#[test]
fn official_library_accepts_what_herald_signs() {
    let standard = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let generated = SigningSecret::generate();
    let plain = SigningSecret::parse("a-vendor-plain-secret").unwrap();
    let stranger = SigningSecret::generate();

    check_official_accepts(&[&standard], &standard, BODY, true);
    check_official_accepts(&[&generated], &generated, BODY, true);
    check_official_accepts(&[&plain], &plain, BODY, true);
    // During a rotation a consumer holding either secret accepts the delivery.
    check_official_accepts(&[&generated, &standard], &generated, BODY, true);
    check_official_accepts(&[&generated, &standard], &standard, BODY, true);

    check_official_accepts(&[&standard], &stranger, BODY, false);
    check_official_accepts(&[&standard], &standard, b"{}", false);
}

#[test]
fn herald_accepts_what_the_official_library_signs() {
    fn check(secret_text: &str, msg_id: &str, body: &[u8]) {
        let secret = SigningSecret::parse(secret_text).unwrap();
        let timestamp_s = now_s();
        let official_signature = official_webhook(&secret)
            .sign(msg_id, timestamp_s, body)
            .unwrap();
        assert_eq!(
            official_signature,
            standard_signature(&secret, msg_id, timestamp_s, body)
        );
        let timestamp_text = timestamp_s.to_string();
        let headers = ReceivedStandardHeaders {
            webhook_id: msg_id,
            webhook_timestamp: &timestamp_text,
            webhook_signature: &official_signature,
        };
        let verdict = verify_standard(
            &[&secret],
            &headers,
            body,
            OffsetDateTime::now_utc(),
            DEFAULT_TIMESTAMP_TOLERANCE,
        );
        assert_eq!(verdict, Ok(()), "{secret_text} {msg_id}");
    }
    check(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        BODY,
    );
    check(
        SigningSecret::generate().expose_text(),
        "0190f2a4-6c1e-7a3b",
        b"",
    );
    check(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "evt.with.dots",
        "héllo wörld".as_bytes(),
    );
}

#[test]
fn header_names_are_the_official_ones() {
    assert_eq!(HEADER_WEBHOOK_ID, standardwebhooks::HEADER_WEBHOOK_ID);
    assert_eq!(
        HEADER_WEBHOOK_TIMESTAMP,
        standardwebhooks::HEADER_WEBHOOK_TIMESTAMP
    );
    assert_eq!(
        HEADER_WEBHOOK_SIGNATURE,
        standardwebhooks::HEADER_WEBHOOK_SIGNATURE
    );
}

proptest! {
    #[test]
    fn signatures_agree_with_the_official_library(
        key in proptest::collection::vec(any::<u8>(), 1..64),
        msg_id in "[!-~]{1,48}",
        body in ".{0,200}",
    ) {
        let secret = SigningSecret::parse(&format!("whsec_{}", STANDARD.encode(&key))).unwrap();
        let timestamp_s = now_s();
        let official = official_webhook(&secret);
        prop_assert_eq!(
            official.sign(&msg_id, timestamp_s, body.as_bytes()).unwrap(),
            standard_signature(&secret, &msg_id, timestamp_s, body.as_bytes())
        );
        let signed_headers = SignedHeaders::new(&[&secret], &msg_id, timestamp_s, body.as_bytes(), NativeSignature::None).unwrap();
        prop_assert!(official.verify(body.as_bytes(), &header_map(&signed_headers)).is_ok());
    }
}
