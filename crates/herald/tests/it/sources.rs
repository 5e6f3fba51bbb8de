//! Sources end to end: for each vendor, a test client that sends the way the vendor does (its
//! headers, signatures, body shapes, resends) to a real server on loopback; the events land once
//! in the log and reach a subscriber; bad signatures, bad bodies and replays are handled; an
//! Authgear blocking call is answered in Authgear's format by a real hook chain.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::postgres::FreshPostgres;
use crate::support::{Receiver, TestApp};

const AUTHGEAR_SECRET: &str = "secret-shown-in-the-authgear-portal";
const ASGARDEO_SECRET: &str = "secret-typed-into-asgardeo";
const EXPORTER_TOKEN: &str = "exporter-token-0123456789";
const ALICE: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";

fn fixture(path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

/// Lowercase hex HMAC-SHA256 of `body`, as Authgear and the WebSub hub compute it.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A OneWelcome exporter event, as the event exporter sends it.
fn onewelcome_event(event_id: &str, user_id: &str) -> Value {
    json!({
        "metadata": {
            "eventId": event_id,
            "type": "PasswordUpdatedEvent",
            "occurredTime": "2025-03-04T10:15:30Z",
            "category": "public",
            "aggregateId": user_id,
            "producerId": "credentials",
            "producerInstanceId": "credentials-7d9f",
            "metadataVersion": "1.0",
            "payloadVersion": "1.0"
        },
        "payload": {"userId": user_id}
    })
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::String(self.text.clone()))
    }
}

