//! End-to-end tests of the hub over real HTTP: publish, deliver, sign, retry, order, operate.
//!
//! Every test runs a real server on port 0 with its own SQLite file and a manual clock. Delivery
//! is driven by hand (`app.deliver()` is one dispatcher step) and time moves only when a test
//! advances the clock, so nothing here waits for a background loop except the one test that is
//! about the background loop.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_catalog::catalog::Catalog;
use herald_catalog::taxonomy::Taxonomy;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{ADMIN_KEY, Received, Receiver, Reply, TestApp};

const ALICE: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";
const BOB: &str = "0b7e4a19-3c2d-4f58-8e61-9a0b1c2d3e4f";
const PROBLEM_BASE: &str = "https://herald.dev/problems/";

fn fixture_path(relative: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures")
        .join(relative)
}

fn seed(name: &str) -> Value {
    let path = fixture_path(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

/// Every seed envelope in a fixture directory: the `*.json` files other than the validation
/// cases and the seed that is malformed on purpose.
fn seed_envelopes(directory: &str) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_path(directory))
        .expect("fixture directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            name.ends_with(".json") && name != "cases.json" && !name.ends_with(".malformed.json")
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {directory}");
    paths
        .iter()
        .map(|path| {
            serde_json::from_str(&std::fs::read_to_string(path).expect("seed")).expect("JSON")
        })
        .collect()
}

/// A OneWelcome envelope for the catalog example of every OneWelcome type, with every metadata
/// member a producer sets, in the order Herald renders them.
fn onewelcome_envelopes() -> Vec<Value> {
    Catalog::builtin()
        .iter()
        .filter(|definition| definition.taxonomy() == Taxonomy::Onewelcome)
        .enumerate()
        .map(|(type_idx, definition)| {
            let event_id = format!("6a1f0c2e-0000-4000-8000-{type_idx:012}");
            json!({
                "metadata": {
                    "eventId": event_id,
                    "type": definition.name(),
                    "occurredTime": "2024-06-07T08:41:12.345Z",
                    "category": "public",
                    "aggregateId": event_id,
                    "producerId": "identity-service",
                    "producerInstanceId": "identity-service-7f3a9c",
                    "metadataVersion": "1.0",
                    "payloadVersion": "1.0"
                },
                "payload": definition.example().expect("every catalog type has an example")
            })
        })
        .collect()
}

/// The Asgardeo login seed with its own `jti`, so one test can publish it more than once.
fn asgardeo_login(jti: &str) -> Value {
    let mut event = seed("asgardeo/loginSuccess.json");
    event["jti"] = json!(jti);
    event
}

/// A OneWelcome password change of `user_id` in Herald's canonical form, with the id `event_id`.
fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}})
}

/// A OneWelcome user creation, like [`password_updated`].
fn user_created(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "UserCreatedEvent", "payload": {"userId": user_id}})
}

// ---- signatures, recomputed here from the key, the headers and the body -------------------------

/// The HMAC key a secret stands for: `whsec_<base64>` is the decoded bytes, any other
/// text its UTF-8 bytes.
fn key_of(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).expect("whsec_ secret is base64"),
        None => secret.as_bytes().to_vec(),
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The Standard Webhooks signature `v1,<base64 HMAC(key, "{id}.{timestamp}.{body}")>` of a
/// delivery as it arrived.
fn standard_signature(arrived: &Received, key: &[u8]) -> String {
    let signed = hmac_sha256(
        key,
        &[
            arrived.webhook_id().as_bytes(),
            b".",
            arrived.header("webhook-timestamp").as_bytes(),
            b".",
            &arrived.body,
        ],
    );
    format!("v1,{}", STANDARD.encode(signed))
}

/// The space-separated signatures of `webhook-signature`.
fn signatures(arrived: &Received) -> Vec<&str> {
    arrived.header("webhook-signature").split(' ').collect()
}

/// The vendor header a taxonomy's consumers verify.
#[derive(Debug, Clone, Copy)]
enum NativeHeader {
    /// Asgardeo: `X-Hub-Signature: sha256=<hex HMAC of the body>`.
    HubSignature,
    /// Authgear: `x-authgear-body-signature: <hex HMAC of the body>`.
    AuthgearBody,
    /// OneWelcome and Herald's own events: none.
    None,
}

/// Checks the signatures a delivery carries, recomputed here with `secret` alone: the Standard
/// Webhooks header holds exactly one signature, and the native header is the taxonomy's. Works
/// whatever the manual clock says.
fn check_recomputed_signatures(arrived: &Received, secret: &str, native: NativeHeader) {
    let key = key_of(secret);
    assert_eq!(
        signatures(arrived),
        vec![standard_signature(arrived, &key)],
        "webhook-signature"
    );
    let body_hex = hex::encode(hmac_sha256(&key, &[&arrived.body]));
    let (hub, authgear) = match native {
        NativeHeader::HubSignature => (format!("sha256={body_hex}"), String::new()),
        NativeHeader::AuthgearBody => (String::new(), body_hex),
        NativeHeader::None => (String::new(), String::new()),
    };
    assert_eq!(arrived.header("x-hub-signature"), hub, "x-hub-signature");
    assert_eq!(
        arrived.header("x-authgear-body-signature"),
        authgear,
        "x-authgear-body-signature"
    );
}

/// [`check_recomputed_signatures`], and the official `standardwebhooks` crate verifies the
/// delivery with the secret in its `whsec_` form. The crate also checks `webhook-timestamp`
/// against the real clock, so this is for tests that keep the manual clock near it.
fn check_signed(arrived: &Received, secret: &str, native: NativeHeader) {
    check_recomputed_signatures(arrived, secret, native);
    let library_secret = format!("whsec_{}", STANDARD.encode(key_of(secret)));
    standardwebhooks::Webhook::new(&library_secret)
        .expect("secret")
        .verify(&arrived.body, &arrived.headers)
        .expect("the standardwebhooks crate verifies the delivery");
}

// ---- time ---------------------------------------------------------------------------------------

fn parse_time(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time"), &Rfc3339).expect("RFC 3339")
}

/// How long after the server's current time a delivery's next attempt is due.
fn due_in(app: &TestApp, delivery: &Value) -> Duration {
    let wait = parse_time(&delivery["next_attempt_at"]) - app.now();
    Duration::try_from(wait).expect("the next attempt is in the future")
}

/// Times are stored to the millisecond, so a due time read back can be this much earlier.
const STORED_PRECISION: Duration = Duration::from_millis(2);

/// How far a scheduled retry may stray from its nominal delay: ±20% jitter.
fn jitter_of(delay: Duration) -> Duration {
    delay / 5 + STORED_PRECISION
}

/// Checks that a delivery waits for `expected` ± `tolerance`, then moves the clock to when it is due.
fn check_due_in_and_advance(
    app: &TestApp,
    delivery: &Value,
    expected: Duration,
    tolerance: Duration,
) {
    let wait = due_in(app, delivery);
    assert!(
        wait >= expected - tolerance && wait <= expected + tolerance,
        "next attempt in {wait:?}, expected {expected:?} ± {tolerance:?}: {delivery}"
    );
    app.advance(wait);
}

