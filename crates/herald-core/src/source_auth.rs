//! Sources: the pure rules behind `/v1/ingest/{source_id}`, where vendors push their events to
//! Herald their own way. Checking each vendor's authentication over the raw body, splitting a
//! OneWelcome body into its events, reading a WebSub intent verification, and writing Authgear's
//! answer to a blocking hook. No I/O: the API layer hands in headers and bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::hooks::{JWT_MUTABLE_EVENT_TYPE, USER_MUTABLE_EVENT_TYPES};
use crate::secret::{SigningSecret, constant_time_eq};
use crate::signing::{NativeSignature, VerifyError, verify_native};

/// A new secret for a source: 32 random bytes in lowercase hex. Plain ASCII with no prefix, so
/// every vendor console takes it and uses exactly these bytes as its key (see
/// [`SigningSecret::parse_plain`]).
pub fn generate_source_secret() -> String {
    let mut key = [0_u8; crate::secret::GENERATED_KEY_LEN];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    hex::encode(key)
}

/// Authgear's signature header: the lowercase hex HMAC-SHA256 of the raw body.
pub const AUTHGEAR_SIGNATURE_HEADER: &str = "x-authgear-body-signature";
/// The WebSub hub's signature header (Asgardeo): `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const HUB_SIGNATURE_HEADER: &str = "x-hub-signature";
/// The header WSO2 Identity Server's direct HTTP event publisher signs with.
pub const WSO2_SIGNATURE_HEADER: &str = "x-wso2-event-signature";

/// Why a request to an ingest URL was not authenticated. Shown to the caller and kept in the
/// source's last errors, so it names what was wrong but never a secret or an expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestAuthError {
    #[error("the `{header}` header is missing")]
    Missing { header: &'static str },
    #[error("the `{header}` header is malformed: expected {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error("the `{header}` signature does not match the body")]
    SignatureMismatch { header: &'static str },
    #[error("the credentials do not match")]
    WrongCredentials,
}

fn from_verify_error(header: &'static str, error: VerifyError) -> IngestAuthError {
    match error {
        VerifyError::MalformedNativeSignature { expected, .. } => {
            IngestAuthError::Malformed { header, expected }
        }
        _ => IngestAuthError::SignatureMismatch { header },
    }
}

/// Authgear signs every webhook and blocking-hook request with `x-authgear-body-signature`,
/// the hex HMAC-SHA256 of the raw body under the secret configured in Authgear. The comparison
/// is the constant-time one deliveries are verified with.
pub fn verify_authgear(
    secret: &SigningSecret,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), IngestAuthError> {
    let header = AUTHGEAR_SIGNATURE_HEADER;
    let signature = signature.ok_or(IngestAuthError::Missing { header })?;
    verify_native(NativeSignature::AuthgearBodyHex, &[secret], signature, body)
        .map_err(|error| from_verify_error(header, error))
}

/// An Asgardeo (WebSub) delivery carries `X-Hub-Signature: sha256=<hex>`; WSO2 Identity Server's
/// direct HTTP publisher sends `x-wso2-event-signature` instead. The WSO2 format is not
/// documented in a place we could cite; WSO2's published samples strip a seven-character
/// `sha256=` prefix and compare the rest with the hex HMAC-SHA256 of the body, so that header is
/// accepted with or without the prefix. When both headers are present, `X-Hub-Signature` counts.
pub fn verify_hub(
    secret: &SigningSecret,
    hub_signature: Option<&str>,
    wso2_signature: Option<&str>,
    body: &[u8],
) -> Result<(), IngestAuthError> {
    if let Some(value) = hub_signature {
        let header = HUB_SIGNATURE_HEADER;
        return verify_native(NativeSignature::HubSignatureSha256, &[secret], value, body)
            .map_err(|error| from_verify_error(header, error));
    }
    let header = WSO2_SIGNATURE_HEADER;
    let Some(value) = wso2_signature else {
        return Err(IngestAuthError::Missing {
            header: HUB_SIGNATURE_HEADER,
        });
    };
    let value = value.trim();
    let hex_digest = value.strip_prefix("sha256=").unwrap_or(value);
    verify_native(
        NativeSignature::AuthgearBodyHex,
        &[secret],
        hex_digest,
        body,
    )
    .map_err(|error| from_verify_error(header, error))
}

/// How a OneWelcome event exporter authenticates: a configured header carrying a fixed value,
/// or HTTP basic credentials.
#[derive(Debug, Clone, Copy)]
pub enum ExporterCredentials<'a> {
    Header {
        name: &'a str,
        value: &'a str,
    },
    Basic {
        username: &'a str,
        password: &'a str,
    },
}

