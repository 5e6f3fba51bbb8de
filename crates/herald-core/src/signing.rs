//! Signing and verifying deliveries: Standard Webhooks headers and the vendors' native ones.
//!
//! Every delivery and every blocking-hook request carries the three Standard Webhooks headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), plus the header of its taxonomy's
//! vendor, if that vendor has one. The same key signs both.
//!
//! Verification is here too, for `herald verify` and for receivers in tests. Every header value
//! it reads is untrusted input: parsing never panics and each refusal says precisely why.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use time::OffsetDateTime;

use crate::asymmetric::Ed25519SigningKey;
use crate::secret::{SigningSecret, constant_time_eq};

/// Header carrying the message id, the same on every retry.
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the unix time in seconds of this attempt.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// How far a `webhook-timestamp` may be from the verifier's clock, either way, by default. The
/// Standard Webhooks libraries use the same five minutes.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The version tag of a symmetric (HMAC-SHA256) Standard Webhooks signature.
const STANDARD_SIGNATURE_VERSION: &str = "v1";

/// The prefix of the value of the `X-Hub-Signature` header.
const HUB_SIGNATURE_PREFIX: &str = "sha256=";

/// Why headers could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("there is no signing secret to sign with")]
    NoSecrets,
    #[error(
        "the message id must be non-empty visible ASCII without spaces to fit in a `webhook-id` header"
    )]
    InvalidMessageId,
    #[error("the endpoint signs `v1a` but the tenant has no Ed25519 signing key")]
    NoAsymmetricKey,
}

/// Which Standard Webhooks signatures an endpoint's `webhook-signature` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureScheme {
    /// HMAC-SHA256 with the endpoint's secret(s): `v1,...` (the default).
    #[default]
    V1,
    /// Ed25519 with the tenant's key(s): `v1a,...`; consumers verify with the `whpk_` public key.
    V1a,
    /// Both, space-separated, for consumers moving from `v1` to `v1a`: each verifies the version
    /// it knows and skips the other, as the Standard Webhooks libraries do.
    V1aAndV1,
}

impl SignatureScheme {
    /// The name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1a => "v1a",
            Self::V1aAndV1 => "v1a+v1",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "v1" => Some(Self::V1),
            "v1a" => Some(Self::V1a),
            "v1a+v1" => Some(Self::V1aAndV1),
            _ => None,
        }
    }

    /// Whether the scheme needs the tenant's Ed25519 key.
    pub fn signs_v1a(self) -> bool {
        matches!(self, Self::V1a | Self::V1aAndV1)
    }

    fn signs_v1(self) -> bool {
        matches!(self, Self::V1 | Self::V1aAndV1)
    }
}

/// Why a received delivery was not accepted as authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("there is no secret to verify with")]
    NoSecrets,
    #[error("the `webhook-id` header is empty")]
    EmptyMessageId,
    #[error("the `webhook-timestamp` header is not a whole number of seconds since 1970")]
    MalformedTimestamp,
    #[error(
        "the `webhook-timestamp` {timestamp_s} is {age_s} s older than now, more than the {tolerance_s} s allowed"
    )]
    TimestampTooOld {
        timestamp_s: i64,
        age_s: i128,
        tolerance_s: u64,
    },
    #[error(
        "the `webhook-timestamp` {timestamp_s} is {ahead_s} s in the future, more than the {tolerance_s} s allowed"
    )]
    TimestampInFuture {
        timestamp_s: i64,
        ahead_s: i128,
        tolerance_s: u64,
    },
    #[error("the `webhook-signature` header is empty")]
    EmptySignatureHeader,
    #[error(
        "signature number {position} in `webhook-signature` is not of the form `<version>,<signature>`"
    )]
    MalformedSignatureEntry { position: usize },
    #[error("the `webhook-signature` header has no `v1,` signature")]
    NoSupportedSignature,
    #[error("this endpoint's format has no native signature header to verify")]
    NoNativeSignature,
    #[error("the `{header}` header is malformed: expected {expected}")]
    MalformedNativeSignature {
        header: &'static str,
        expected: &'static str,
    },
    #[error("no signature matches the body with any of the given secrets")]
    SignatureMismatch,
}