// ---- wire contracts -----------------------------------------------------------------------------

/// Publishes every envelope to one endpoint (with `secret`, or a generated one) and checks that
/// each arrives as the exact bytes of the JSON that was published (with Herald's `seq` where the
/// envelope carries one), signed with the endpoint's secret.
async fn check_delivered_verbatim(
    envelopes: Vec<Value>,
    native: NativeHeader,
    secret: Option<&str>,
) {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let mut endpoint = json!({"url": receiver.url("/hook"), "filters": ["*"]});
    if let Some(secret) = secret {
        endpoint["secret"] = json!(secret);
    }
    let (_, endpoint_secret) = app.endpoint("acme", &key, endpoint).await;
    if let Some(secret) = secret {
        assert_eq!(endpoint_secret, secret, "a given secret is kept as given");
    }
    let mut expected_by_id = HashMap::new();
    for envelope in envelopes {
        let published = app.publish("acme", &key, &envelope).await;
        assert_eq!(published["duplicate"], false);
        let mut expected = envelope;
        if let Some(seq) = expected.get_mut("seq") {
            // Authgear's seq is the log position: the producer's is replaced by Herald's.
            assert_ne!(*seq, published["seq"]);
            *seq = published["seq"].clone();
        }
        let event_id = published["id"].as_str().expect("id").to_owned();
        assert!(expected_by_id.insert(event_id, expected).is_none());
    }
    let n_attempts = app.deliver_until_idle().await;
    assert_eq!(n_attempts, expected_by_id.len());
    for arrived in receiver.take(n_attempts).await {
        let expected = expected_by_id
            .remove(arrived.webhook_id())
            .expect("the delivery of an event that was published");
        assert_eq!(
            std::str::from_utf8(&arrived.body).expect("UTF-8 body"),
            expected.to_string(),
            "delivered body of {}",
            arrived.webhook_id()
        );
        assert_eq!(arrived.header("content-type"), "application/json");
        check_signed(&arrived, &endpoint_secret, native);
    }
    assert!(expected_by_id.is_empty());
}

#[tokio::test]
async fn a_seed_event_is_delivered_byte_for_byte_and_verifiable() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let (_, secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["*"]}),
        )
        .await;
    let event = seed("asgardeo/loginSuccess.json");
    let published = app.publish("acme", &key, &event).await;
    assert_eq!(published["id"], event["jti"]);
    assert_eq!(published["seq"], 1);
    assert_eq!(app.deliver().await, 1);
    let arrived = receiver.next().await;
    assert_eq!(arrived.json(), event);
    let wh = standardwebhooks::Webhook::new(&secret).expect("secret");
    wh.verify(&arrived.body, &arrived.headers)
        .expect("Standard Webhooks signature verifies");
    assert!(arrived.header("x-hub-signature").starts_with("sha256="));
}

#[tokio::test]
async fn every_asgardeo_seed_is_delivered_verbatim_with_x_hub_signature() {
    check_delivered_verbatim(seed_envelopes("asgardeo"), NativeHeader::HubSignature, None).await;
}

#[tokio::test]
async fn every_authgear_seed_is_delivered_verbatim_with_herald_seq_and_body_signature() {
    check_delivered_verbatim(
        seed_envelopes("authgear/envelopes"),
        NativeHeader::AuthgearBody,
        None,
    )
    .await;
}

#[tokio::test]
async fn every_onewelcome_catalog_example_is_delivered_verbatim_with_standard_webhooks_only() {
    check_delivered_verbatim(onewelcome_envelopes(), NativeHeader::None, None).await;
}

#[tokio::test]
async fn a_plain_vendor_secret_signs_the_native_and_standard_headers_as_utf8_bytes() {
    let plain_secret = "my-asgardeo-webhook-secret";
    check_delivered_verbatim(
        vec![seed("asgardeo/userCreated.json")],
        NativeHeader::HubSignature,
        Some(plain_secret),
    )
    .await;
    check_delivered_verbatim(
        vec![seed("authgear/envelopes/user.created.json")],
        NativeHeader::AuthgearBody,
        Some(plain_secret),
    )
    .await;
}

// ---- secret rotation ----------------------------------------------------------------------------

#[tokio::test]
async fn after_a_secret_rotation_both_secrets_sign_until_the_overlap_ends() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let (endpoint_id, old_secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["asgardeo"]}),
        )
        .await;
    app.publish("acme", &key, &asgardeo_login("before-rotation"))
        .await;
    app.deliver().await;
    check_signed(
        &receiver.next().await,
        &old_secret,
        NativeHeader::HubSignature,
    );

    let (status, rotated) = app
        .call(
            "POST",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}/secret/rotate"),
            Some(&key),
            // No body at all: every member of a rotation is optional.
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(parse_time(&rotated["previous_secret_expires_at"]) > app.now());

    app.publish("acme", &key, &asgardeo_login("during-rotation"))
        .await;
    app.deliver().await;
    let arrived = receiver.next().await;
    assert_eq!(
        signatures(&arrived),
        vec![
            standard_signature(&arrived, &key_of(&new_secret)),
            standard_signature(&arrived, &key_of(&old_secret)),
        ],
        "two v1 signatures, the new secret's first"
    );
    for secret in [&old_secret, &new_secret] {
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .verify(&arrived.body, &arrived.headers)
            .expect("a receiver with either secret accepts the delivery");
    }
    let new_body_hex = hex::encode(hmac_sha256(&key_of(&new_secret), &[&arrived.body]));
    assert_eq!(
        arrived.header("x-hub-signature"),
        format!("sha256={new_body_hex}"),
        "the native header has room for one signature: the new secret's"
    );

    app.advance(Duration::from_secs(25 * 3600));
    app.publish("acme", &key, &asgardeo_login("after-the-overlap"))
        .await;
    app.deliver().await;
    check_recomputed_signatures(
        &receiver.next().await,
        &new_secret,
        NativeHeader::HubSignature,
    );
}

// ---- retries, Retry-After, 410, timeouts, redirects, exhaustion ---------------------------------

/// A tenant `acme` with one endpoint on `receiver` for the OneWelcome taxonomy (so Herald's own
/// operational events do not reach it), with extra endpoint settings merged in.
async fn app_with_endpoint(receiver: &Receiver, settings: Value) -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut endpoint = json!({"url": receiver.url("/hook"), "filters": ["onewelcome"]});
    for (name, value) in settings.as_object().expect("settings object") {
        endpoint[name] = value.clone();
    }
    let (endpoint_id, _) = app.endpoint("acme", &key, endpoint).await;
    (app, key, endpoint_id)
}