/// Checks what the exporter presented: for `Header`, the value of the configured header; for
/// `Basic`, the `Authorization` header. Both compared in constant time (the username and
/// password each, so neither can be found one byte at a time).
pub fn verify_exporter(
    expected: ExporterCredentials<'_>,
    presented: Option<&str>,
) -> Result<(), IngestAuthError> {
    match expected {
        ExporterCredentials::Header { value, .. } => {
            let presented = presented.ok_or(IngestAuthError::Missing {
                header: "configured credentials",
            })?;
            if constant_time_eq(presented.as_bytes(), value.as_bytes()) {
                Ok(())
            } else {
                Err(IngestAuthError::WrongCredentials)
            }
        }
        ExporterCredentials::Basic { username, password } => {
            let header = "authorization";
            let presented = presented.ok_or(IngestAuthError::Missing { header })?;
            let malformed = IngestAuthError::Malformed {
                header,
                expected: "`Basic` followed by base64 of `username:password`",
            };
            let (given_username, given_password) = basic_credentials(presented).ok_or(malformed)?;
            // Both are compared whatever the first gives, so timing tells nothing of which failed.
            let username_matches = constant_time_eq(given_username.as_bytes(), username.as_bytes());
            let password_matches = constant_time_eq(given_password.as_bytes(), password.as_bytes());
            if username_matches & password_matches {
                Ok(())
            } else {
                Err(IngestAuthError::WrongCredentials)
            }
        }
    }
}

/// The user-id and password of `Authorization: Basic <base64(user-id:password)>`. RFC 7617 §2:
/// the scheme is case-insensitive, the user-id cannot contain a colon, so the first colon splits.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// How a OneWelcome exporter body holds its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterBody<'a> {
    /// One JSON value (an event, or anything else the catalog will refuse with paths).
    Single(&'a [u8]),
    /// A JSON array of events.
    Array(&'a [u8]),
    /// JSON lines: each non-blank line one event, with its 1-based line number.
    Lines(Vec<(usize, &'a [u8])>),
}

/// Tells the three shapes apart without parsing: a body starting with `[` is an array; a body of
/// several non-blank lines each of which is a whole object (`{` ... `}`) is JSON lines; anything
/// else is one document (a pretty-printed object spans lines, but they are not each an object).
pub fn split_exporter_body(body: &[u8]) -> ExporterBody<'_> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[") {
        return ExporterBody::Array(body);
    }
    let lines: Vec<(usize, &[u8])> = body
        .split(|byte| *byte == b'\n')
        .enumerate()
        .map(|(line_idx, line)| (line_idx + 1, line.trim_ascii()))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    let all_objects = lines
        .iter()
        .all(|(_, line)| line.starts_with(b"{") && line.ends_with(b"}"));
    if lines.len() > 1 && all_objects {
        ExporterBody::Lines(lines)
    } else {
        ExporterBody::Single(body)
    }
}

/// `hub.mode` of a WebSub intent verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSubMode {
    Subscribe,
    Unsubscribe,
}

/// A hub's intent verification request (W3C WebSub §5.3), already percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentVerification {
    pub mode: WebSubMode,
    pub topic: String,
    pub challenge: String,
    /// Present on subscribe: how long the hub keeps the subscription, in seconds.
    pub lease_seconds: Option<u64>,
}

/// Why a GET to an ingest URL is not an intent verification we can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSubError {
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`hub.mode` must be `subscribe` or `unsubscribe`")]
    UnknownMode,
    #[error("`hub.lease_seconds` must be a whole number of seconds")]
    InvalidLease,
}