/// The Standard Webhooks signature `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn standard_signature(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> String {
    let digest = standard_signature_digest(secret, msg_id, timestamp_s, body);
    format!("{STANDARD_SIGNATURE_VERSION},{}", STANDARD.encode(digest))
}

/// The `webhook-signature` header value: one signature per secret, space-separated. During a
/// secret rotation an endpoint has two secrets and both sign, so receivers configured with either
/// the old or the new one accept the delivery.
pub fn standard_signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    if secrets.is_empty() {
        return Err(SigningError::NoSecrets);
    }
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| standard_signature(secret, msg_id, timestamp_s, body))
        .collect();
    Ok(signatures.join(" "))
}

fn standard_signature_digest(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> [u8; 32] {
    // Fed piece by piece: the signed content is `{id}.{timestamp}.{body}`, and copying a large
    // body into one string first would only cost memory.
    let mut mac = secret.keyed_mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn body_digest(secret: &SigningSecret, body: &[u8]) -> [u8; 32] {
    let mut mac = secret.keyed_mac();
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The vendor-specific signature header a taxonomy's consumers expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeSignature {
    /// Authgear: `x-authgear-body-signature: <lowercase hex HMAC-SHA256 of the raw body>`.
    AuthgearBodyHex,
    /// Asgardeo (WSO2): `X-Hub-Signature: sha256=<lowercase hex HMAC-SHA256 of the raw body>`.
    HubSignatureSha256,
    /// No native header (OneWelcome, and formats without a vendor).
    None,
}

impl NativeSignature {
    /// The header's name, in lowercase. HTTP field names are case-insensitive, the `http` crate
    /// stores them in lowercase and HTTP/2 requires it, so `X-Hub-Signature` goes on the wire as
    /// `x-hub-signature` whatever we write here.
    pub fn header_name(self) -> Option<&'static str> {
        match self {
            Self::AuthgearBodyHex => Some("x-authgear-body-signature"),
            Self::HubSignatureSha256 => Some("x-hub-signature"),
            Self::None => None,
        }
    }

    /// The header's value for `body` signed with `secret`, or `None` for [`NativeSignature::None`].
    pub fn sign(self, secret: &SigningSecret, body: &[u8]) -> Option<String> {
        match self {
            Self::AuthgearBodyHex => Some(hex::encode(body_digest(secret, body))),
            Self::HubSignatureSha256 => Some(format!(
                "{HUB_SIGNATURE_PREFIX}{}",
                hex::encode(body_digest(secret, body))
            )),
            Self::None => None,
        }
    }
}

/// All signature headers of one HTTP request, in the order they are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pairs: Vec<(&'static str, String)>,
}

impl SignedHeaders {
    /// Signs one attempt. `secrets` are newest first: all of them sign `webhook-signature`, and
    /// the newest alone signs the native header, which has room for only one signature.
    pub fn new(
        secrets: &[&SigningSecret],
        msg_id: &str,
        timestamp_s: i64,
        body: &[u8],
        native: NativeSignature,
    ) -> Result<Self, SigningError> {
        Self::with_scheme(
            SignatureScheme::V1,
            secrets,
            &[],
            msg_id,
            timestamp_s,
            body,
            native,
        )
    }