#[tokio::test]
async fn failed_attempts_are_retried_on_the_default_schedule_with_the_same_body() {
    let mut receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(500), Reply::Status(200)]);
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
    app.publish("acme", &key, &password_updated("evt-retried", ALICE))
        .await;

    assert_eq!(app.deliver().await, 1);
    let delivery = app.only_delivery("acme", &key, &endpoint_id).await;
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();
    assert_eq!(delivery["state"], "scheduled");
    assert_eq!(delivery["n_attempts"], 1);
    assert_eq!(delivery["last_status"], 500);
    assert_eq!(
        app.deliver().await,
        0,
        "nothing is due before the retry time"
    );
    check_due_in_and_advance(
        &app,
        &delivery,
        Duration::from_secs(5),
        jitter_of(Duration::from_secs(5)),
    );

    assert_eq!(app.deliver().await, 1);
    let delivery = app.delivery("acme", &key, &delivery_id).await;
    assert_eq!(delivery["state"], "scheduled");
    assert_eq!(delivery["n_attempts"], 2);
    check_due_in_and_advance(
        &app,
        &delivery,
        Duration::from_secs(300),
        jitter_of(Duration::from_secs(300)),
    );

    assert_eq!(app.deliver().await, 1);
    let delivery = app.delivery("acme", &key, &delivery_id).await;
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["n_attempts"], 3);
    assert_eq!(delivery["last_status"], 200);
    assert_eq!(delivery["next_attempt_at"], Value::Null);

    let attempts = app.attempts("acme", &key, &delivery_id).await;
    let numbers_and_statuses: Vec<(Value, Value)> = attempts
        .iter()
        .map(|attempt| (attempt["attempt_number"].clone(), attempt["status"].clone()))
        .collect();
    assert_eq!(
        numbers_and_statuses,
        vec![
            (json!(1), json!(500)),
            (json!(2), json!(500)),
            (json!(3), json!(200))
        ]
    );
    for attempt in &attempts {
        assert!(attempt["latency_ms"].is_u64(), "{attempt}");
        assert_eq!(attempt["response"], "ok", "the start of the answer is kept");
    }
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert_eq!(attempts[2]["error"], Value::Null);
    let started: Vec<OffsetDateTime> = attempts
        .iter()
        .map(|attempt| parse_time(&attempt["started_at"]))
        .collect();
    assert!(
        started.windows(2).all(|pair| pair[0] < pair[1]),
        "{started:?}"
    );

    let arrivals = receiver.take(3).await;
    let identity_of = |arrived: &Received| {
        (
            arrived.body.clone(),
            arrived.webhook_id().to_owned(),
            arrived.header("webhook-timestamp").to_owned(),
        )
    };
    let (first_body, first_id, first_timestamp) = identity_of(&arrivals[0]);
    assert_eq!(first_id, "evt-retried");
    for arrived in &arrivals[1..] {
        let (body, webhook_id, timestamp) = identity_of(arrived);
        assert_eq!(
            body, first_body,
            "the body is byte-identical on every attempt"
        );
        assert_eq!(
            webhook_id, first_id,
            "webhook-id is the same on every attempt"
        );
        assert_ne!(
            timestamp, first_timestamp,
            "webhook-timestamp is the attempt's"
        );
    }
}

#[tokio::test]
async fn retry_after_replaces_the_scheduled_wait_for_429_and_503() {
    for (status, retry_after_s) in [(429, 120), (503, 30)] {
        let receiver = Receiver::start().await;
        receiver.script([Reply::WithHeaders(
            status,
            vec![("retry-after", retry_after_s.to_string())],
        )]);
        let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
        app.publish("acme", &key, &password_updated("evt-throttled", ALICE))
            .await;
        assert_eq!(app.deliver().await, 1);
        let delivery = app.only_delivery("acme", &key, &endpoint_id).await;
        assert_eq!(delivery["state"], "scheduled");
        assert_eq!(delivery["last_status"], status);
        check_due_in_and_advance(
            &app,
            &delivery,
            Duration::from_secs(retry_after_s),
            STORED_PRECISION,
        );
    }
}

#[tokio::test]
async fn gone_disables_the_endpoint_exhausts_the_delivery_and_tells_the_tenant() {
    let mut gone_receiver = Receiver::start().await;
    gone_receiver.script([Reply::Status(410)]);
    let (app, key, gone_endpoint) = app_with_endpoint(&gone_receiver, json!({})).await;
    let mut operations_receiver = Receiver::start().await;
    let (_, operations_secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": operations_receiver.url("/ops"), "filters": ["herald.*"]}),
        )
        .await;
    app.publish("acme", &key, &password_updated("evt-to-gone", ALICE))
        .await;

    assert_eq!(app.deliver().await, 1);
    gone_receiver.next().await;
    let endpoint = app
        .get(&format!("/v1/tenants/acme/endpoints/{gone_endpoint}"), &key)
        .await;
    assert_eq!(endpoint["enabled"], false);
    assert_eq!(endpoint["disabled_reason"], "gone");
    let delivery = app.only_delivery("acme", &key, &gone_endpoint).await;
    assert_eq!(delivery["state"], "exhausted");
    assert_eq!(delivery["n_attempts"], 1);
    assert_eq!(delivery["last_status"], 410);

    let disabled = app
        .events("acme", &key, Some("herald.endpoint.disabled"))
        .await;
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0]["taxonomy"], "herald");
    assert_eq!(disabled[0]["payload"]["endpoint_id"], gone_endpoint);
    assert_eq!(disabled[0]["payload"]["reason"], "gone");
    assert_eq!(disabled[0]["payload"]["last_status"], 410);
    let exhausted = app
        .events("acme", &key, Some("herald.delivery.exhausted"))
        .await;
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    assert_eq!(exhausted[0]["payload"]["delivery_id"], delivery["id"]);
    assert_eq!(exhausted[0]["payload"]["event_id"], "evt-to-gone");

    assert_eq!(app.deliver().await, 2, "the herald.* subscriber gets both");
    let received_types: BTreeSet<String> = operations_receiver
        .take(2)
        .await
        .iter()
        .map(|arrived| {
            check_signed(arrived, &operations_secret, NativeHeader::None);
            arrived.json()["type"].as_str().expect("type").to_owned()
        })
        .collect();
    assert_eq!(
        received_types,
        BTreeSet::from([
            "herald.delivery.exhausted".to_owned(),
            "herald.endpoint.disabled".to_owned()
        ])
    );

    app.publish("acme", &key, &password_updated("evt-after-gone", ALICE))
        .await;
    assert_eq!(app.deliver().await, 0, "a disabled endpoint gets nothing");
    assert!(gone_receiver.drain().is_empty());
}