/// Reads the query parameters of an intent verification. W3C WebSub §5.3 ("Hub Verifies Intent
/// of the Subscriber"): the hub sends `hub.mode`, `hub.topic`, `hub.challenge` and, for
/// subscriptions, `hub.lease_seconds`; the subscriber MUST confirm that the topic is one it wants
/// and then answer 2xx with the challenge as the body, or 404 when it does not agree.
pub fn parse_intent_verification(
    mode: Option<&str>,
    topic: Option<&str>,
    challenge: Option<&str>,
    lease_seconds: Option<&str>,
) -> Result<IntentVerification, WebSubError> {
    let mode = match mode.ok_or(WebSubError::Missing("hub.mode"))? {
        "subscribe" => WebSubMode::Subscribe,
        "unsubscribe" => WebSubMode::Unsubscribe,
        _ => return Err(WebSubError::UnknownMode),
    };
    let topic = topic
        .filter(|topic| !topic.is_empty())
        .ok_or(WebSubError::Missing("hub.topic"))?;
    let challenge = challenge
        .filter(|challenge| !challenge.is_empty())
        .ok_or(WebSubError::Missing("hub.challenge"))?;
    let lease_seconds = lease_seconds
        .map(|text| text.parse::<u64>().map_err(|_| WebSubError::InvalidLease))
        .transpose()?;
    Ok(IntentVerification {
        mode,
        topic: topic.to_owned(),
        challenge: challenge.to_owned(),
        lease_seconds,
    })
}

/// The members of `payload.user` Authgear lets a blocking hook change.
const USER_MUTABLE_MEMBERS: [&str; 4] = [
    "standard_attributes",
    "custom_attributes",
    "roles",
    "groups",
];

/// Authgear's answer to a blocking hook call after Herald's chain allowed it: `{"is_allowed":
/// true}` plus, when the chain changed any mutable member, `"mutations"` holding exactly those
/// members with their final values (Authgear replaces each member whole, as the chain did).
pub fn authgear_allow_answer(event_type: &str, original: &Value, final_payload: &Value) -> Value {
    let mut answer = Map::new();
    answer.insert("is_allowed".to_owned(), Value::Bool(true));
    let (container, members): (&str, &[&str]) = if USER_MUTABLE_EVENT_TYPES.contains(&event_type) {
        ("user", &USER_MUTABLE_MEMBERS)
    } else if event_type == JWT_MUTABLE_EVENT_TYPE {
        ("jwt", &["payload"])
    } else {
        return Value::Object(answer);
    };
    let mut changed = Map::new();
    for member in members {
        let before = original.get(container).and_then(|inner| inner.get(member));
        let after = final_payload
            .get(container)
            .and_then(|inner| inner.get(member));
        if let Some(after) = after
            && before != Some(after)
        {
            changed.insert((*member).to_owned(), after.clone());
        }
    }
    if !changed.is_empty() {
        let mut mutations = Map::new();
        mutations.insert(container.to_owned(), Value::Object(changed));
        answer.insert("mutations".to_owned(), Value::Object(mutations));
    }
    Value::Object(answer)
}