    /// Signs one attempt with `scheme`. `ed25519_keys` are the tenant's live Ed25519 keys, newest
    /// first: during a rotation every one of them signs, so a consumer that trusts either the old
    /// or the new `whpk_` key accepts the delivery (the spec's zero-downtime rotation). The native
    /// header, if any, is always the HMAC of the newest secret: it is the vendor's contract.
    pub fn with_scheme(
        scheme: SignatureScheme,
        secrets: &[&SigningSecret],
        ed25519_keys: &[&Ed25519SigningKey],
        msg_id: &str,
        timestamp_s: i64,
        body: &[u8],
        native: NativeSignature,
    ) -> Result<Self, SigningError> {
        let Some(newest_secret) = secrets.first() else {
            return Err(SigningError::NoSecrets);
        };
        // The id travels as a header value, so refuse what could not be sent or would be read
        // back differently (spaces and control characters).
        if msg_id.is_empty() || !msg_id.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(SigningError::InvalidMessageId);
        }
        if scheme.signs_v1a() && ed25519_keys.is_empty() {
            return Err(SigningError::NoAsymmetricKey);
        }
        let mut signatures = Vec::with_capacity(secrets.len() + ed25519_keys.len());
        if scheme.signs_v1() {
            signatures.push(standard_signature_header(
                secrets,
                msg_id,
                timestamp_s,
                body,
            )?);
        }
        if scheme.signs_v1a() {
            signatures.extend(
                ed25519_keys
                    .iter()
                    .map(|key| key.standard_signature(msg_id, timestamp_s, body)),
            );
        }
        let mut pairs = vec![
            (HEADER_WEBHOOK_ID, msg_id.to_owned()),
            (HEADER_WEBHOOK_TIMESTAMP, timestamp_s.to_string()),
            (HEADER_WEBHOOK_SIGNATURE, signatures.join(" ")),
        ];
        if let (Some(name), Some(value)) = (native.header_name(), native.sign(newest_secret, body))
        {
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// The (lowercase header name, value) pairs.
    pub fn pairs(&self) -> &[(&'static str, String)] {
        &self.pairs
    }

    /// The pairs, owned.
    pub fn into_pairs(self) -> Vec<(&'static str, String)> {
        self.pairs
    }

    /// The value of header `name` (matched case-insensitively), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(pair_name, _)| pair_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The three Standard Webhooks header values of a received request, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedStandardHeaders<'a> {
    pub webhook_id: &'a str,
    pub webhook_timestamp: &'a str,
    pub webhook_signature: &'a str,
}

/// Checks a received request's Standard Webhooks headers against `secrets` (any may match).
///
/// Accepts when the timestamp is within `tolerance` of `now` and any space-separated `v1,`
/// signature matches, compared in constant time. Entries of other versions (such as the
/// asymmetric `v1a`) are skipped, as the official libraries do. Surrounding whitespace of each
/// header value is ignored, as HTTP parsers strip it anyway.
pub fn verify_standard(
    secrets: &[&SigningSecret],
    headers: &ReceivedStandardHeaders<'_>,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let msg_id = headers.webhook_id.trim();
    if msg_id.is_empty() {
        return Err(VerifyError::EmptyMessageId);
    }
    let timestamp_s = parse_timestamp(headers.webhook_timestamp.trim())?;
    let candidates = parse_signature_header(headers.webhook_signature.trim())?;
    check_timestamp(timestamp_s, now, tolerance)?;

    let expected_signatures: Vec<String> = secrets
        .iter()
        .map(|secret| STANDARD.encode(standard_signature_digest(secret, msg_id, timestamp_s, body)))
        .collect();
    // Compare every candidate with every expected signature without stopping early, so the time
    // taken does not tell an attacker which one came close.
    let mut any_match = false;
    for candidate in &candidates {
        for expected in &expected_signatures {
            any_match |= constant_time_eq(candidate.as_bytes(), expected.as_bytes());
        }
    }
    if any_match {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Checks a native signature header value (see [`NativeSignature`]) against `secrets`.
/// Hex digits are accepted in either case; surrounding whitespace is ignored.
pub fn verify_native(
    kind: NativeSignature,
    secrets: &[&SigningSecret],
    header_value: &str,
    body: &[u8],
) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let Some(header) = kind.header_name() else {
        return Err(VerifyError::NoNativeSignature);
    };
    let header_value = header_value.trim();
    let hex_digest = match kind {
        NativeSignature::HubSignatureSha256 => header_value
            .strip_prefix(HUB_SIGNATURE_PREFIX)
            .ok_or(VerifyError::MalformedNativeSignature {
                header,
                expected: "`sha256=` followed by 64 hex digits",
            })?,
        NativeSignature::AuthgearBodyHex | NativeSignature::None => header_value,
    };
    let mut received_digest = [0_u8; 32];
    if hex::decode_to_slice(hex_digest, &mut received_digest).is_err() {
        return Err(VerifyError::MalformedNativeSignature {
            header,
            expected: "64 hex digits",
        });
    }
    let mut any_match = false;
    for secret in secrets {
        any_match |= constant_time_eq(&body_digest(secret, body), &received_digest);
    }
    if any_match {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Reads `webhook-timestamp`: ASCII digits only. A sign, spaces inside or a fraction are refused
/// rather than guessed at.
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse::<i64>()
        .map_err(|_| VerifyError::MalformedTimestamp)
}

/// Splits `webhook-signature` into its `v1` signatures. Malformed entries are reported only when
/// nothing usable is left, so the header must still contain a `v1` signature to pass.
fn parse_signature_header(text: &str) -> Result<Vec<&str>, VerifyError> {
    if text.is_empty() {
        return Err(VerifyError::EmptySignatureHeader);
    }
    let mut v1_signatures = Vec::new();
    let mut first_malformed_position = None;
    // Split on any run of spaces: a doubled space is harmless and not worth a refusal.
    for (entry_idx, entry) in text
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .enumerate()
    {
        match entry.split_once(',') {
            Some((STANDARD_SIGNATURE_VERSION, signature)) => v1_signatures.push(signature),
            Some((version, _)) if !version.is_empty() => {}
            _ => {
                first_malformed_position.get_or_insert(entry_idx + 1);
            }
        }
    }
    match (v1_signatures.is_empty(), first_malformed_position) {
        (false, _) => Ok(v1_signatures),
        (true, Some(position)) => Err(VerifyError::MalformedSignatureEntry { position }),
        (true, None) => Err(VerifyError::NoSupportedSignature),
    }
}

pub(crate) fn check_timestamp(
    timestamp_s: i64,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    // i128 so that no pair of i64 values can overflow the subtraction.
    let offset_s = i128::from(now.unix_timestamp()) - i128::from(timestamp_s);
    let tolerance_s = tolerance.as_secs();
    if offset_s > i128::from(tolerance_s) {
        Err(VerifyError::TimestampTooOld {
            timestamp_s,
            age_s: offset_s,
            tolerance_s,
        })
    } else if -offset_s > i128::from(tolerance_s) {
        Err(VerifyError::TimestampInFuture {
            timestamp_s,
            ahead_s: -offset_s,
            tolerance_s,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);
    const BODY: &[u8] = br#"{"id":"0190f2a4","type":"user.created"}"#;

    fn secret(text: &str) -> SigningSecret {
        SigningSecret::parse(text).unwrap()
    }

    // RFC 4231 test cases 2 (a short key) and 6 (a key longer than the SHA-256 block, which HMAC
    // hashes first): public vectors that pin the native hex form.
    #[test]
    fn native_signatures_match_published_hmac_vectors() {
        fn check(kind: NativeSignature, key: &SigningSecret, body: &[u8], expected: Option<&str>) {
            assert_eq!(kind.sign(key, body).as_deref(), expected, "{kind:?}");
        }
        let jefe = secret("Jefe");
        let long_key = secret(&format!("whsec_{}", STANDARD.encode([0xaa_u8; 131])));
        let rfc_case_2 = b"what do ya want for nothing?";
        let rfc_case_6 = b"Test Using Larger Than Block-Size Key - Hash Key First";
        check(
            NativeSignature::AuthgearBodyHex,
            &jefe,
            rfc_case_2,
            Some("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        );
        check(
            NativeSignature::HubSignatureSha256,
            &jefe,
            rfc_case_2,
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &long_key,
            rfc_case_6,
            Some("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        );
        check(NativeSignature::None, &jefe, rfc_case_2, None);
    }

    #[test]
    fn signed_headers_carry_every_signature() {
        fn check(
            secrets: &[&SigningSecret],
            msg_id: &str,
            native: NativeSignature,
            expected: Result<Vec<(&str, String)>, SigningError>,
        ) {
            let got = SignedHeaders::new(secrets, msg_id, 1_700_000_000, BODY, native)
                .map(SignedHeaders::into_pairs);
            assert_eq!(got, expected, "{native:?} {msg_id:?}");
        }
        let newest = secret("whsec_bmV3ZXN0LXNlY3JldA==");
        let older = secret("older-plain-secret");
        let standard_of =
            |key: &SigningSecret| standard_signature(key, "evt_1", 1_700_000_000, BODY);

        check(
            &[&newest],
            "evt_1",
            NativeSignature::None,
            Ok(vec![
                ("webhook-id", "evt_1".to_owned()),
                ("webhook-timestamp", "1700000000".to_owned()),
                ("webhook-signature", standard_of(&newest)),
            ]),
        );
        check(
            &[&newest, &older],
            "evt_1",
            NativeSignature::AuthgearBodyHex,
            Ok(vec![
                ("webhook-id", "evt_1".to_owned()),
                ("webhook-timestamp", "1700000000".to_owned()),
                (
                    "webhook-signature",
                    format!("{} {}", standard_of(&newest), standard_of(&older)),
                ),
                (
                    "x-authgear-body-signature",
                    hex::encode(body_digest(&newest, BODY)),
                ),
            ]),
        );
        check(
            &[&older],
            "evt_1",
            NativeSignature::HubSignatureSha256,
            Ok(vec![
                ("webhook-id", "evt_1".to_owned()),
                ("webhook-timestamp", "1700000000".to_owned()),
                ("webhook-signature", standard_of(&older)),
                (
                    "x-hub-signature",
                    format!("sha256={}", hex::encode(body_digest(&older, BODY))),
                ),
            ]),
        );
        check(
            &[],
            "evt_1",
            NativeSignature::None,
            Err(SigningError::NoSecrets),
        );
        check(
            &[&newest],
            "",
            NativeSignature::None,
            Err(SigningError::InvalidMessageId),
        );
        check(
            &[&newest],
            "evt 1",
            NativeSignature::None,
            Err(SigningError::InvalidMessageId),
        );
        check(
            &[&newest],
            "evt\n1",
            NativeSignature::None,
            Err(SigningError::InvalidMessageId),
        );
    }

    #[test]
    fn signed_headers_lookup_ignores_case() {
        let key = secret("k");
        let headers =
            SignedHeaders::new(&[&key], "m", 5, b"", NativeSignature::HubSignatureSha256).unwrap();
        assert_eq!(headers.get("Webhook-Id"), Some("m"));
        assert_eq!(
            headers.get("X-Hub-Signature"),
            Some(headers.pairs()[3].1.as_str())
        );
        assert_eq!(headers.get("x-authgear-body-signature"), None);
    }

    /// A received request in the verification table. [`Received::signed_now`] is a correct one;
    /// each case spoils one part of it.
    struct Received {
        secrets: Vec<SigningSecret>,
        webhook_id: String,
        webhook_timestamp: String,
        webhook_signature: String,
        body: Vec<u8>,
    }

    const CURRENT_SECRET: &str = "whsec_Y3VycmVudC1rZXk=";
    const RETIRED_SECRET: &str = "whsec_cmV0aXJlZC1rZXk=";

    impl Received {
        fn signed_now() -> Self {
            Self::signed_at(CURRENT_SECRET, NOW.unix_timestamp())
        }

        fn signed_at(secret_text: &str, timestamp_s: i64) -> Self {
            Self {
                secrets: vec![secret(CURRENT_SECRET)],
                webhook_id: "msg_1".to_owned(),
                webhook_timestamp: timestamp_s.to_string(),
                webhook_signature: standard_signature(
                    &secret(secret_text),
                    "msg_1",
                    timestamp_s,
                    BODY,
                ),
                body: BODY.to_vec(),
            }
        }
    }

    fn check_standard(received: Received, expected: Result<(), VerifyError>) {
        let headers = ReceivedStandardHeaders {
            webhook_id: &received.webhook_id,
            webhook_timestamp: &received.webhook_timestamp,
            webhook_signature: &received.webhook_signature,
        };
        let secrets: Vec<&SigningSecret> = received.secrets.iter().collect();
        let got = verify_standard(
            &secrets,
            &headers,
            &received.body,
            NOW,
            DEFAULT_TIMESTAMP_TOLERANCE,
        );
        assert_eq!(got, expected, "{headers:?}");
    }

    /// A correct request changed by `spoil`.
    fn spoiled(spoil: impl FnOnce(&mut Received)) -> Received {
        let mut received = Received::signed_now();
        spoil(&mut received);
        received
    }

    #[test]
    fn standard_verification_accepts_only_what_was_signed() {
        let now_s = NOW.unix_timestamp();
        let retired_signature = Received::signed_at(RETIRED_SECRET, now_s).webhook_signature;
        let mismatch = Err(VerifyError::SignatureMismatch);

        check_standard(Received::signed_now(), Ok(()));
        // Rotation: several signatures, several secrets, any match will do.
        check_standard(
            spoiled(|r| {
                r.webhook_signature = format!("{retired_signature} {}", r.webhook_signature)
            }),
            Ok(()),
        );
        check_standard(
            Received {
                secrets: vec![secret("someone-else"), secret(RETIRED_SECRET)],
                ..Received::signed_at(RETIRED_SECRET, now_s)
            },
            Ok(()),
        );
        // Unknown versions, doubled spaces and surrounding whitespace are tolerated.
        check_standard(
            spoiled(|r| r.webhook_signature = format!("v1a,c29tZQ==  {} ", r.webhook_signature)),
            Ok(()),
        );
        check_standard(
            spoiled(|r| r.webhook_timestamp = format!(" {now_s} ")),
            Ok(()),
        );
        // Exactly at the tolerance edge, either way, is still accepted.
        check_standard(Received::signed_at(CURRENT_SECRET, now_s - 300), Ok(()));
        check_standard(Received::signed_at(CURRENT_SECRET, now_s + 300), Ok(()));

        check_standard(spoiled(|r| r.secrets.clear()), Err(VerifyError::NoSecrets));
        check_standard(
            spoiled(|r| r.secrets = vec![secret("someone-else")]),
            mismatch.clone(),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = retired_signature),
            mismatch.clone(),
        );
        check_standard(
            spoiled(|r| r.webhook_id = "msg_2".to_owned()),
            mismatch.clone(),
        );
        check_standard(spoiled(|r| r.body = b"{}".to_vec()), mismatch.clone());
        check_standard(
            spoiled(|r| r.webhook_timestamp = (now_s + 1).to_string()),
            mismatch.clone(),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = "v1,".to_owned()),
            mismatch.clone(),
        );
        // A truncated signature must not match a prefix of the real one.
        check_standard(spoiled(|r| r.webhook_signature.truncate(10)), mismatch);

        check_standard(
            spoiled(|r| r.webhook_id = " ".to_owned()),
            Err(VerifyError::EmptyMessageId),
        );
        for bad_timestamp in [
            "",
            "+1740830400",
            "-5",
            "1740830400.5",
            "1e9",
            "99999999999999999999",
        ] {
            check_standard(
                spoiled(|r| r.webhook_timestamp = bad_timestamp.to_owned()),
                Err(VerifyError::MalformedTimestamp),
            );
        }
        check_standard(
            Received::signed_at(CURRENT_SECRET, now_s - 301),
            Err(VerifyError::TimestampTooOld {
                timestamp_s: now_s - 301,
                age_s: 301,
                tolerance_s: 300,
            }),
        );
        check_standard(
            Received::signed_at(CURRENT_SECRET, now_s + 301),
            Err(VerifyError::TimestampInFuture {
                timestamp_s: now_s + 301,
                ahead_s: 301,
                tolerance_s: 300,
            }),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = "  ".to_owned()),
            Err(VerifyError::EmptySignatureHeader),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = "v1a,c29tZQ== garbage".to_owned()),
            Err(VerifyError::MalformedSignatureEntry { position: 2 }),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = ",abc".to_owned()),
            Err(VerifyError::MalformedSignatureEntry { position: 1 }),
        );
        check_standard(
            spoiled(|r| r.webhook_signature = "v1a,c29tZQ==".to_owned()),
            Err(VerifyError::NoSupportedSignature),
        );
    }

    #[test]
    fn native_verification_accepts_only_what_was_signed() {
        fn check(
            kind: NativeSignature,
            secrets: &[&SigningSecret],
            header_value: &str,
            body: &[u8],
            expected: Result<(), VerifyError>,
        ) {
            assert_eq!(
                verify_native(kind, secrets, header_value, body),
                expected,
                "{kind:?} {header_value:?}"
            );
        }
        let key = secret("Jefe");
        let other = secret("other");
        let body = b"what do ya want for nothing?";
        let hex_digest = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hub_value = format!("sha256={hex_digest}");
        let hub_malformed = Err(VerifyError::MalformedNativeSignature {
            header: "x-hub-signature",
            expected: "`sha256=` followed by 64 hex digits",
        });
        let authgear_malformed = Err(VerifyError::MalformedNativeSignature {
            header: "x-authgear-body-signature",
            expected: "64 hex digits",
        });

        check(
            NativeSignature::AuthgearBodyHex,
            &[&key],
            hex_digest,
            body,
            Ok(()),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&other, &key],
            &hex_digest.to_uppercase(),
            body,
            Ok(()),
        );
        check(
            NativeSignature::HubSignatureSha256,
            &[&key],
            &hub_value,
            body,
            Ok(()),
        );
        check(
            NativeSignature::HubSignatureSha256,
            &[&key],
            &format!(" {hub_value}\t"),
            body,
            Ok(()),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&other],
            hex_digest,
            body,
            Err(VerifyError::SignatureMismatch),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&key],
            hex_digest,
            b"tampered",
            Err(VerifyError::SignatureMismatch),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[],
            hex_digest,
            body,
            Err(VerifyError::NoSecrets),
        );
        check(
            NativeSignature::None,
            &[&key],
            hex_digest,
            body,
            Err(VerifyError::NoNativeSignature),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&key],
            &hub_value,
            body,
            authgear_malformed.clone(),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&key],
            &hex_digest[..62],
            body,
            authgear_malformed.clone(),
        );
        check(
            NativeSignature::AuthgearBodyHex,
            &[&key],
            "",
            body,
            authgear_malformed,
        );
        check(
            NativeSignature::HubSignatureSha256,
            &[&key],
            hex_digest,
            body,
            hub_malformed.clone(),
        );
        check(
            NativeSignature::HubSignatureSha256,
            &[&key],
            "sha1=abcd",
            body,
            hub_malformed,
        );
        check(
            NativeSignature::HubSignatureSha256,
            &[&key],
            "sha256=zz",
            body,
            Err(VerifyError::MalformedNativeSignature {
                header: "x-hub-signature",
                expected: "64 hex digits",
            }),
        );
    }