#[tokio::test]
async fn an_endpoint_that_answers_too_late_times_out_and_is_retried() {
    let mut receiver = Receiver::start().await;
    receiver.script([Reply::After(Duration::from_secs(5), 200)]);
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({"timeout_ms": 300})).await;
    app.publish("acme", &key, &password_updated("evt-slow", ALICE))
        .await;

    let started = Instant::now();
    assert_eq!(app.deliver().await, 1);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "the attempt gave up after its timeout, not the answer: {elapsed:?}"
    );
    receiver.next().await;
    let delivery = app.only_delivery("acme", &key, &endpoint_id).await;
    assert_eq!(delivery["state"], "scheduled");
    assert_eq!(delivery["last_status"], Value::Null);
    assert_eq!(delivery["last_error"], "timed out");
    let attempts = app
        .attempts("acme", &key, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["error"], "timed out");
    assert_eq!(attempts[0]["status"], Value::Null);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let mut moved_to = Receiver::start().await;
    let mut receiver = Receiver::start().await;
    receiver.script([Reply::WithHeaders(
        302,
        vec![("location", moved_to.url("/moved"))],
    )]);
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
    app.publish("acme", &key, &password_updated("evt-redirected", ALICE))
        .await;

    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    assert!(
        moved_to.drain().is_empty(),
        "the redirect target was called"
    );
    let delivery = app.only_delivery("acme", &key, &endpoint_id).await;
    assert_eq!(delivery["state"], "scheduled");
    assert_eq!(delivery["last_status"], 302);
}

#[tokio::test]
async fn an_exhausted_delivery_stays_listed_and_can_be_retried_by_hand() {
    let mut receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(500), Reply::Status(500)]);
    let (app, key, endpoint_id) =
        app_with_endpoint(&receiver, json!({"retry_schedule_s": [1, 1]})).await;
    app.publish("acme", &key, &password_updated("evt-exhausted", ALICE))
        .await;

    for n_attempts in 1..=3 {
        assert_eq!(app.deliver().await, 1, "attempt {n_attempts}");
        app.advance(Duration::from_secs(2));
    }
    assert_eq!(app.deliver().await, 0);
    let delivery = app.only_delivery("acme", &key, &endpoint_id).await;
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();
    assert_eq!(delivery["state"], "exhausted");
    assert_eq!(delivery["n_attempts"], 3);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    let listed = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}/deliveries?state=exhausted"),
            &key,
        )
        .await;
    assert_eq!(listed["data"].as_array().expect("data").len(), 1);
    let exhausted = app
        .events("acme", &key, Some("herald.delivery.exhausted"))
        .await;
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["payload"]["n_attempts"], 3);
    assert_eq!(exhausted[0]["payload"]["last_status"], 500);

    let (status, retried) = app
        .call(
            "POST",
            &format!("/v1/tenants/acme/deliveries/{delivery_id}/retry"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["state"], "pending");
    assert_eq!(app.deliver().await, 1);
    let delivery = app.delivery("acme", &key, &delivery_id).await;
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["n_attempts"], 4);
    assert_eq!(receiver.take(4).await.len(), 4);
}

// ---- ordering -----------------------------------------------------------------------------------

/// Publishes alice#1, alice#2 and bob#1 to an endpoint with `ordering`, fails alice#1's first
/// attempt, and checks which events each dispatcher step sends: `before_retry` until the failed
/// attempt is due, then `after_retry` once the clock is past it. Each step is a set of event ids;
/// a final step must find nothing left.
async fn check_ordering(ordering: &str, before_retry: &[&[&str]], after_retry: &[&[&str]]) {
    let mut receiver = Receiver::start().await;
    receiver.script_for_event("alice-1", [Reply::Status(500)]);
    let (app, key, _) = app_with_endpoint(&receiver, json!({"ordering": ordering})).await;
    for (event_id, user_id) in [("alice-1", ALICE), ("alice-2", ALICE), ("bob-1", BOB)] {
        app.publish("acme", &key, &password_updated(event_id, user_id))
            .await;
    }
    check_steps(&app, &mut receiver, before_retry, ordering).await;
    app.advance(Duration::from_secs(10));
    check_steps(&app, &mut receiver, after_retry, ordering).await;
    assert_eq!(app.deliver().await, 0, "{ordering}: all delivered");
    assert!(receiver.drain().is_empty());
}

/// Runs one dispatcher step per entry of `steps` and checks that it sent exactly those events.
async fn check_steps(app: &TestApp, receiver: &mut Receiver, steps: &[&[&str]], ordering: &str) {
    for expected in steps {
        let n_attempts = app.deliver().await;
        let arrived: BTreeSet<String> = receiver
            .take(n_attempts)
            .await
            .iter()
            .map(|arrived| arrived.webhook_id().to_owned())
            .collect();
        let expected: BTreeSet<String> = expected.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(arrived, expected, "{ordering}: one dispatcher step");
    }
}

#[tokio::test]
async fn without_ordering_every_due_event_goes_at_once() {
    check_ordering("none", &[&["alice-1", "alice-2", "bob-1"]], &[&["alice-1"]]).await;
}

#[tokio::test]
async fn subject_ordering_holds_back_only_the_failed_subject() {
    check_ordering(
        "subject",
        &[&["alice-1", "bob-1"], &[]],
        &[&["alice-1"], &["alice-2"]],
    )
    .await;
}

#[tokio::test]
async fn strict_ordering_is_fifo_for_the_whole_endpoint() {
    check_ordering(
        "strict",
        &[&["alice-1"], &[]],
        &[&["alice-1"], &["alice-2"], &["bob-1"]],
    )
    .await;
}

// ---- isolation between endpoints ----------------------------------------------------------------

#[tokio::test]
async fn a_hanging_endpoint_does_not_slow_a_healthy_one() {
    let app = TestApp::spawn_with(|options| options.run_background_work = true).await;
    let key = app.tenant("acme").await;
    let mut hanging = Receiver::start().await;
    hanging.script([
        Reply::After(Duration::from_secs(10), 200),
        Reply::After(Duration::from_secs(10), 200),
    ]);
    let mut healthy = Receiver::start().await;
    let (hanging_endpoint, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": hanging.url("/slow"), "filters": ["onewelcome"]}),
        )
        .await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": healthy.url("/fast"), "filters": ["onewelcome"]}),
    )
    .await;

    for event_id in ["evt-first", "evt-second"] {
        app.publish("acme", &key, &password_updated(event_id, ALICE))
            .await;
        let arrived = healthy
            .next_within(Duration::from_secs(2))
            .await
            .expect("the healthy endpoint gets its event within 2 s");
        assert_eq!(arrived.webhook_id(), event_id);
        assert_eq!(hanging.next().await.webhook_id(), event_id);
    }
    let hanging_deliveries = app.deliveries("acme", &key, &hanging_endpoint).await;
    assert!(
        hanging_deliveries
            .iter()
            .all(|delivery| delivery["state"] == "in_flight"),
        "the hanging endpoint is still answering: {hanging_deliveries:?}"
    );
}

// ---- publishing: idempotency and validation -----------------------------------------------------

#[tokio::test]
async fn publishing_the_same_id_twice_returns_the_original_and_delivers_once() {
    let mut receiver = Receiver::start().await;
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
    let event = password_updated("evt-once", ALICE);
    let first = app.publish("acme", &key, &event).await;
    let second = app.publish("acme", &key, &event).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["seq"], first["seq"]);

    assert_eq!(app.deliver_until_idle().await, 1);
    receiver.next().await;
    assert!(receiver.drain().is_empty());
    assert_eq!(app.deliveries("acme", &key, &endpoint_id).await.len(), 1);
    assert_eq!(app.events("acme", &key, None).await.len(), 1);
}