/// Posts `body` to the ingest URL with `headers`, as a vendor would: no Herald key.
async fn send(
    app: &TestApp,
    ingest_path: &str,
    headers: &[(&str, String)],
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let mut request = app
        .http
        .post(format!("{}{ingest_path}", app.base))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("sent");
    Answer {
        status: StatusCode::from_u16(response.status().as_u16()).expect("status"),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// How long Authgear waits for a blocking hook before it gives up on the operation.
const AUTHGEAR_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Authgear's webhook and blocking-hook call: the raw body signed in `x-authgear-body-signature`,
/// given up after Authgear's 5 s (an answer later than that would fail the test here).
async fn send_as_authgear(app: &TestApp, ingest_path: &str, secret: &str, body: &[u8]) -> Answer {
    let signature = hmac_hex(secret, body);
    tokio::time::timeout(
        AUTHGEAR_HOOK_TIMEOUT,
        send(
            app,
            ingest_path,
            &[("x-authgear-body-signature", signature)],
            "application/json",
            body.to_vec(),
        ),
    )
    .await
    .expect("answered within Authgear's hook timeout")
}

async fn create_source(app: &TestApp, tenant: &str, key: &str, body: Value) -> Value {
    let (status, created) = app
        .call(
            "POST",
            &format!("/v1/tenants/{tenant}/sources"),
            Some(key),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn source(app: &TestApp, tenant: &str, key: &str, source_id: &str) -> Value {
    app.get(&format!("/v1/tenants/{tenant}/sources/{source_id}"), key)
        .await
}

#[track_caller]
fn check_problem(answer: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/problem+json"),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.json()["type"],
        format!("https://herald.dev/problems/{kind}"),
        "{}",
        answer.text
    );
}

fn paths(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn authgear_webhooks_land_once_and_bad_requests_are_refused_and_counted() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": receiver.url("/acme"), "filters": ["user.*"]}),
    )
    .await;
    let created = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "authgear", "name": "Authgear production", "secret": AUTHGEAR_SECRET}),
    )
    .await;
    let source_id = created["id"].as_str().expect("id").to_owned();
    let ingest = created["ingest_path"]
        .as_str()
        .expect("ingest path")
        .to_owned();
    assert_eq!(ingest, format!("/v1/ingest/{source_id}"));
    assert_eq!(created["secret"], AUTHGEAR_SECRET, "shown on create");
    assert!(
        source(&app, "acme", &key, &source_id)
            .await
            .get("secret")
            .is_none(),
        "never shown again"
    );

    // Sent once and resent, as Authgear's delivery may be: one event in the log.
    let envelope = fixture("authgear/envelopes/user.created.json");
    let body = serde_json::to_vec(&envelope).expect("JSON");
    let first = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json()["data"][0]["id"], envelope["id"]);
    assert_eq!(first.json()["data"][0]["duplicate"], false);
    let again = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json()["data"][0]["duplicate"], true);
    assert_eq!(app.deliver_until_idle().await, 1);
    let delivered = receiver.next().await;
    assert_eq!(delivered.webhook_id(), envelope["id"].as_str().expect("id"));
    assert_eq!(delivered.json()["payload"], envelope["payload"]);
    assert!(receiver.drain().is_empty(), "the resend was not delivered");

    // Refused before anything is parsed or stored: a wrong secret, no signature, a Herald key.
    let wrong = send_as_authgear(&app, &ingest, "not-the-secret", &body).await;
    check_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(wrong.headers.contains_key("www-authenticate"));
    let mut other = envelope.clone();
    other["id"] = json!("b5f7c1d2-0000-4000-8000-000000000001");
    let other_body = serde_json::to_vec(&other).expect("JSON");
    let tampered = send(
        &app,
        &ingest,
        &[(
            "x-authgear-body-signature",
            hmac_hex(AUTHGEAR_SECRET, &body),
        )],
        "application/json",
        other_body.clone(),
    )
    .await;
    check_problem(&tampered, StatusCode::UNAUTHORIZED, "unauthorized");
    let unsigned = send(&app, &ingest, &[], "application/json", other_body.clone()).await;
    check_problem(&unsigned, StatusCode::UNAUTHORIZED, "unauthorized");
    let with_key = send(
        &app,
        &ingest,
        &[("authorization", format!("Bearer {key}"))],
        "application/json",
        other_body,
    )
    .await;
    check_problem(&with_key, StatusCode::UNAUTHORIZED, "unauthorized");

    // Over the body limit: 413, whatever the signature.
    let mut huge = envelope.clone();
    huge["payload"]["padding"] = json!("x".repeat(300 * 1024));
    let huge_body = serde_json::to_vec(&huge).expect("JSON");
    let too_large = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &huge_body).await;
    check_problem(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );

    // Signed but invalid: every problem with its path, nothing stored.
    let mut invalid = envelope.clone();
    invalid["id"] = json!("b5f7c1d2-0000-4000-8000-000000000002");
    invalid["payload"]["user"]["id"] = json!(42);
    let invalid_answer = send_as_authgear(
        &app,
        &ingest,
        AUTHGEAR_SECRET,
        &serde_json::to_vec(&invalid).expect("JSON"),
    )
    .await;
    check_problem(
        &invalid_answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
    let invalid_paths = paths(&invalid_answer.json());
    assert!(
        invalid_paths.contains(&"/payload/user/id".to_owned()),
        "{invalid_paths:?}"
    );

    // An Asgardeo envelope signed with the right secret is still not an Authgear event.
    let foreign = serde_json::to_vec(&fixture("asgardeo/userCreated.json")).expect("JSON");
    let foreign_answer = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &foreign).await;
    check_problem(
        &foreign_answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );

    assert_eq!(app.events("acme", &key, None).await.len(), 1);
    assert_eq!(app.deliver_until_idle().await, 0);
    let seen = source(&app, "acme", &key, &source_id).await;
    assert_eq!(seen["n_accepted"], 1, "{seen}");
    assert_eq!(seen["n_duplicates"], 1, "{seen}");
    assert_eq!(seen["n_refused"], 7, "{seen}");
    assert!(seen["last_success_at"].is_string(), "{seen}");
    assert!(seen["last_error_at"].is_string(), "{seen}");
    let last_errors = seen["last_errors"].as_array().expect("last errors");
    assert_eq!(last_errors.len(), 7, "{seen}");
    assert_eq!(last_errors[0]["status"], 422, "newest first: {seen}");
    assert!(
        last_errors[1]["detail"]
            .as_str()
            .expect("detail")
            .contains("/payload/user/id"),
        "{seen}"
    );
    assert_eq!(last_errors[2]["status"], 413, "{seen}");
    assert_eq!(last_errors[6]["status"], 401, "{seen}");

    // Rotating the secret: the old one stops working at once, the new one is shown once.
    let (status, rotated) = app
        .call(
            "POST",
            &format!("/v1/tenants/acme/sources/{source_id}/secret/rotate"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, AUTHGEAR_SECRET);
    let mut next = envelope.clone();
    next["id"] = json!("b5f7c1d2-0000-4000-8000-000000000003");
    let next_body = serde_json::to_vec(&next).expect("JSON");
    let old = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &next_body).await;
    check_problem(&old, StatusCode::UNAUTHORIZED, "unauthorized");
    let new = send_as_authgear(&app, &ingest, &new_secret, &next_body).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
}