/// Authgear's answer to a refused blocking call: `{"is_allowed": false}` with the refusing
/// hook's `title` and `reason` when it gave them.
pub fn authgear_deny_answer(title: Option<&str>, reason: Option<&str>) -> Value {
    let mut answer = Map::new();
    answer.insert("is_allowed".to_owned(), Value::Bool(false));
    if let Some(title) = title {
        answer.insert("title".to_owned(), Value::String(title.to_owned()));
    }
    if let Some(reason) = reason {
        answer.insert("reason".to_owned(), Value::String(reason.to_owned()));
    }
    Value::Object(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BODY: &[u8] = br#"{"id":"e1","type":"user.created"}"#;

    fn secret() -> SigningSecret {
        SigningSecret::parse("authgear-plain-secret").unwrap()
    }

    fn sign_hex(body: &[u8]) -> String {
        NativeSignature::AuthgearBodyHex
            .sign(&secret(), body)
            .unwrap()
    }

    #[test]
    fn source_secrets_are_plain_and_fresh() {
        let first = generate_source_secret();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(first, generate_source_secret());
        // A source's secret is the vendor's bytes, even when it looks like a Standard Webhooks one.
        let plain = SigningSecret::parse_plain("whsec_aGVsbG8=").unwrap();
        assert_eq!(plain.key_bytes(), b"whsec_aGVsbG8=");
        assert!(SigningSecret::parse_plain("").is_err());
    }

    #[test]
    fn authgear_signatures() {
        let good = sign_hex(BODY);
        let check = |header: Option<&str>, expected: Result<(), IngestAuthError>| {
            assert_eq!(
                verify_authgear(&secret(), header, BODY),
                expected,
                "{header:?}"
            );
        };
        let header = AUTHGEAR_SIGNATURE_HEADER;
        check(Some(&good), Ok(()));
        check(Some(&good.to_uppercase()), Ok(()));
        check(None, Err(IngestAuthError::Missing { header }));
        check(
            Some(&sign_hex(b"another body")),
            Err(IngestAuthError::SignatureMismatch { header }),
        );
        check(
            Some("not hex"),
            Err(IngestAuthError::Malformed {
                header,
                expected: "64 hex digits",
            }),
        );
    }

    #[test]
    fn hub_and_wso2_signatures() {
        let hex = sign_hex(BODY);
        let prefixed = format!("sha256={hex}");
        let wrong = format!("sha256={}", sign_hex(b"x"));
        let check =
            |hub: Option<&str>, wso2: Option<&str>, expected: Result<(), IngestAuthError>| {
                assert_eq!(
                    verify_hub(&secret(), hub, wso2, BODY),
                    expected,
                    "{hub:?} {wso2:?}"
                );
            };
        check(Some(&prefixed), None, Ok(()));
        check(None, Some(&prefixed), Ok(()));
        check(None, Some(&hex), Ok(()));
        check(
            Some(&wrong),
            Some(&prefixed),
            Err(IngestAuthError::SignatureMismatch {
                header: HUB_SIGNATURE_HEADER,
            }),
        );
        check(
            Some(&hex),
            None,
            Err(IngestAuthError::Malformed {
                header: HUB_SIGNATURE_HEADER,
                expected: "`sha256=` followed by 64 hex digits",
            }),
        );
        check(
            None,
            Some(&wrong),
            Err(IngestAuthError::SignatureMismatch {
                header: WSO2_SIGNATURE_HEADER,
            }),
        );
        check(
            None,
            None,
            Err(IngestAuthError::Missing {
                header: HUB_SIGNATURE_HEADER,
            }),
        );
    }

    #[test]
    fn exporter_credentials() {
        let header = ExporterCredentials::Header {
            name: "x-exporter-token",
            value: "s3cret",
        };
        let basic = ExporterCredentials::Basic {
            username: "exporter",
            password: "pa:ss",
        };
        let encoded = |text: &str| format!("Basic {}", STANDARD.encode(text));
        let cases: Vec<(ExporterCredentials<'_>, Option<String>, bool)> = vec![
            (header, Some("s3cret".to_owned()), true),
            (header, Some("s3cre".to_owned()), false),
            (header, None, false),
            (basic, Some(encoded("exporter:pa:ss")), true),
            (
                basic,
                Some(encoded("exporter:pa:ss").replace("Basic", "basic")),
                true,
            ),
            (basic, Some(encoded("exporter:wrong")), false),
            (basic, Some(encoded("someone:pa:ss")), false),
            (basic, Some("Bearer abc".to_owned()), false),
            (basic, Some("Basic !!!".to_owned()), false),
            (basic, None, false),
        ];
        for (expected, presented, accepted) in cases {
            let outcome = verify_exporter(expected, presented.as_deref());
            assert_eq!(outcome.is_ok(), accepted, "{presented:?}: {outcome:?}");
        }
    }

    #[test]
    fn exporter_bodies() {
        let check = |body: &[u8], expected: ExporterBody<'_>| {
            assert_eq!(
                split_exporter_body(body),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        };
        check(b"{\"a\":1}", ExporterBody::Single(b"{\"a\":1}"));
        check(b" [ {\"a\":1} ]", ExporterBody::Array(b" [ {\"a\":1} ]"));
        let pretty = b"{\n  \"a\": {\n    \"b\": 1\n  }\n}\n";
        check(pretty, ExporterBody::Single(pretty));
        check(
            b"{\"a\":1}\n\n{\"a\":2}\r\n",
            ExporterBody::Lines(vec![(1, b"{\"a\":1}"), (3, b"{\"a\":2}")]),
        );
        check(b"{\"a\":1}\n", ExporterBody::Single(b"{\"a\":1}\n"));
        check(b"", ExporterBody::Single(b""));
    }

    #[test]
    fn intent_verifications() {
        let check = |query: [Option<&str>; 4],
                     expected: Result<IntentVerification, WebSubError>| {
            let [mode, topic, challenge, lease] = query;
            assert_eq!(
                parse_intent_verification(mode, topic, challenge, lease),
                expected,
                "{query:?}"
            );
        };
        check(
            [Some("subscribe"), Some("t"), Some("c"), Some("864000")],
            Ok(IntentVerification {
                mode: WebSubMode::Subscribe,
                topic: "t".to_owned(),
                challenge: "c".to_owned(),
                lease_seconds: Some(864_000),
            }),
        );
        check(
            [Some("unsubscribe"), Some("t"), Some("c"), None],
            Ok(IntentVerification {
                mode: WebSubMode::Unsubscribe,
                topic: "t".to_owned(),
                challenge: "c".to_owned(),
                lease_seconds: None,
            }),
        );
        check(
            [None, Some("t"), Some("c"), None],
            Err(WebSubError::Missing("hub.mode")),
        );
        check(
            [Some("denied"), Some("t"), Some("c"), None],
            Err(WebSubError::UnknownMode),
        );
        check(
            [Some("subscribe"), Some(""), Some("c"), None],
            Err(WebSubError::Missing("hub.topic")),
        );
        check(
            [Some("subscribe"), Some("t"), None, None],
            Err(WebSubError::Missing("hub.challenge")),
        );
        check(
            [Some("subscribe"), Some("t"), Some("c"), Some("-1")],
            Err(WebSubError::InvalidLease),
        );
    }

    #[test]
    fn authgear_answers() {
        let original = json!({"user": {"id": "u1", "standard_attributes": {"email": "a@b"},
            "custom_attributes": {}, "roles": [], "groups": ["g"]}});
        let check = |event_type: &str, original: &Value, final_payload: &Value, expected: Value| {
            assert_eq!(
                authgear_allow_answer(event_type, original, final_payload),
                expected,
                "{event_type}"
            );
        };
        check(
            "user.pre_create",
            &original,
            &original,
            json!({"is_allowed": true}),
        );
        let mut mutated = original.clone();
        mutated["user"]["roles"] = json!(["admin"]);
        mutated["user"]["custom_attributes"] = json!({"tier": "gold"});
        check(
            "user.pre_create",
            &original,
            &mutated,
            json!({"is_allowed": true, "mutations": {"user": {
                "custom_attributes": {"tier": "gold"}, "roles": ["admin"]}}}),
        );
        // Only mutable members are reported, whatever else differs.
        let mut other = original.clone();
        other["user"]["id"] = json!("u2");
        check(
            "user.profile.pre_update",
            &original,
            &other,
            json!({"is_allowed": true}),
        );
        let jwt = json!({"jwt": {"payload": {"sub": "u1"}}});
        let jwt_mutated = json!({"jwt": {"payload": {"sub": "u1", "tier": "gold"}}});
        check(
            "oidc.jwt.pre_create",
            &jwt,
            &jwt_mutated,
            json!({"is_allowed": true, "mutations": {"jwt": {"payload": {"sub": "u1", "tier": "gold"}}}}),
        );
        check(
            "user.created",
            &original,
            &mutated,
            json!({"is_allowed": true}),
        );
        assert_eq!(
            authgear_deny_answer(Some("Blocked"), Some("no thanks")),
            json!({"is_allowed": false, "title": "Blocked", "reason": "no thanks"})
        );
        assert_eq!(
            authgear_deny_answer(None, None),
            json!({"is_allowed": false})
        );
    }
}