/// A request that must be refused, and the problem+json it must be answered with.
struct ProblemCase<'a> {
    /// Where the request is POSTed.
    path: &'a str,
    body: String,
    content_type: &'a str,
    status: StatusCode,
    /// The stable `type`, after the common base.
    kind: &'a str,
    /// The JSON path of each problem listed in `errors`.
    problem_paths: &'a [&'a str],
    /// A piece of the human `detail`.
    detail_part: &'a str,
}

/// A JSON event refused as invalid (422) with problems at `problem_paths`.
fn invalid<'a>(
    path: &'a str,
    body: &Value,
    problem_paths: &'a [&'a str],
    detail_part: &'a str,
) -> ProblemCase<'a> {
    ProblemCase {
        path,
        body: body.to_string(),
        content_type: "application/json",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        kind: "validation",
        problem_paths,
        detail_part,
    }
}

async fn check_problem(app: &TestApp, key: &str, case: ProblemCase<'_>) {
    let (status, headers, text) = app
        .call_raw(
            "POST",
            case.path,
            Some(key),
            Some(case.body),
            case.content_type,
        )
        .await;
    assert_eq!(status, case.status, "{text}");
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(
        problem["type"],
        format!("{PROBLEM_BASE}{}", case.kind),
        "{problem}"
    );
    assert_eq!(problem["status"], case.status.as_u16());
    assert!(problem["title"].is_string());
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains(case.detail_part),
        "detail {detail:?} lacks {:?}",
        case.detail_part
    );
    let paths: Vec<&str> = problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["path"].as_str().expect("path"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(paths, case.problem_paths, "{problem}");
}

#[tokio::test]
async fn invalid_events_are_refused_with_problem_details_and_paths() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let events = "/v1/tenants/acme/events";
    let batch = "/v1/tenants/acme/events:batch";

    let mut missing_member = seed("authgear/envelopes/user.created.json");
    missing_member["payload"]
        .as_object_mut()
        .expect("payload")
        .remove("identities");
    let mut outside_enum = seed("authgear/envelopes/user.session.terminated.json");
    outside_enum["payload"]["termination_type"] = json!("everything");
    let mut unknown_asgardeo_type = seed("asgardeo/loginSuccess.json");
    unknown_asgardeo_type["events"] = json!({
        "https://schemas.identity.wso2.org/events/login/event-type/teleported": {}
    });
    let mut jti_with_space = seed("asgardeo/loginSuccess.json");
    jti_with_space["jti"] = json!("login 42");
    let mut onewelcome_envelope = onewelcome_envelopes().swap_remove(0);
    onewelcome_envelope["metadata"]["eventId"] = json!("événement-1");
    let malformed_seed =
        std::fs::read_to_string(fixture_path("asgardeo/registrationFailed.malformed.json"))
            .expect("malformed seed");
    let too_many: Vec<Value> = (0..1001)
        .map(|event_idx| password_updated(&format!("evt-{event_idx}"), ALICE))
        .collect();
    let one_invalid = json!({"events": [
        password_updated("evt-valid", ALICE),
        password_updated("evt-not-a-uuid", "alice"),
        password_updated("evt-also-valid", BOB),
    ]});

    let cases = vec![
        invalid(events, &missing_member, &["/payload"], "identities"),
        invalid(
            events,
            &outside_enum,
            &["/payload/termination_type"],
            "everything",
        ),
        invalid(
            events,
            &json!({"type": "user.teleported", "payload": {}}),
            &["/type"],
            "unknown event type",
        ),
        invalid(
            events,
            &unknown_asgardeo_type,
            &["/events/https:~1~1schemas.identity.wso2.org~1events~1login~1event-type~1teleported"],
            "unknown event type",
        ),
        // An id that cannot travel in the `webhook-id` header could never be delivered.
        invalid(
            events,
            &password_updated("evt with spaces", ALICE),
            &["/id"],
            "webhook-id",
        ),
        invalid(events, &jti_with_space, &["/jti"], "webhook-id"),
        invalid(
            events,
            &onewelcome_envelope,
            &["/metadata/eventId"],
            "webhook-id",
        ),
        ProblemCase {
            path: events,
            body: malformed_seed,
            content_type: "application/json",
            status: StatusCode::BAD_REQUEST,
            kind: "malformed-json",
            problem_paths: &[],
            detail_part: "line 30, column 1",
        },
        ProblemCase {
            path: events,
            body: password_updated("evt-text", ALICE).to_string(),
            content_type: "text/plain",
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: "unsupported-media-type",
            problem_paths: &[],
            detail_part: "application/json",
        },
        invalid(batch, &json!(too_many), &[""], "at most 1000"),
        invalid(
            batch,
            &json!({"events": too_many}),
            &["/events"],
            "at most 1000",
        ),
        invalid(batch, &one_invalid, &["/events/1/payload/userId"], "alice"),
    ];
    for case in cases {
        check_problem(&app, &key, case).await;
    }
    assert!(
        app.events("acme", &key, None).await.is_empty(),
        "nothing of a refused request is stored"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = TestApp::spawn_with(|options| options.settings.max_body_bytes = 1024).await;
    let key = app.tenant("acme").await;
    let small = password_updated("evt-small", ALICE);
    app.publish("acme", &key, &small).await;
    let mut large = password_updated("evt-large", ALICE);
    large["payload"]["padding"] = json!("x".repeat(2048));
    check_problem(
        &app,
        &key,
        ProblemCase {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "payload-too-large",
            problem_paths: &[],
            ..invalid("/v1/tenants/acme/events", &large, &[], "1024 bytes")
        },
    )
    .await;
    assert_eq!(app.events("acme", &key, None).await.len(), 1);
}

// ---- authentication and tenant isolation --------------------------------------------------------