#[tokio::test]
async fn asgardeo_hub_verifies_intent_then_signed_events_land_once() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": receiver.url("/acme"), "filters": ["asgardeo"]}),
    )
    .await;
    let topic = "myorg-USER_OPERATIONS";
    let created = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "asgardeo", "secret": ASGARDEO_SECRET, "accepted_topics": [topic]}),
    )
    .await;
    let source_id = created["id"].as_str().expect("id").to_owned();
    let ingest = created["ingest_path"].as_str().expect("path").to_owned();
    assert!(created["lease_expires_at"].is_null());

    // The hub's intent verification, percent-encoded as a hub sends it.
    let verify = |mode: &str, topic: &str, challenge: &str| {
        format!(
            "{}{ingest}?hub.mode={mode}&hub.topic={}&hub.challenge={}&hub.lease_seconds=864000",
            app.base,
            topic.replace('-', "%2D"),
            challenge.replace(' ', "+"),
        )
    };
    let response = app
        .http
        .get(verify("subscribe", topic, "a challenge 42"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), "a challenge 42");
    let leased = source(&app, "acme", &key, &source_id).await;
    let expected_lease = app.now() + time::Duration::seconds(864_000);
    let lease = time::OffsetDateTime::parse(
        leased["lease_expires_at"].as_str().expect("lease shown"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(
        (lease - expected_lease).abs() < time::Duration::seconds(1),
        "{lease} vs {expected_lease}"
    );
    let response = app
        .http
        .get(verify("subscribe", "myorg-LOGINS", "nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status().as_u16(),
        404,
        "a topic it does not accept"
    );
    assert_ne!(response.text().await.expect("body"), "nope");

    // Deliveries: X-Hub-Signature from the hub, x-wso2-event-signature from WSO2 IS directly.
    let created_event = fixture("asgardeo/userCreated.json");
    let body = serde_json::to_vec(&created_event).expect("JSON");
    let hub_signature = format!("sha256={}", hmac_hex(ASGARDEO_SECRET, &body));
    let first = send(
        &app,
        &ingest,
        &[("X-Hub-Signature", hub_signature.clone())],
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json()["data"][0]["id"], created_event["jti"]);
    let resent = send(
        &app,
        &ingest,
        &[("X-Hub-Signature", hub_signature)],
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(
        resent.json()["data"][0]["duplicate"],
        true,
        "{}",
        resent.text
    );
    let login = fixture("asgardeo/loginSuccess.json");
    let login_body = serde_json::to_vec(&login).expect("JSON");
    let direct = send(
        &app,
        &ingest,
        &[(
            "x-wso2-event-signature",
            format!("sha256={}", hmac_hex(ASGARDEO_SECRET, &login_body)),
        )],
        "application/json",
        login_body.clone(),
    )
    .await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.text);

    let wrong = send(
        &app,
        &ingest,
        &[(
            "X-Hub-Signature",
            format!("sha256={}", hmac_hex("guess", &login_body)),
        )],
        "application/json",
        login_body.clone(),
    )
    .await;
    check_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    // A SET with two events is not one Asgardeo event: 422 at its path, nothing stored.
    let mut two = fixture("asgardeo/userDeleted.json");
    two["events"]["https://schemas.identity.wso2.org/events/user/event-type/userCreated"] =
        created_event["events"]["https://schemas.identity.wso2.org/events/user/event-type/userCreated"]
            .clone();
    let two_body = serde_json::to_vec(&two).expect("JSON");
    let invalid = send(
        &app,
        &ingest,
        &[(
            "X-Hub-Signature",
            format!("sha256={}", hmac_hex(ASGARDEO_SECRET, &two_body)),
        )],
        "application/json",
        two_body,
    )
    .await;
    check_problem(&invalid, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(
        paths(&invalid.json())
            .iter()
            .any(|path| path.starts_with("/events")),
        "{}",
        invalid.text
    );

    let mut huge = fixture("asgardeo/userDeleted.json");
    huge["padding"] = json!("x".repeat(300 * 1024));
    let huge_body = serde_json::to_vec(&huge).expect("JSON");
    let too_large = send(
        &app,
        &ingest,
        &[(
            "X-Hub-Signature",
            format!("sha256={}", hmac_hex(ASGARDEO_SECRET, &huge_body)),
        )],
        "application/json",
        huge_body,
    )
    .await;
    check_problem(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );

    assert_eq!(app.events("acme", &key, None).await.len(), 2);
    assert_eq!(app.deliver_until_idle().await, 2);
    let mut delivered: Vec<String> = receiver
        .take(2)
        .await
        .iter()
        .map(|received| received.webhook_id().to_owned())
        .collect();
    delivered.sort();
    let mut expected = vec![
        created_event["jti"].as_str().expect("jti").to_owned(),
        login["jti"].as_str().expect("jti").to_owned(),
    ];
    expected.sort();
    assert_eq!(delivered, expected);

    // Unsubscribing ends the lease; a GET to a source of another kind is not a hub's business.
    let response = app
        .http
        .get(verify("unsubscribe", topic, "bye"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.text().await.expect("body"), "bye");
    let seen = source(&app, "acme", &key, &source_id).await;
    assert!(seen["lease_expires_at"].is_null(), "{seen}");
    assert_eq!(
        (
            &seen["n_accepted"],
            &seen["n_duplicates"],
            &seen["n_refused"]
        ),
        (&json!(2), &json!(1), &json!(3)),
        "{seen}"
    );
    let statuses: Vec<u64> = seen["last_errors"]
        .as_array()
        .expect("last errors")
        .iter()
        .map(|error| error["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [413, 422, 401], "{seen}");
    assert!(
        seen["last_errors"][1]["detail"]
            .as_str()
            .expect("detail")
            .contains("/events"),
        "{seen}"
    );
    let authgear = create_source(&app, "acme", &key, json!({"kind": "authgear"})).await;
    let response = app
        .http
        .get(format!(
            "{}{}?hub.mode=subscribe&hub.topic={topic}&hub.challenge=x",
            app.base,
            authgear["ingest_path"].as_str().expect("path")
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn onewelcome_exporter_sends_one_event_arrays_and_json_lines() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": receiver.url("/acme"), "filters": ["onewelcome"]}),
    )
    .await;
    let by_header = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "onewelcome", "header_name": "x-exporter-token", "secret": EXPORTER_TOKEN}),
    )
    .await;
    let header_ingest = by_header["ingest_path"].as_str().expect("path").to_owned();
    let token = [("x-exporter-token", EXPORTER_TOKEN.to_owned())];
    let event =
        |n: u32| onewelcome_event(&format!("0b7e57c1-0000-4000-8000-00000000000{n}"), ALICE);

    let single = send(
        &app,
        &header_ingest,
        &token,
        "application/json",
        serde_json::to_vec(&event(1)).expect("JSON"),
    )
    .await;
    assert_eq!(single.status, StatusCode::OK, "{}", single.text);

    // An array holding a resend of the first (the exporter documents duplicates) and a new one.
    let array = send(
        &app,
        &header_ingest,
        &token,
        "application/json",
        serde_json::to_vec(&json!([event(1), event(2)])).expect("JSON"),
    )
    .await;
    assert_eq!(array.status, StatusCode::OK, "{}", array.text);
    let flags: Vec<bool> = array.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|published| published["duplicate"].as_bool().expect("flag"))
        .collect();
    assert_eq!(flags, [true, false]);

    // JSON lines, with basic credentials on a second source.
    let by_basic = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "onewelcome", "username": "exporter"}),
    )
    .await;
    let basic_ingest = by_basic["ingest_path"].as_str().expect("path").to_owned();
    let password = by_basic["secret"].as_str().expect("generated").to_owned();
    let basic = |password: &str| {
        [(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("exporter:{password}"))),
        )]
    };
    let lines = format!("{}\n{}\n", event(3), event(4));
    let answer = send(
        &app,
        &basic_ingest,
        &basic(&password),
        "application/x-ndjson",
        lines.into_bytes(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["data"].as_array().expect("data").len(), 2);

    // Wrong credentials of either kind: 401, nothing stored.
    let wrong_password = send(
        &app,
        &basic_ingest,
        &basic("guess"),
        "application/x-ndjson",
        format!("{}\n{}\n", event(5), event(6)).into_bytes(),
    )
    .await;
    check_problem(&wrong_password, StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong_token = send(
        &app,
        &header_ingest,
        &[("x-exporter-token", "exporter-token-0123456788".to_owned())],
        "application/json",
        serde_json::to_vec(&event(5)).expect("JSON"),
    )
    .await;
    check_problem(&wrong_token, StatusCode::UNAUTHORIZED, "unauthorized");

    // One bad line: the whole request is refused, at that line's path, and nothing is stored.
    let mut bad = event(6);
    bad["payload"]["userId"] = json!("ada.lovelace");
    let with_bad_line = send(
        &app,
        &header_ingest,
        &token,
        "application/x-ndjson",
        format!("{}\n\n{bad}\n", event(5)).into_bytes(),
    )
    .await;
    check_problem(
        &with_bad_line,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
    assert_eq!(paths(&with_bad_line.json()), ["/3/payload/userId"]);
    let broken_line = send(
        &app,
        &header_ingest,
        &token,
        "application/x-ndjson",
        format!("{}\n{{\"metadata\": }}\n", event(5)).into_bytes(),
    )
    .await;
    check_problem(&broken_line, StatusCode::BAD_REQUEST, "malformed-json");
    assert!(
        broken_line.json()["detail"]
            .as_str()
            .expect("detail")
            .contains("line 2"),
        "{}",
        broken_line.text
    );

    let many_lines: String = (0..4_000)
        .map(|n| {
            format!(
                "{}\n",
                onewelcome_event(&format!("0b7e57c1-0000-4000-8000-{n:012}"), ALICE)
            )
        })
        .collect();
    let too_large = send(
        &app,
        &header_ingest,
        &token,
        "application/x-ndjson",
        many_lines.into_bytes(),
    )
    .await;
    check_problem(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );

    assert_eq!(app.events("acme", &key, None).await.len(), 4);
    assert_eq!(app.deliver_until_idle().await, 4);
    assert_eq!(receiver.take(4).await.len(), 4);
    let seen = source(&app, "acme", &key, by_header["id"].as_str().expect("id")).await;
    assert_eq!(
        (
            &seen["n_accepted"],
            &seen["n_duplicates"],
            &seen["n_refused"]
        ),
        (&json!(2), &json!(1), &json!(4)),
        "{seen}"
    );
    assert_eq!(seen["last_errors"][0]["status"], 413, "{seen}");
    assert!(
        seen["last_errors"][2]["detail"]
            .as_str()
            .expect("detail")
            .contains("/3/payload/userId"),
        "{seen}"
    );
}

/// A hook server on loopback answering every call with `answer` after `delay`.
async fn hook_server(answer: Value, delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move {
                tokio::time::sleep(delay).await;
                axum::Json(answer).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}/hook")
}

async fn add_hook(app: &TestApp, key: &str, body: Value) -> String {
    let (status, created) = app
        .call("POST", "/v1/tenants/acme/hooks", Some(key), Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn authgear_blocking_calls_are_answered_in_authgears_format() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let created = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "authgear", "secret": AUTHGEAR_SECRET}),
    )
    .await;
    let ingest = created["ingest_path"].as_str().expect("path").to_owned();
    let pre_create = fixture("authgear/envelopes/user.pre_create.json");
    let body = serde_json::to_vec(&pre_create).expect("JSON");

    // No hook: allowed, nothing to mutate.
    let answer = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json(), json!({"is_allowed": true}));

    // Two hooks: the second sees the first's roles and sets custom attributes. The answer holds
    // exactly what the chain changed, as Authgear's mutations.
    let roles = hook_server(
        json!({"is_allowed": true, "mutations": {"user": {"roles": ["member"]}}}),
        Duration::ZERO,
    )
    .await;
    let tier = hook_server(
        json!({"is_allowed": true, "mutations": {"user": {"roles": ["member"], "custom_attributes": {"tier": "gold"}}}}),
        Duration::ZERO,
    )
    .await;
    let first_hook = add_hook(
        &app,
        &key,
        json!({"event_type": "user.pre_create", "url": roles, "position": 1}),
    )
    .await;
    add_hook(
        &app,
        &key,
        json!({"event_type": "user.pre_create", "url": tier, "position": 2}),
    )
    .await;
    let answer = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"is_allowed":true,"mutations":{"user":{"custom_attributes":{"tier":"gold"},"roles":["member"]}}}"#
    );

    // A refusal is Authgear's refusal.
    let deny = hook_server(
        json!({"is_allowed": false, "title": "Sign-up closed", "reason": "Invitations only"}),
        Duration::ZERO,
    )
    .await;
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/hooks/{first_hook}"),
            Some(&key),
            Some(&json!({"url": deny})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    assert_eq!(
        answer.text,
        r#"{"is_allowed":false,"title":"Sign-up closed","reason":"Invitations only"}"#
    );

    // A hook slower than Authgear's 5 s: the source's chain stops at 4 s and answers in time.
    let slow = hook_server(json!({"is_allowed": true}), Duration::from_millis(4_800)).await;
    app.call(
        "PATCH",
        &format!("/v1/tenants/acme/hooks/{first_hook}"),
        Some(&key),
        Some(&json!({"url": slow})),
    )
    .await;
    let started = Instant::now();
    let answer = send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(4_600), "took {took:?}");
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["is_allowed"], false, "{}", answer.text);

    // A wrong signature never reaches the chain.
    let forged = send_as_authgear(&app, &ingest, "guess", &body).await;
    check_problem(&forged, StatusCode::UNAUTHORIZED, "unauthorized");

    // Decisions are recorded like those of /blocking-events; nothing entered the log.
    let (status, decisions) = app
        .call("GET", "/v1/tenants/acme/blocking-events", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let allowed: Vec<bool> = decisions["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|decision| decision["is_allowed"].as_bool().expect("flag"))
        .collect();
    assert_eq!(allowed, [true, true, false, false]);
    assert!(app.events("acme", &key, None).await.is_empty());
}

#[tokio::test]
async fn sources_are_the_tenants_own_and_settings_fit_their_kind() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let other_key = app.tenant("other").await;
    let created = create_source(&app, "acme", &key, json!({"kind": "authgear"})).await;
    let source_id = created["id"].as_str().expect("id");
    assert!(source_id.starts_with("src_"), "{created}");
    let generated = created["secret"].as_str().expect("generated");
    assert_eq!(generated.len(), 64, "32 random bytes in hex: {generated}");

    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/tenants/other/sources/{source_id}"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, listed) = app
        .call("GET", "/v1/tenants/other/sources", Some(&other_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"], json!([]));

    for (body, path) in [
        (json!({"kind": "okta"}), "/kind"),
        (json!({"kind": "asgardeo"}), "/accepted_topics"),
        (json!({"kind": "onewelcome"}), "/header_name"),
        (
            json!({"kind": "onewelcome", "header_name": "x-a", "username": "u"}),
            "/header_name",
        ),
        (
            json!({"kind": "onewelcome", "username": "a:b"}),
            "/username",
        ),
        (
            json!({"kind": "authgear", "accepted_topics": ["t"]}),
            "/accepted_topics",
        ),
        (json!({"kind": "authgear", "secret": ""}), "/secret"),
        (
            json!({"kind": "onewelcome", "header_name": "x-a", "secret": "two\nlines"}),
            "/secret",
        ),
        (
            json!({"kind": "onewelcome", "header_name": "bad header"}),
            "/header_name",
        ),
    ] {
        let (status, problem) = app
            .call("POST", "/v1/tenants/acme/sources", Some(&key), Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["path"], path, "{body}: {problem}");
    }

    let (status, updated) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/sources/{source_id}"),
            Some(&key),
            Some(&json!({"name": "renamed", "secret": "pasted-from-authgear"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "renamed");
    assert!(updated.get("secret").is_none(), "{updated}");
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/acme/sources/{source_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = send_as_authgear(
        &app,
        &format!("/v1/ingest/{source_id}"),
        "pasted-from-authgear",
        b"{}",
    )
    .await;
    check_problem(&gone, StatusCode::NOT_FOUND, "not-found");
}

/// Runs the `herald` binary against the test server, off the runtime the server runs on.
async fn herald_cli(app: &TestApp, key: &str, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let (base, key) = (app.base.clone(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(&args)
            .env("HERALD_URL", base)
            .env("HERALD_API_KEY", key)
            .output()
            .expect("runs");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    })
    .await
    .expect("joined")
}

#[tokio::test]
async fn sources_are_managed_from_the_command_line() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "sources",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "asgardeo",
            "--name",
            "Asgardeo",
            "--topic",
            "myorg-USER_OPERATIONS",
            "--topic",
            "myorg-LOGINS",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).expect("JSON");
    let source_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created["ingest_url"],
        format!("{}/v1/ingest/{source_id}", app.base),
        "the URL to paste into the console"
    );
    assert_eq!(
        created["accepted_topics"],
        json!(["myorg-USER_OPERATIONS", "myorg-LOGINS"])
    );
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();

    let (ok, out) = herald_cli(&app, &key, &["sources", "list", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&source_id) && out.contains("asgardeo"),
        "{out}"
    );
    assert!(!out.contains(&secret), "{out}");

    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "sources",
            "update",
            "--tenant",
            "acme",
            &source_id,
            "--topic",
            "myorg-SESSIONS",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["sources", "show", "--tenant", "acme", &source_id],
    )
    .await;
    assert!(ok, "{out}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["accepted_topics"], json!(["myorg-SESSIONS"]));
    assert!(shown.get("secret").is_none(), "{shown}");

    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "sources",
            "rotate-secret",
            "--tenant",
            "acme",
            &source_id,
            "--secret",
            "from-asgardeo",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("JSON")["secret"],
        "from-asgardeo"
    );

    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "sources",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "onewelcome",
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(out.contains("422") && out.contains("/header_name"), "{out}");

    let (ok, out) = herald_cli(
        &app,
        &key,
        &["sources", "delete", "--tenant", "acme", &source_id],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["sources", "show", "--tenant", "acme", &source_id],
    )
    .await;
    assert!(!ok && out.contains("404"), "{out}");
}

#[tokio::test]
async fn an_authgear_source_counts_and_deduplicates_on_postgresql() {
    let database = FreshPostgres::create("herald_sources").await;
    let app = database.spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": receiver.url("/acme"), "filters": ["user.*"]}),
    )
    .await;
    let created = create_source(
        &app,
        "acme",
        &key,
        json!({"kind": "authgear", "secret": AUTHGEAR_SECRET}),
    )
    .await;
    let source_id = created["id"].as_str().expect("id").to_owned();
    let ingest = created["ingest_path"].as_str().expect("path").to_owned();
    let envelope = fixture("authgear/envelopes/user.created.json");
    let body = serde_json::to_vec(&envelope).expect("JSON");
    // Two resends at once, as a retrying sender may overlap: one event, both counted.
    let (first, second) = tokio::join!(
        send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body),
        send_as_authgear(&app, &ingest, AUTHGEAR_SECRET, &body),
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let wrong = send_as_authgear(&app, &ingest, "guess", &body).await;
    check_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.events("acme", &key, None).await.len(), 1);
    assert_eq!(app.deliver_until_idle().await, 1);
    assert_eq!(
        receiver.next().await.webhook_id(),
        envelope["id"].as_str().expect("id")
    );
    let seen = source(&app, "acme", &key, &source_id).await;
    assert_eq!(
        (
            &seen["n_accepted"],
            &seen["n_duplicates"],
            &seen["n_refused"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{seen}"
    );
    assert_eq!(seen["last_errors"][0]["status"], 401, "{seen}");
    app.stop().await;
    database.remove().await;
}
