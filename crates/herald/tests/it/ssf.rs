//! Shared Signals end to end (issue 14): a receiver that knows only the SSF spec discovers a
//! tenant, creates a poll stream, adds subjects, runs verification, receives CAEP and RISC SETs
//! for events published in each vendor's format, verifies each against the published JWKS with
//! an independent JOSE implementation (`jsonwebtoken`), pauses, resumes and disables the stream.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::postgres::FreshPostgres;
use crate::support::{Receiver, Reply, TestApp};

const AUTHGEAR_USER: &str = "b3f1c6a2-5d47-4e0b-9a8e-2f6c1d9e7a43";
const ASGARDEO_USER: &str = "1801d35e-1339-4c16-9c53-61321cf37fb9";
const ONEWELCOME_USER: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";
const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

fn fixture(path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

/// Authgear `user.disabled` in Authgear's envelope; its payload carries the user's email.
fn authgear_user_disabled(id: &str) -> Value {
    let mut event = fixture("authgear/envelopes/user.session.terminated.json");
    event["id"] = json!(id);
    event["type"] = json!("user.disabled");
    event
}

fn asgardeo_session_revoked(jti: &str) -> Value {
    let mut event = fixture("asgardeo/sessionRevoked.json");
    event["jti"] = json!(jti);
    event
}

fn onewelcome(event_id: &str, event_type: &str, user_id: &str) -> Value {
    json!({
        "metadata": {
            "eventId": event_id,
            "type": event_type,
            "occurredTime": "2024-06-07T08:41:12.345Z",
            "category": "public",
            "aggregateId": event_id,
            "producerId": "identity-service",
            "producerInstanceId": "identity-service-7f3a9c",
            "metadataVersion": "1.0",
            "payloadVersion": "1.0"
        },
        "payload": {"userId": user_id, "clientId": "mobile-banking-ios-7f3a9c"}
    })
}

/// A receiver that knows only what the SSF spec tells it: the transmitter's issuer, its metadata
/// and the bearer token the tenant gave it.
struct SsfReceiver {
    http: reqwest::Client,
    token: String,
    metadata: Value,
}

impl SsfReceiver {
    async fn discover(app: &TestApp, issuer_path: &str, token: &str) -> Self {
        // SSF 1.0 §7.2.1: the well-known path goes between the host and the issuer's path.
        let url = format!("{}/.well-known/ssf-configuration{issuer_path}", app.base);
        let response = app.http.get(&url).send().await.expect("metadata");
        assert_eq!(response.status().as_u16(), 200);
        let metadata: Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
        assert_eq!(metadata["issuer"], format!("{}{issuer_path}", app.base));
        SsfReceiver {
            http: app.http.clone(),
            token: token.to_owned(),
            metadata,
        }
    }

    fn endpoint(&self, name: &str) -> String {
        self.metadata[name]
            .as_str()
            .unwrap_or_else(|| panic!("metadata lacks {name}"))
            .to_owned()
    }

    async fn send(&self, method: &str, url: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("sent");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let text = response.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }

    async fn poll(&self, poll_url: &str, body: Value) -> Value {
        let (status, answer) = self.send("POST", poll_url, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// Verifies every SET of a poll answer against the JWKS with `jsonwebtoken` and returns the
    /// claims by jti.
    async fn verify_all(&self, answer: &Value, audience: &str) -> BTreeMap<String, Value> {
        let text = self
            .http
            .get(self.endpoint("jwks_uri"))
            .send()
            .await
            .expect("jwks")
            .text()
            .await
            .expect("body");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).expect("JWKS");
        let mut claims_by_jti = BTreeMap::new();
        for (jti, token) in answer["sets"].as_object().expect("sets") {
            let token = token.as_str().expect("a SET is a compact JWS");
            let header = jsonwebtoken::decode_header(token).expect("header");
            // RFC 8417 §2.3: explicitly typed.
            assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
            assert!(
                [
                    jsonwebtoken::Algorithm::ES256,
                    jsonwebtoken::Algorithm::RS256
                ]
                .contains(&header.alg),
                "{:?}",
                header.alg
            );
            let kid = header.kid.expect("kid");
            let jwk = jwks.find(&kid).expect("the signing key is in the JWKS");
            let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
            let mut validation = jsonwebtoken::Validation::new(header.alg);
            validation.set_audience(&[audience]);
            validation.set_issuer(&[self.endpoint("issuer")]);
            validation.set_required_spec_claims(&["iss", "aud"]);
            let decoded =
                jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the SET verifies");
            assert_eq!(decoded.claims["jti"], json!(jti));
            assert!(decoded.claims["iat"].is_i64());
            assert_eq!(
                decoded.claims["events"].as_object().expect("events").len(),
                1,
                "one event per SET"
            );
            claims_by_jti.insert(jti.clone(), decoded.claims);
        }
        claims_by_jti
    }
}

fn event_types(claims: &BTreeMap<String, Value>) -> Vec<String> {
    let mut types: Vec<String> = claims
        .values()
        .flat_map(|claims| {
            claims["events"]
                .as_object()
                .expect("events")
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    types.sort();
    types
}

/// One step of the SSF worker (background work is off in tests): SETs from the log, due pushes.
async fn ssf_step(app: &TestApp) -> herald_delivery::ssf::SsfStep {
    app.server.ssf.run_once().await.expect("SSF worker step")
}

async fn new_receiver(app: &TestApp, tenant: &str, key: &str, body: Value) -> String {
    let (status, receiver) = app
        .call(
            "POST",
            &format!("/v1/tenants/{tenant}/ssf/receivers"),
            Some(key),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{receiver}");
    receiver["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_receiver_discovers_streams_verifies_and_receives_signed_caep_and_risc_events() {
    receiver_journey(&TestApp::spawn().await).await;
}

/// The same journey on PostgreSQL (the server of tests/it/cluster.rs), in a database of its own.
#[tokio::test]
async fn a_receiver_journey_on_postgresql() {
    let database = FreshPostgres::create("herald_ssf").await;
    let app = database.spawn().await;
    receiver_journey(&app).await;
    app.stop().await;
    database.remove().await;
}

async fn receiver_journey(app: &TestApp) {
    let acme_key = app.tenant("acme").await;
    let token = new_receiver(app, "acme", &acme_key, json!({"name": "relying party"})).await;
    let receiver = SsfReceiver::discover(app, "/ssf/acme", &token).await;
    assert_eq!(
        receiver.metadata["delivery_methods_supported"],
        json!(["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"])
    );
    assert_eq!(receiver.metadata["spec_version"], "1_0");

    // Create a poll stream asking for three event types and one Herald does not send.
    let streams_url = receiver.endpoint("configuration_endpoint");
    let requested = [
        format!("{RISC}account-disabled"),
        format!("{CAEP}session-revoked"),
        format!("{CAEP}credential-change"),
        "https://example.com/not-an-ssf-event".to_owned(),
    ];
    let (status, stream) = receiver
        .send("POST", &streams_url, Some(json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": requested, "description": "sessions"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().expect("stream_id").to_owned();
    let audience = stream["aud"].as_str().expect("aud").to_owned();
    let poll_url = stream["delivery"]["endpoint_url"]
        .as_str()
        .expect("endpoint_url")
        .to_owned();
    assert_eq!(stream["iss"], receiver.endpoint("issuer"));
    assert_eq!(stream["events_delivered"], json!(requested[..3]));
    assert!(
        stream["events_supported"]
            .as_array()
            .expect("supported")
            .contains(&json!(format!("{RISC}account-purged")))
    );

    // A push stream whose URL points into a private network is refused with 400.
    let (status, refused) = receiver
        .send("POST", &streams_url, Some(json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "http://169.254.169.254/latest/meta-data"}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/delivery/endpoint_url"),
        "{refused}"
    );

    // Subjects: the Authgear user by email, the others by iss_sub.
    let issuer = receiver.endpoint("issuer");
    let add_url = receiver.endpoint("add_subject_endpoint");
    for subject in [
        json!({"format": "email", "email": "ada.lovelace@EXAMPLE.com"}),
        json!({"format": "iss_sub", "iss": issuer, "sub": ASGARDEO_USER}),
        json!({"format": "iss_sub", "iss": issuer, "sub": ONEWELCOME_USER}),
    ] {
        let (status, answer) = receiver
            .send(
                "POST",
                &add_url,
                Some(json!({"stream_id": stream_id, "subject": subject})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, answer) = receiver
        .send("POST", &add_url, Some(json!({"stream_id": stream_id, "subject": {"format": "phone_number", "phone_number": "555"}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/subject/phone_number"),
        "{answer}"
    );

    // Verification.
    let (status, answer) = receiver
        .send(
            "POST",
            &receiver.endpoint("verification_endpoint"),
            Some(json!({"stream_id": stream_id, "state": "VGhpcyBpcyBhbiBleGFtcGxl"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");

    // One event of each vendor that the stream wants, one for a user it did not add, one of a
    // type with no SSF counterpart, one OneWelcome device event it did not add the user of.
    for event in [
        authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000001"),
        asgardeo_session_revoked("0b7c2a40-0000-4000-8000-000000000002"),
        onewelcome(
            "0b7c2a40-0000-4000-8000-000000000003",
            "PasswordUpdatedEvent",
            ONEWELCOME_USER,
        ),
        onewelcome(
            "0b7c2a40-0000-4000-8000-000000000004",
            "PasswordUpdatedEvent",
            "9d0c2f1a-6b8e-4c37-5c2d-8f3e7a414b6e",
        ),
        onewelcome(
            "0b7c2a40-0000-4000-8000-000000000005",
            "IdentityCreatedEvent",
            ONEWELCOME_USER,
        ),
    ] {
        app.publish("acme", &acme_key, &event).await;
    }
    ssf_step(app).await;

    let answer = receiver
        .poll(&poll_url, json!({"returnImmediately": true}))
        .await;
    assert_eq!(answer["moreAvailable"], false);
    let claims = receiver.verify_all(&answer, &audience).await;
    assert_eq!(
        event_types(&claims),
        [
            format!("{CAEP}credential-change"),
            format!("{CAEP}session-revoked"),
            format!("{RISC}account-disabled"),
            VERIFICATION.to_owned()
        ]
    );
    for set in claims.values() {
        let (event_type, event) = set["events"]
            .as_object()
            .expect("events")
            .iter()
            .next()
            .expect("one");
        match event_type.as_str() {
            VERIFICATION => {
                assert_eq!(event["state"], "VGhpcyBpcyBhbiBleGFtcGxl");
                assert_eq!(set["sub_id"], json!({"format": "opaque", "id": stream_id}));
            }
            uri if uri.ends_with("account-disabled") => {
                assert_eq!(
                    set["sub_id"],
                    json!({"format": "iss_sub", "iss": issuer, "sub": AUTHGEAR_USER})
                );
                assert_eq!(set["txn"], "0b7c2a40-0000-4000-8000-000000000001");
            }
            uri if uri.ends_with("session-revoked") => {
                assert_eq!(set["sub_id"]["sub"], ASGARDEO_USER);
                assert!(event["event_timestamp"].is_i64(), "{event}");
            }
            uri if uri.ends_with("credential-change") => {
                assert_eq!(set["sub_id"]["sub"], ONEWELCOME_USER);
                assert_eq!(event["credential_type"], "password");
                assert_eq!(event["change_type"], "update");
            }
            other => panic!("unexpected {other}"),
        }
    }

    // Unacknowledged SETs come again; maxEvents bounds an answer and says more are there.
    let again = receiver
        .poll(
            &poll_url,
            json!({"returnImmediately": true, "maxEvents": 1}),
        )
        .await;
    assert_eq!(again["sets"].as_object().expect("sets").len(), 1);
    assert_eq!(again["moreAvailable"], true);
    let jtis: Vec<String> = claims.keys().cloned().collect();
    let (first, rest) = jtis.split_at(1);
    let set_errs = json!({ first[0].clone(): {"err": "invalid_key", "description": "test"} });
    let acknowledged = receiver
        .poll(
            &poll_url,
            json!({"ack": rest, "setErrs": set_errs, "returnImmediately": true}),
        )
        .await;
    assert_eq!(
        acknowledged["sets"],
        json!({}),
        "acknowledged and reported SETs are gone"
    );

    // A long poll is answered as soon as a SET is queued.
    let long_poll = {
        let (http, token, url) = (receiver.http.clone(), token.clone(), poll_url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("poll");
            let answer: Value =
                serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
            (answer, started.elapsed())
        })
    };
    // Published once the poll is waiting, so the answer proves the SET woke it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while herald_api::routes::ssf::long_polls_waiting() == 0 {
        assert!(
            Instant::now() < deadline,
            "the long poll never started waiting"
        );
        tokio::task::yield_now().await;
    }
    app.publish(
        "acme",
        &acme_key,
        &onewelcome(
            "0b7c2a40-0000-4000-8000-000000000006",
            "UserDeviceRegisteredEvent",
            ONEWELCOME_USER,
        ),
    )
    .await;
    ssf_step(app).await;
    let (answer, waited) = tokio::time::timeout(Duration::from_secs(15), long_poll)
        .await
        .expect("answered")
        .expect("task");
    assert!(
        waited < Duration::from_secs(10),
        "woken by the SET, not by the poll's deadline: {waited:?}"
    );
    let claims = receiver.verify_all(&answer, &audience).await;
    let device = claims.values().next().expect("one SET");
    assert_eq!(
        device["events"][format!("{CAEP}credential-change")]["change_type"],
        "create"
    );
    let jtis: Vec<String> = claims.keys().cloned().collect();
    receiver
        .poll(&poll_url, json!({"ack": jtis, "maxEvents": 0}))
        .await;

    // Paused: SETs are kept, not handed out, until the stream is enabled again.
    let status_url = receiver.endpoint("status_endpoint");
    let (status, answer) = receiver
        .send(
            "POST",
            &status_url,
            Some(json!({"stream_id": stream_id, "status": "paused", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"stream_id": stream_id, "status": "paused", "reason": "maintenance"})
    );
    app.publish(
        "acme",
        &acme_key,
        &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000007"),
    )
    .await;
    assert_eq!(
        ssf_step(app).await.n_sets_queued,
        1,
        "a paused stream keeps its SETs"
    );
    let paused = receiver
        .poll(&poll_url, json!({"returnImmediately": true}))
        .await;
    assert_eq!(paused["sets"], json!({}));
    let (status, _) = receiver
        .send(
            "POST",
            &status_url,
            Some(json!({"stream_id": stream_id, "status": "enabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let resumed = receiver
        .poll(&poll_url, json!({"returnImmediately": true}))
        .await;
    assert_eq!(
        event_types(&receiver.verify_all(&resumed, &audience).await),
        [format!("{RISC}account-disabled")]
    );

    // Disabled: what was queued is dropped and nothing new is kept.
    let (status, _) = receiver
        .send(
            "POST",
            &status_url,
            Some(json!({"stream_id": stream_id, "status": "disabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.publish(
        "acme",
        &acme_key,
        &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000008"),
    )
    .await;
    ssf_step(app).await;
    let (status, _) = receiver
        .send(
            "POST",
            &status_url,
            Some(json!({"stream_id": stream_id, "status": "enabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ssf_step(app).await.n_sets_queued,
        0,
        "events published while disabled are dropped"
    );
    let after_disable = receiver
        .poll(&poll_url, json!({"returnImmediately": true}))
        .await;
    assert_eq!(after_disable["sets"], json!({}));
}

#[tokio::test]
async fn stream_management_follows_the_ssf_status_codes_and_keeps_tenants_apart() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let other_key = app.tenant("other").await;
    let token = new_receiver(&app, "acme", &acme_key, json!({})).await;
    let other_token = new_receiver(&app, "other", &other_key, json!({})).await;
    let receiver = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let streams_url = receiver.endpoint("configuration_endpoint");

    let (status, stream) = receiver
        .send(
            "POST",
            &streams_url,
            Some(json!({"events_requested": [format!("{RISC}account-disabled")]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().expect("id").to_owned();

    // Read one and all.
    let (status, one) = receiver
        .send("GET", &format!("{streams_url}?stream_id={stream_id}"), None)
        .await;
    assert_eq!(
        (status, &one["stream_id"]),
        (StatusCode::OK, &json!(stream_id))
    );
    let (status, all) = receiver.send("GET", &streams_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().expect("array").len(), 1);
    // Update keeps what was not sent; replace resets it.
    let (status, updated) = receiver
        .send(
            "PATCH",
            &streams_url,
            Some(json!({"stream_id": stream_id, "description": "d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["events_requested"],
        json!([format!("{RISC}account-disabled")])
    );
    assert_eq!(updated["description"], "d");
    let (status, replaced) = receiver.send("PUT", &streams_url, Some(json!({"stream_id": stream_id, "events_requested": [format!("{CAEP}session-revoked")]}))).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(
        replaced["events_delivered"],
        json!([format!("{CAEP}session-revoked")])
    );
    assert!(replaced.get("description").is_none(), "{replaced}");
    // All subjects needs the tenant's leave.
    let (status, answer) = receiver
        .send(
            "PATCH",
            &streams_url,
            Some(json!({"stream_id": stream_id, "all_subjects": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    // Removing a subject the stream does not hold: 404; holding it: 204.
    let subject = json!({"format": "opaque", "id": "u-1"});
    let remove_url = receiver.endpoint("remove_subject_endpoint");
    let (status, _) = receiver
        .send(
            "POST",
            &remove_url,
            Some(json!({"stream_id": stream_id, "subject": subject})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = receiver
        .send(
            "POST",
            &receiver.endpoint("add_subject_endpoint"),
            Some(json!({"stream_id": stream_id, "subject": subject})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = receiver
        .send(
            "POST",
            &remove_url,
            Some(json!({"stream_id": stream_id, "subject": subject})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // min_verification_interval: a second verification too soon is 429.
    let verify_url = receiver.endpoint("verification_endpoint");
    receiver
        .send(
            "PATCH",
            &streams_url,
            Some(json!({"stream_id": stream_id, "min_verification_interval": 3600})),
        )
        .await;
    let (status, _) = receiver
        .send("POST", &verify_url, Some(json!({"stream_id": stream_id})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = receiver
        .send("POST", &verify_url, Some(json!({"stream_id": stream_id})))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Nobody else reaches the stream: no token, the tenant's API key, another tenant's receiver.
    let status_url = format!(
        "{}?stream_id={stream_id}",
        receiver.endpoint("status_endpoint")
    );
    for credential in [
        None,
        Some(acme_key.as_str()),
        Some(other_token.as_str()),
        Some("hssf_guess"),
    ] {
        let mut request = app.http.get(&status_url);
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 401, "{credential:?}");
    }
    let other_receiver = SsfReceiver {
        http: app.http.clone(),
        token: other_token.clone(),
        metadata: receiver.metadata.clone(),
    };
    let (status, _) = other_receiver
        .send(
            "GET",
            &format!(
                "{}/ssf/other/streams/status?stream_id={stream_id}",
                app.base
            ),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's receiver does not see the stream"
    );
    let (status, _) = app
        .call(
            "GET",
            "/.well-known/ssf-configuration/ssf/nobody",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete: 204, then 404.
    let (status, _) = receiver
        .send(
            "DELETE",
            &format!("{streams_url}?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = receiver
        .send(
            "DELETE",
            &format!("{streams_url}?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn key_rotation_keeps_the_old_key_published_for_the_overlap() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let (status, first) = app
        .call("POST", "/v1/tenants/acme/ssf/keys", Some(&acme_key), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["public_jwk"]["crv"], "P-256");
    assert!(first["public_jwk"].get("d").is_none(), "no private part");
    let (status, second) = app
        .call(
            "POST",
            "/v1/tenants/acme/ssf/keys",
            Some(&acme_key),
            Some(&json!({"alg": "RS256"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["public_jwk"]["kty"], "RSA");
    let (status, refused) = app
        .call(
            "POST",
            "/v1/tenants/acme/ssf/keys",
            Some(&acme_key),
            Some(&json!({"alg": "HS256"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|key| key["kid"].as_str().expect("kid").to_owned())
            .collect()
    };
    let (_, jwks) = app.call("GET", "/ssf/acme/jwks.json", None, None).await;
    assert_eq!(
        kids(&jwks),
        [
            second["kid"].as_str().expect("kid"),
            first["kid"].as_str().expect("kid")
        ]
    );
    let (_, listed) = app
        .call("GET", "/v1/tenants/acme/ssf/keys", Some(&acme_key), None)
        .await;
    assert!(listed["data"][1]["retired_at"].is_string(), "{listed}");
    app.advance(Duration::from_secs(25 * 3600));
    let (_, jwks) = app.call("GET", "/ssf/acme/jwks.json", None, None).await;
    assert_eq!(
        kids(&jwks),
        [second["kid"].as_str().expect("kid")],
        "the retired key is gone after the overlap"
    );

    // SETs are now signed with the RS256 key, and verify against the JWKS.
    let token = new_receiver(&app, "acme", &acme_key, json!({})).await;
    let receiver = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let (status, stream) = receiver
        .send(
            "POST",
            &receiver.endpoint("configuration_endpoint"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().expect("id");
    let (status, _) = receiver
        .send(
            "POST",
            &receiver.endpoint("verification_endpoint"),
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let poll_url = stream["delivery"]["endpoint_url"].as_str().expect("url");
    let answer = receiver
        .poll(poll_url, json!({"returnImmediately": true}))
        .await;
    let token = answer["sets"]
        .as_object()
        .expect("sets")
        .values()
        .next()
        .expect("one SET");
    let header = jsonwebtoken::decode_header(token.as_str().expect("JWS")).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), second["kid"].as_str());
    let claims = receiver
        .verify_all(&answer, stream["aud"].as_str().expect("aud"))
        .await;
    assert_eq!(event_types(&claims), [VERIFICATION]);
}

/// Verifies one pushed SET with `jsonwebtoken` against the JWKS and returns its claims.
async fn verify_pushed(app: &TestApp, token: &str, audience: &str) -> Value {
    let text = app
        .http
        .get(format!("{}/ssf/acme/jwks.json", app.base))
        .send()
        .await
        .expect("jwks")
        .text()
        .await
        .expect("body");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let jwk = jwks.find(&header.kid.expect("kid")).expect("published key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("verifies")
    .claims
}

#[tokio::test]
async fn a_push_stream_gets_sets_in_order_retried_until_accepted_and_rejected_ones_dropped() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let token = new_receiver(&app, "acme", &acme_key, json!({})).await;
    let ssf = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let mut push_receiver = Receiver::start().await;
    // RFC 8935: 202 accepts; a 503 is retried (after its Retry-After); a 400 rejects that SET.
    push_receiver.script([
        Reply::WithHeaders(503, vec![("retry-after", "120".to_owned())]),
        Reply::Status(202),
        Reply::Status(400),
        Reply::Status(202),
    ]);
    let push_url = push_receiver.url("/ssf/events");
    let (status, stream) = ssf
        .send(
            "POST",
            &ssf.endpoint("configuration_endpoint"),
            Some(json!({
                "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": push_url, "authorization_header": "Bearer rp-secret"},
                "events_requested": [format!("{RISC}account-disabled"), format!("{CAEP}credential-change")]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    assert_eq!(
        stream["delivery"],
        json!({"method": "urn:ietf:rfc:8935", "endpoint_url": push_url})
    );
    let stream_id = stream["stream_id"].as_str().expect("id").to_owned();
    let audience = stream["aud"].as_str().expect("aud").to_owned();
    let issuer = ssf.endpoint("issuer");
    let (status, _) = ssf
        .send("POST", &ssf.endpoint("add_subject_endpoint"), Some(json!({"stream_id": stream_id, "subject": {"format": "iss_sub", "iss": issuer, "sub": ONEWELCOME_USER}})))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The verification SET: refused once with 503 and Retry-After 120, pushed again only then.
    let (status, _) = ssf
        .send(
            "POST",
            &ssf.endpoint("verification_endpoint"),
            Some(json!({"stream_id": stream_id, "state": "s1"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ssf_step(&app).await.n_pushes, 1);
    let first = push_receiver.next().await;
    app.advance(Duration::from_secs(60));
    assert_eq!(
        ssf_step(&app).await.n_pushes,
        0,
        "the receiver's Retry-After is honoured"
    );
    app.advance(Duration::from_secs(61));
    assert_eq!(ssf_step(&app).await.n_pushes, 1);
    let second = push_receiver.next().await;
    assert_eq!(
        first.body, second.body,
        "the same SET is pushed again after a 503"
    );
    assert_eq!(second.header("content-type"), "application/secevent+jwt");
    assert_eq!(second.header("authorization"), "Bearer rp-secret");
    let verification = verify_pushed(
        &app,
        std::str::from_utf8(&second.body).expect("text"),
        &audience,
    )
    .await;
    assert_eq!(verification["events"][VERIFICATION]["state"], "s1");

    // Two events: the receiver rejects the first (400) and accepts the second, in that order.
    for (event_id, event_type) in [
        (
            "0b7c2a40-0000-4000-8000-000000000011",
            "PasswordUpdatedEvent",
        ),
        (
            "0b7c2a40-0000-4000-8000-000000000012",
            "UserDeviceDeregisteredEvent",
        ),
    ] {
        app.publish(
            "acme",
            &acme_key,
            &onewelcome(event_id, event_type, ONEWELCOME_USER),
        )
        .await;
    }
    let step = ssf_step(&app).await;
    assert_eq!((step.n_sets_queued, step.n_pushes), (2, 1), "one at a time");
    assert_eq!(ssf_step(&app).await.n_pushes, 1);
    let rejected = push_receiver.next().await;
    let accepted = push_receiver.next().await;
    let rejected = verify_pushed(
        &app,
        std::str::from_utf8(&rejected.body).expect("text"),
        &audience,
    )
    .await;
    let accepted = verify_pushed(
        &app,
        std::str::from_utf8(&accepted.body).expect("text"),
        &audience,
    )
    .await;
    assert_eq!(rejected["txn"], "0b7c2a40-0000-4000-8000-000000000011");
    assert_eq!(accepted["txn"], "0b7c2a40-0000-4000-8000-000000000012");
    assert_eq!(
        accepted["events"][format!("{CAEP}credential-change")]["change_type"],
        "delete"
    );
    assert_eq!(ssf_step(&app).await, Default::default(), "nothing left");
    assert!(
        push_receiver
            .next_within(Duration::from_millis(100))
            .await
            .is_none(),
        "the rejected SET is not pushed again"
    );

    // Every attempt is recorded, newest first, for the tenant only.
    let attempts = app
        .get(
            &format!("/v1/tenants/acme/ssf/streams/{stream_id}/attempts"),
            &acme_key,
        )
        .await;
    let outcomes: Vec<(Value, Value)> = attempts["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|attempt| (attempt["outcome"].clone(), attempt["status_code"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!("accepted"), json!(202)),
            (json!("rejected"), json!(400)),
            (json!("accepted"), json!(202)),
            (json!("retry"), json!(503)),
        ]
    );
    assert_eq!(attempts["data"][1]["error"], "(no error code)");
    assert!(attempts["data"][3]["next_attempt_at"].is_string());
    let other_key = app.tenant("other").await;
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/tenants/other/ssf/streams/{stream_id}/attempts"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Attempts expire with the retention period, like events.
    app.advance(Duration::from_secs(31 * 24 * 3600));
    let clock: std::sync::Arc<dyn herald_core::clock::Clock> = app.clock.clone();
    herald::server::run_retention_once(&app.server.store, &clock, 30)
        .await
        .expect("retention");
    let attempts = app
        .get(
            &format!("/v1/tenants/acme/ssf/streams/{stream_id}/attempts"),
            &acme_key,
        )
        .await;
    assert_eq!(attempts["data"], json!([]), "{attempts}");

    // A push stream cannot be polled: its SETs are Herald's to push, in order.
    let (status, answer) = ssf
        .send(
            "POST",
            &format!("{issuer}/streams/poll/{stream_id}"),
            Some(json!({"returnImmediately": true})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// Issue 14's durability promise: events published while no SSF worker runs (a crash between
/// the publish and the fan-out, a node that stopped) still become SETs once a worker step runs,
/// exactly once; and a stream made later starts at the log's end.
#[tokio::test]
async fn events_published_while_no_worker_runs_become_sets_once_a_worker_runs() {
    let directory = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn_in(directory, |_| {}).await;
    let acme_key = app.tenant("acme").await;
    let token = new_receiver(
        &app,
        "acme",
        &acme_key,
        json!({"may_receive_all_subjects": true}),
    )
    .await;
    let receiver = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let (status, stream) = receiver
        .send(
            "POST",
            &receiver.endpoint("configuration_endpoint"),
            Some(json!({"events_requested": [format!("{RISC}account-disabled")], "all_subjects": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    // The restarted server listens on another port: the poll URL's path stays.
    let poll_path = stream["delivery"]["endpoint_url"]
        .as_str()
        .expect("url")
        .strip_prefix(&app.base)
        .expect("on this server")
        .to_owned();
    let audience = stream["aud"].as_str().expect("aud").to_owned();
    app.publish(
        "acme",
        &acme_key,
        &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000021"),
    )
    .await;
    // The server stops before any worker step: nothing was turned into a SET yet.
    let directory = app.stop().await;
    let app = TestApp::spawn_in(directory, |_| {}).await;
    let poll_url = format!("{}{poll_path}", app.base);
    app.publish(
        "acme",
        &acme_key,
        &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000022"),
    )
    .await;
    let nothing = receiver_poll(&app, &token, &poll_url).await;
    assert_eq!(nothing["sets"], json!({}), "no SET before the worker runs");

    assert_eq!(ssf_step(&app).await.n_sets_queued, 2);
    assert_eq!(ssf_step(&app).await.n_sets_queued, 0, "each event once");
    let answer = receiver_poll(&app, &token, &poll_url).await;
    let mut txns = Vec::new();
    for set in answer["sets"].as_object().expect("sets").values() {
        let claims = verify_pushed(&app, set.as_str().expect("JWS"), &audience).await;
        txns.push(claims["txn"].as_str().expect("txn").to_owned());
    }
    txns.sort_unstable();
    assert_eq!(
        txns,
        [
            "0b7c2a40-0000-4000-8000-000000000021",
            "0b7c2a40-0000-4000-8000-000000000022"
        ]
    );

    // A stream created now does not get the tenant's history.
    let receiver = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let (status, later) = receiver
        .send(
            "POST",
            &receiver.endpoint("configuration_endpoint"),
            Some(json!({"events_requested": [format!("{RISC}account-disabled")], "all_subjects": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_eq!(ssf_step(&app).await.n_sets_queued, 0);
    let later_poll = later["delivery"]["endpoint_url"].as_str().expect("url");
    let answer = receiver_poll(&app, &token, later_poll).await;
    assert_eq!(answer["sets"], json!({}));
}

/// A `returnImmediately` poll, as any receiver sends it.
async fn receiver_poll(app: &TestApp, token: &str, poll_url: &str) -> Value {
    let response = app
        .http
        .post(poll_url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(json!({"returnImmediately": true}).to_string())
        .send()
        .await
        .expect("poll");
    assert_eq!(response.status().as_u16(), 200);
    serde_json::from_str(&response.text().await.expect("body")).expect("JSON")
}

/// The issuer comes from `--public-url` whatever Host a caller sends; without it, only a loopback
/// Host may name it (development), since a caller's Host would otherwise become the SETs' issuer.
#[tokio::test]
async fn the_issuer_comes_from_the_public_url_and_a_foreign_host_is_not_trusted() {
    let metadata = |app: &TestApp, host: &'static str| {
        let request = app
            .http
            .get(format!(
                "{}/.well-known/ssf-configuration/ssf/acme",
                app.base
            ))
            .header("host", host);
        async move {
            let response = request.send().await.expect("metadata");
            let status = response.status().as_u16();
            let body: Value =
                serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
            (status, body)
        }
    };
    let configured = TestApp::spawn_with(|options| {
        options.settings.public_url = Some("https://herald.example.com".to_owned());
    })
    .await;
    configured.tenant("acme").await;
    for host in ["evil.example", "localhost"] {
        let (status, body) = metadata(&configured, host).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["issuer"], "https://herald.example.com/ssf/acme");
        assert_eq!(
            body["jwks_uri"],
            "https://herald.example.com/ssf/acme/jwks.json"
        );
    }

    let unconfigured = TestApp::spawn().await;
    unconfigured.tenant("acme").await;
    let (status, body) = metadata(&unconfigured, "evil.example").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("--public-url")),
        "{body}"
    );
    let (status, body) = metadata(&unconfigured, "localhost:8470").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issuer"], "http://localhost:8470/ssf/acme");
}

/// Two nodes on one PostgreSQL database: a long poll waiting on one node is answered as soon as
/// the other node's worker queues a SET, through `NOTIFY herald_changes, 'ssf:<stream>'`.
#[tokio::test]
async fn a_long_poll_on_one_node_is_woken_by_sets_queued_on_another() {
    let database = FreshPostgres::create("herald_ssf_nodes").await;
    let node_a = database.spawn().await;
    let node_b = database.spawn().await;

    let acme_key = node_a.tenant("acme").await;
    let token = new_receiver(
        &node_a,
        "acme",
        &acme_key,
        json!({"may_receive_all_subjects": true}),
    )
    .await;
    let receiver = SsfReceiver::discover(&node_a, "/ssf/acme", &token).await;
    let (status, stream) = receiver
        .send(
            "POST",
            &receiver.endpoint("configuration_endpoint"),
            Some(json!({"events_requested": [format!("{RISC}account-disabled")], "all_subjects": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let poll_path = stream["delivery"]["endpoint_url"]
        .as_str()
        .expect("url")
        .strip_prefix(&node_a.base)
        .expect("on node A")
        .to_owned();

    // The long poll waits on node B.
    let waiting_before = herald_api::routes::ssf::long_polls_waiting();
    let long_poll = {
        let (http, token, url) = (
            node_b.http.clone(),
            token.clone(),
            format!("{}{poll_path}", node_b.base),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("poll");
            let answer: Value =
                serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
            (answer, started.elapsed())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while herald_api::routes::ssf::long_polls_waiting() <= waiting_before {
        assert!(
            Instant::now() < deadline,
            "the long poll never started waiting"
        );
        tokio::task::yield_now().await;
    }

    // Published on node A, and turned into a SET by node A's worker.
    node_a
        .publish(
            "acme",
            &acme_key,
            &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000031"),
        )
        .await;
    assert_eq!(ssf_step(&node_a).await.n_sets_queued, 1);
    let (answer, waited) = tokio::time::timeout(Duration::from_secs(25), long_poll)
        .await
        .expect("answered")
        .expect("task");
    assert!(
        waited < Duration::from_secs(10),
        "woken by node A's SET, not by the poll's deadline: {waited:?}"
    );
    assert_eq!(
        answer["sets"].as_object().map(serde_json::Map::len),
        Some(1),
        "{answer}"
    );

    node_b.stop().await;
    node_a.stop().await;
    database.remove().await;
}

/// `herald serve` runs the SSF worker beside the dispatcher: with background work on, a publish
/// reaches a waiting long poll with no step driven by the test, and shutdown stops the worker.
#[tokio::test]
async fn the_server_runs_the_ssf_worker_and_stops_it_at_shutdown() {
    let app = TestApp::spawn_with(|options| options.run_background_work = true).await;
    let acme_key = app.tenant("acme").await;
    let token = new_receiver(
        &app,
        "acme",
        &acme_key,
        json!({"may_receive_all_subjects": true}),
    )
    .await;
    let receiver = SsfReceiver::discover(&app, "/ssf/acme", &token).await;
    let (status, stream) = receiver
        .send(
            "POST",
            &receiver.endpoint("configuration_endpoint"),
            Some(json!({"events_requested": [format!("{RISC}account-disabled")], "all_subjects": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let poll_url = stream["delivery"]["endpoint_url"]
        .as_str()
        .expect("url")
        .to_owned();
    app.publish(
        "acme",
        &acme_key,
        &authgear_user_disabled("0b7c2a40-0000-4000-8000-000000000041"),
    )
    .await;
    // A long poll (no returnImmediately): answered once the background worker queued the SET.
    let started = Instant::now();
    let answer = receiver.poll(&poll_url, json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the worker queued the SET promptly"
    );
    assert_eq!(
        answer["sets"].as_object().map(serde_json::Map::len),
        Some(1),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("shutdown stops the SSF worker too");
}