#[tokio::test]
async fn keys_are_required_and_tenants_see_only_their_own_resources() {
    let mut receiver = Receiver::start().await;
    let (app, acme_key, acme_endpoint) = app_with_endpoint(&receiver, json!({})).await;
    let other_key = app.tenant("other").await;
    let acme_event = app
        .publish("acme", &acme_key, &password_updated("evt-of-acme", ALICE))
        .await;
    app.deliver().await;
    receiver.next().await;
    let acme_delivery = app.only_delivery("acme", &acme_key, &acme_endpoint).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let acme_event = acme_event["id"].as_str().expect("id");

    let (status, problem) = app.call("GET", "/v1/tenants/acme/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["type"], format!("{PROBLEM_BASE}unauthorized"));
    let (status, _) = app
        .call(
            "GET",
            "/v1/tenants/acme/events",
            Some("hk_not-a-key-anyone-was-given"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let new_tenant = json!({"id": "sneaky", "name": "Sneaky"});
    let forbidden = [
        ("POST", "/v1/tenants".to_owned(), Some(&new_tenant)),
        ("GET", "/v1/tenants".to_owned(), None),
        ("POST", "/v1/tenants/other/api-keys".to_owned(), None),
    ];
    for (method, path, body) in &forbidden {
        let (status, problem) = app.call(method, path, Some(&other_key), *body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_eq!(problem["type"], format!("{PROBLEM_BASE}forbidden"));
    }

    let replay = json!({"since_seq": 0});
    let no_new_secret = json!({});
    let publish = password_updated("evt-planted", BOB);
    let cross_tenant = [
        ("GET", "/v1/tenants/acme".to_owned(), None),
        ("GET", "/v1/tenants/acme/events".to_owned(), None),
        ("POST", "/v1/tenants/acme/events".to_owned(), Some(&publish)),
        ("GET", format!("/v1/tenants/acme/events/{acme_event}"), None),
        ("GET", "/v1/tenants/acme/endpoints".to_owned(), None),
        (
            "GET",
            format!("/v1/tenants/acme/endpoints/{acme_endpoint}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/acme/deliveries/{acme_delivery}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/other/events/{acme_event}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/other/endpoints/{acme_endpoint}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/other/endpoints/{acme_endpoint}/deliveries"),
            None,
        ),
        (
            "POST",
            format!("/v1/tenants/other/endpoints/{acme_endpoint}/replay"),
            Some(&replay),
        ),
        (
            "POST",
            format!("/v1/tenants/other/endpoints/{acme_endpoint}/secret/rotate"),
            Some(&no_new_secret),
        ),
        (
            "DELETE",
            format!("/v1/tenants/other/endpoints/{acme_endpoint}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/other/deliveries/{acme_delivery}"),
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/other/deliveries/{acme_delivery}/attempts"),
            None,
        ),
        (
            "POST",
            format!("/v1/tenants/other/deliveries/{acme_delivery}/retry"),
            None,
        ),
    ];
    for (method, path, body) in &cross_tenant {
        let (status, problem) = app.call(method, path, Some(&other_key), *body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
        assert_eq!(problem["type"], format!("{PROBLEM_BASE}not-found"));
    }
    let (other_endpoint, _) = app
        .endpoint(
            "other",
            &other_key,
            json!({"url": receiver.url("/other"), "filters": ["*"]}),
        )
        .await;
    let (status, problem) = app
        .call(
            "POST",
            &format!("/v1/tenants/other/endpoints/{other_endpoint}/replay"),
            Some(&other_key),
            Some(&json!({"event_id": acme_event})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's event cannot be replayed to one's own endpoint: {problem}"
    );
    let (status, _) = app
        .call("GET", "/v1/tenants/nobody/events", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unknown tenant, even for the admin"
    );

    // Nothing above touched tenant acme.
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{acme_endpoint}"),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(app.events("acme", &acme_key, None).await.len(), 1);
    assert_eq!(
        app.delivery("acme", &acme_key, &acme_delivery).await["state"],
        "delivered"
    );
    assert_eq!(app.deliver().await, 0);
    assert!(receiver.drain().is_empty());
}

// ---- restart ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_restart_on_the_same_file_resumes_pending_and_scheduled_deliveries() {
    let mut receiver = Receiver::start().await;
    receiver.script_for_event("evt-failed-once", [Reply::Status(500)]);
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
    app.publish("acme", &key, &password_updated("evt-failed-once", ALICE))
        .await;
    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    app.publish("acme", &key, &password_updated("evt-not-yet-sent", BOB))
        .await;
    let states: BTreeSet<String> = app
        .deliveries("acme", &key, &endpoint_id)
        .await
        .iter()
        .map(|delivery| delivery["state"].as_str().expect("state").to_owned())
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["pending".to_owned(), "scheduled".to_owned()])
    );

    let directory = app.stop().await;
    let app = TestApp::spawn_in(directory, |_| {}).await;
    app.advance(Duration::from_secs(10));
    assert_eq!(app.deliver().await, 2);
    let arrived: BTreeSet<String> = receiver
        .take(2)
        .await
        .iter()
        .map(|arrived| arrived.webhook_id().to_owned())
        .collect();
    assert_eq!(
        arrived,
        BTreeSet::from(["evt-failed-once".to_owned(), "evt-not-yet-sent".to_owned()])
    );
    for delivery in app.deliveries("acme", &key, &endpoint_id).await {
        assert_eq!(delivery["state"], "delivered", "{delivery}");
    }
}

// ---- the log, custom types, replay, erasure, operations -----------------------------------------

#[tokio::test]
async fn batches_are_published_in_both_shapes_and_the_log_pages_by_cursor() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let wrapped = json!({"events": [
        user_created("evt-1", ALICE),
        password_updated("evt-2", ALICE),
        user_created("evt-3", BOB),
    ]});
    let bare = json!([
        password_updated("evt-4", BOB),
        password_updated("evt-5", ALICE)
    ]);
    let mut seqs = Vec::new();
    for body in [&wrapped, &bare] {
        let (status, published) = app
            .call(
                "POST",
                "/v1/tenants/acme/events:batch",
                Some(&key),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{published}");
        seqs.extend(
            published["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|outcome| outcome["seq"].as_i64().expect("seq")),
        );
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    let page = |query: &str| {
        let path = format!("/v1/tenants/acme/events?{query}");
        let (app, key) = (&app, &key);
        async move {
            let body = app.get(&path, key).await;
            let ids: Vec<String> = body["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|event| event["id"].as_str().expect("id").to_owned())
                .collect();
            (ids, body["next_after_seq"].as_i64().expect("cursor"))
        }
    };
    let cases: [(String, &[&str], i64); 7] = [
        ("after_seq=0&limit=2".to_owned(), &["evt-1", "evt-2"], 2),
        ("after_seq=2&limit=2".to_owned(), &["evt-3", "evt-4"], 4),
        ("after_seq=4&limit=2".to_owned(), &["evt-5"], 5),
        ("after_seq=5&limit=2".to_owned(), &[], 5),
        (
            "type=PasswordUpdatedEvent".to_owned(),
            &["evt-2", "evt-4", "evt-5"],
            5,
        ),
        (
            format!("type=PasswordUpdatedEvent&subject={ALICE}"),
            &["evt-2", "evt-5"],
            5,
        ),
        (format!("subject={BOB}&after_seq=3"), &["evt-4"], 4),
    ];
    for (query, expected_ids, expected_cursor) in cases {
        let (ids, cursor) = page(&query).await;
        assert_eq!(ids, expected_ids, "{query}");
        assert_eq!(cursor, expected_cursor, "{query}");
    }

    let event = app.get("/v1/tenants/acme/events/evt-3", &key).await;
    assert_eq!(event["seq"], 3);
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["type"], "UserCreatedEvent");
    assert_eq!(event["taxonomy"], "onewelcome");
    assert_eq!(event["subject"], BOB);
    assert_eq!(event["payload"], json!({"userId": BOB}));
    assert_eq!(event["erased"], false);
    let (status, _) = app
        .call("GET", "/v1/tenants/acme/events/evt-404", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_custom_type_is_registered_validated_and_delivered() {
    let mut receiver = Receiver::start().await;
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let (_, secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["acme.*"]}),
        )
        .await;
    let badge_awarded = json!({
        "type": "acme.badge.awarded",
        "description": "A user earned a badge.",
        "subject": "/user_id",
        "schema": {
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "badge": {"enum": ["bronze", "silver", "gold"]}
            },
            "required": ["user_id", "badge"]
        },
        "example": {"user_id": "u-1", "badge": "gold"}
    });
    let (status, registered) = app
        .call(
            "POST",
            "/v1/tenants/acme/catalog",
            Some(&key),
            Some(&badge_awarded),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["taxonomy"], "custom");
    let (status, _) = app
        .call(
            "POST",
            "/v1/tenants/acme/catalog",
            Some(&key),
            Some(&badge_awarded),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a type is registered once");
    let mut shadowing = badge_awarded.clone();
    shadowing["type"] = json!("user.created");
    let (status, _) = app
        .call(
            "POST",
            "/v1/tenants/acme/catalog",
            Some(&key),
            Some(&shadowing),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a built-in name is taken"
    );
    let catalog = app.get("/v1/tenants/acme/catalog", &key).await;
    assert!(
        catalog["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|entry| entry["type"] == "acme.badge.awarded")
    );

    let valid =
        json!({"type": "acme.badge.awarded", "payload": {"user_id": "u-7", "badge": "silver"}});
    let published = app.publish("acme", &key, &valid).await;
    let stored = app
        .get(
            &format!(
                "/v1/tenants/acme/events/{}",
                published["id"].as_str().expect("id")
            ),
            &key,
        )
        .await;
    assert_eq!(stored["taxonomy"], "custom");
    assert_eq!(stored["subject"], "u-7");
    let outside_enum =
        json!({"type": "acme.badge.awarded", "payload": {"user_id": "u-7", "badge": "tin"}});
    check_problem(
        &app,
        &key,
        invalid(
            "/v1/tenants/acme/events",
            &outside_enum,
            &["/payload/badge"],
            "tin",
        ),
    )
    .await;

    let other_key = app.tenant("other").await;
    check_problem(
        &app,
        &other_key,
        invalid(
            "/v1/tenants/other/events",
            &valid,
            &["/type"],
            "unknown event type",
        ),
    )
    .await;

    assert_eq!(app.deliver().await, 1);
    let arrived = receiver.next().await;
    check_signed(&arrived, &secret, NativeHeader::None);
    let body = arrived.json();
    assert_eq!(body["type"], "acme.badge.awarded");
    assert_eq!(body["seq"], published["seq"]);
    assert_eq!(body["payload"], valid["payload"]);
}

#[tokio::test]
async fn replay_redelivers_one_event_the_failed_ones_or_everything_since_a_seq_or_time() {
    let mut receiver = Receiver::start().await;
    receiver.script_for_event("evt-2", [Reply::Status(500)]);
    let (app, key, endpoint_id) =
        app_with_endpoint(&receiver, json!({"retry_schedule_s": []})).await;
    let replay_path = format!("/v1/tenants/acme/endpoints/{endpoint_id}/replay");
    app.publish("acme", &key, &password_updated("evt-1", ALICE))
        .await;
    app.publish("acme", &key, &password_updated("evt-2", BOB))
        .await;
    assert_eq!(app.deliver().await, 2);
    receiver.take(2).await;
    app.advance(Duration::from_secs(60));
    let third_published_at = app.now();
    app.publish("acme", &key, &password_updated("evt-3", ALICE))
        .await;
    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    let exhausted = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}/deliveries?state=exhausted"),
            &key,
        )
        .await;
    assert_eq!(exhausted["data"][0]["event_id"], "evt-2");

    let since = third_published_at.format(&Rfc3339).expect("time");
    let cases: [(Value, &[&str]); 4] = [
        (json!({"event_id": "evt-1"}), &["evt-1"]),
        (json!({"failed": true}), &["evt-2"]),
        (json!({"since_seq": 1}), &["evt-2", "evt-3"]),
        (json!({"since": since}), &["evt-3"]),
    ];
    for (selector, expected_ids) in cases {
        let (status, replayed) = app
            .call("POST", &replay_path, Some(&key), Some(&selector))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{selector}: {replayed}");
        assert_eq!(replayed["n_replayed"], expected_ids.len(), "{selector}");
        assert_eq!(app.deliver().await, expected_ids.len(), "{selector}");
        let arrived: BTreeSet<String> = receiver
            .take(expected_ids.len())
            .await
            .iter()
            .map(|arrived| arrived.webhook_id().to_owned())
            .collect();
        let expected: BTreeSet<String> = expected_ids.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(arrived, expected, "{selector}");
    }

    for (selector, expected_status) in [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"event_id": "evt-1", "since_seq": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"since": "yesterday"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"event_id": "evt-404"}), StatusCode::NOT_FOUND),
    ] {
        let (status, problem) = app
            .call("POST", &replay_path, Some(&key), Some(&selector))
            .await;
        assert_eq!(status, expected_status, "{selector}: {problem}");
    }
}

#[tokio::test]
async fn erasing_a_subject_empties_its_payloads_and_cancels_its_deliveries() {
    let mut receiver = Receiver::start().await;
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({})).await;
    for (event_id, user_id) in [("alice-1", ALICE), ("alice-2", ALICE), ("bob-1", BOB)] {
        app.publish("acme", &key, &password_updated(event_id, user_id))
            .await;
    }
    let (status, erased) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/acme/subjects/{ALICE}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["n_erased"], 2);

    for event_id in ["alice-1", "alice-2"] {
        let event = app
            .get(&format!("/v1/tenants/acme/events/{event_id}"), &key)
            .await;
        assert_eq!(event["payload"], json!({}), "{event}");
        assert_eq!(event["erased"], true);
    }
    let bob = app.get("/v1/tenants/acme/events/bob-1", &key).await;
    assert_eq!(bob["payload"], json!({"userId": BOB}));
    assert_eq!(bob["erased"], false);

    assert_eq!(app.deliver().await, 1, "only bob's event is still sent");
    assert_eq!(receiver.next().await.webhook_id(), "bob-1");
    let cancelled = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}/deliveries?state=cancelled"),
            &key,
        )
        .await;
    assert_eq!(cancelled["data"].as_array().expect("data").len(), 2);
}