    proptest! {
        #[test]
        fn standard_signatures_verify_round_trip(
            key in proptest::collection::vec(any::<u8>(), 1..80),
            msg_id in "[!-~]{1,40}",
            offset_s in -300_i64..=300,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let key = secret(&format!("whsec_{}", STANDARD.encode(&key)));
            let timestamp_s = NOW.unix_timestamp() + offset_s;
            let headers = SignedHeaders::new(&[&key], &msg_id, timestamp_s, &body, NativeSignature::AuthgearBodyHex).unwrap();
            let received = ReceivedStandardHeaders {
                webhook_id: headers.get(HEADER_WEBHOOK_ID).unwrap(),
                webhook_timestamp: headers.get(HEADER_WEBHOOK_TIMESTAMP).unwrap(),
                webhook_signature: headers.get(HEADER_WEBHOOK_SIGNATURE).unwrap(),
            };
            prop_assert_eq!(verify_standard(&[&key], &received, &body, NOW, DEFAULT_TIMESTAMP_TOLERANCE), Ok(()));
            let native_value = headers.get("x-authgear-body-signature").unwrap();
            prop_assert_eq!(verify_native(NativeSignature::AuthgearBodyHex, &[&key], native_value, &body), Ok(()));
        }

        #[test]
        fn standard_verification_never_panics_on_untrusted_headers(
            webhook_id in ".{0,40}",
            webhook_timestamp in "[-+0-9 a-z.]{0,25}",
            webhook_signature in "[ ,v1a-zA-Z0-9+/=]{0,120}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            tolerance_s in any::<u64>(),
        ) {
            let key = secret("whsec_a2V5");
            let received = ReceivedStandardHeaders {
                webhook_id: &webhook_id,
                webhook_timestamp: &webhook_timestamp,
                webhook_signature: &webhook_signature,
            };
            let _ = verify_standard(&[&key], &received, &body, NOW, Duration::from_secs(tolerance_s));
        }

        #[test]
        fn native_verification_never_panics_on_untrusted_headers(header_value in ".{0,80}", hex_value in "(sha256=)?[0-9a-fA-F]{0,70}") {
            let key = secret("k");
            for kind in [NativeSignature::AuthgearBodyHex, NativeSignature::HubSignatureSha256, NativeSignature::None] {
                let _ = verify_native(kind, &[&key], &header_value, b"body");
                let _ = verify_native(kind, &[&key], &hex_value, b"body");
            }
        }
    }
}