#[tokio::test]
async fn the_service_describes_and_reports_on_itself() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    app.publish("acme", &key, &password_updated("evt-counted", ALICE))
        .await;

    for path in ["/healthz", "/readyz"] {
        let (status, body) = app.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, openapi) = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        openapi["openapi"]
            .as_str()
            .expect("version")
            .starts_with('3')
    );
    for path in [
        "/v1/tenants",
        "/v1/tenants/{tenant}/events",
        "/v1/tenants/{tenant}/events:batch",
        "/v1/tenants/{tenant}/endpoints",
        "/v1/tenants/{tenant}/endpoints/{endpoint_id}/deliveries",
        "/v1/tenants/{tenant}/endpoints/{endpoint_id}/replay",
        "/v1/tenants/{tenant}/endpoints/{endpoint_id}/secret/rotate",
        "/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts",
        "/v1/tenants/{tenant}/catalog",
        "/v1/tenants/{tenant}/subjects/{subject}",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    let (status, _, metrics) = app
        .call_raw("GET", "/metrics", None, None, "application/json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("herald_events_published_total"),
        "{metrics}"
    );
}

// ---- SSRF ---------------------------------------------------------------------------------------

/// Each URL is refused at endpoint creation with a 422 at `/url` whose detail says why.
async fn check_urls_refused(app: &TestApp, key: &str, cases: &[(&str, &str)]) {
    for (url, reason) in cases {
        let (status, problem) = app
            .call(
                "POST",
                "/v1/tenants/acme/endpoints",
                Some(key),
                Some(&json!({"url": url, "filters": ["*"]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["path"], "/url", "{url}: {problem}");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(reason),
            "{url}: {detail:?} lacks {reason:?}"
        );
    }
}

#[tokio::test]
async fn endpoints_on_private_or_metadata_addresses_are_refused() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    check_urls_refused(
        &app,
        &key,
        &[
            ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
            ("http://10.0.0.1/hook", "private network"),
            ("http://192.168.1.20:8080/hook", "private network"),
            ("http://[fe80::1]/hook", "link-local"),
            ("http://[::ffff:10.0.0.1]/hook", "private network"),
            ("http://224.0.0.1/hook", "multicast"),
            ("ftp://hooks.example.com/hook", "scheme"),
            ("http://user:password@hooks.example.com/hook", "user name"),
        ],
    )
    .await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": "https://hooks.example.com/herald", "filters": ["*"]}),
    )
    .await;
}

#[tokio::test]
async fn loopback_is_refused_unless_an_allowed_network_opens_it() {
    let app = TestApp::spawn_with(|options| options.settings.allow_network = vec![]).await;
    let key = app.tenant("acme").await;
    check_urls_refused(
        &app,
        &key,
        &[
            ("http://localhost/hook", "local name"),
            ("http://api.localhost:8080/hook", "local name"),
            ("http://127.0.0.1:8470/hook", "loopback"),
            ("http://[::1]/hook", "loopback"),
            ("http://0.0.0.0/hook", "unspecified"),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_endpoint_that_only_fails_for_five_days_is_disabled() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(500), Reply::Status(500)]);
    let three_days = 3 * 24 * 3600;
    let (endpoint_id, _) = app
        .endpoint("acme", &key, json!({"url": receiver.url("/hook"), "filters": ["*"], "retry_schedule_s": [three_days, three_days]}))
        .await;
    app.publish(
        "acme",
        &key,
        &user_created("evt-1", "00000000-0000-4000-8000-000000000001"),
    )
    .await;
    for step in 0..3 {
        assert_eq!(app.deliver().await, 1, "attempt {}", step + 1);
        let endpoint = app
            .get(&format!("/v1/tenants/acme/endpoints/{endpoint_id}"), &key)
            .await;
        assert_eq!(
            endpoint["enabled"],
            step < 2,
            "after attempt {}: {endpoint}",
            step + 1
        );
        // The schedule's jitter is ±20%: 3.6 days is past every due time it can pick.
        app.advance(Duration::from_secs(three_days * 6 / 5 + 60));
    }
    let endpoint = app
        .get(&format!("/v1/tenants/acme/endpoints/{endpoint_id}"), &key)
        .await;
    assert_eq!(endpoint["disabled_reason"], "failing_too_long");
    let disabled = app
        .events("acme", &key, Some("herald.endpoint.disabled"))
        .await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["payload"]["reason"], "failing_too_long");
}

#[tokio::test]
async fn the_rate_limit_spreads_deliveries_over_time() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["*"], "rate_limit_per_s": 2}),
        )
        .await;
    for n in 0..5 {
        app.publish(
            "acme",
            &key,
            &user_created(
                &format!("evt-{n}"),
                &format!("00000000-0000-4000-8000-00000000000{n}"),
            ),
        )
        .await;
    }
    app.deliver().await;
    assert_eq!(receiver.take(2).await.len(), 2);
    let deliveries = app.deliveries("acme", &key, &endpoint_id).await;
    let waiting = deliveries
        .iter()
        .filter(|delivery| delivery["state"] == "pending")
        .count();
    assert_eq!(waiting, 3, "{deliveries:?}");
    assert!(receiver.drain().is_empty(), "no more than the bucket held");
    app.deliver().await;
    assert!(
        receiver.drain().is_empty(),
        "nothing is due before the bucket refills"
    );
    app.advance(Duration::from_secs(1));
    app.deliver_until_idle().await;
    assert_eq!(receiver.take(2).await.len(), 2);
    app.advance(Duration::from_secs(1));
    app.deliver_until_idle().await;
    assert_eq!(receiver.take(1).await.len(), 1);
}

#[tokio::test]
async fn a_paused_endpoint_queues_its_deliveries_and_resuming_sends_them_all() {
    let mut receiver = Receiver::start().await;
    let (app, key, endpoint_id) = app_with_endpoint(&receiver, json!({"paused": true})).await;
    let (_, openapi) = app.call("GET", "/v1/openapi.json", None, None).await;
    let schemas = &openapi["components"]["schemas"];
    for schema in ["EndpointIn", "EndpointPatchIn", "EndpointOut"] {
        assert!(
            schemas[schema]["properties"].get("paused").is_some(),
            "{schema} documents paused: {}",
            schemas[schema]
        );
    }
    assert!(
        schemas["EndpointOut"]["required"]
            .as_array()
            .is_some_and(|required| required.contains(&json!("paused"))),
        "every endpoint answer says whether it is paused"
    );
    let endpoint_path = format!("/v1/tenants/acme/endpoints/{endpoint_id}");
    let endpoint = app.get(&endpoint_path, &key).await;
    assert_eq!(
        (&endpoint["enabled"], &endpoint["paused"]),
        (&json!(true), &json!(true))
    );
    let event_ids = ["evt-paused-1", "evt-paused-2", "evt-paused-3"];
    for event_id in event_ids {
        app.publish("acme", &key, &password_updated(event_id, ALICE))
            .await;
    }

    assert_eq!(app.deliver().await, 0, "nothing is attempted while paused");
    assert!(receiver.drain().is_empty());
    let deliveries = app.deliveries("acme", &key, &endpoint_id).await;
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries
            .iter()
            .all(|delivery| delivery["state"] == "pending"),
        "{deliveries:?}"
    );

    let (status, problem) = app
        .call(
            "PATCH",
            &endpoint_path,
            Some(&key),
            Some(&json!({"paused": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, resumed) = app
        .call(
            "PATCH",
            &endpoint_path,
            Some(&key),
            Some(&json!({"paused": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused"], false);
    assert_eq!(app.deliver_until_idle().await, 3);
    let arrived: BTreeSet<String> = receiver
        .take(3)
        .await
        .iter()
        .map(|received| received.webhook_id().to_owned())
        .collect();
    assert_eq!(arrived, BTreeSet::from(event_ids.map(str::to_owned)));
    let deliveries = app.deliveries("acme", &key, &endpoint_id).await;
    assert!(
        deliveries
            .iter()
            .all(|delivery| delivery["state"] == "delivered"),
        "{deliveries:?}"
    );
}
