//! Standard Webhooks `v1a` (Ed25519) endpoint signatures over real HTTP, and `herald ssf`.
//!
//! The receiver here verifies like a consumer that knows only the spec: it takes the `whpk_` key
//! (or the JWKS's OKP key) the tenant published, builds an `ed25519-dalek` `VerifyingKey` from it
//! (Herald signs with `ring`, so the two sides share no Ed25519 code), and checks each `v1a,`
//! entry of `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde_json::{Value, json};

use crate::support::postgres::FreshPostgres;
use crate::support::{Received, Receiver, TestApp};

fn user_created(event_id: &str) -> Value {
    json!({"id": event_id, "type": "UserCreatedEvent", "payload": {"userId": "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37"}})
}

/// A consumer's trust list entry, read from a `whpk_` key.
fn key_from_whpk(whpk: &str) -> VerifyingKey {
    let bytes: [u8; 32] = STANDARD
        .decode(whpk.strip_prefix("whpk_").expect("whpk_ prefix"))
        .expect("standard base64")
        .try_into()
        .expect("32 bytes");
    VerifyingKey::from_bytes(&bytes).expect("an Ed25519 point")
}

/// The same key read from an RFC 8037 OKP JWK.
fn key_from_jwk(jwk: &Value) -> VerifyingKey {
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519")),
        "{jwk}"
    );
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().expect("x"))
        .expect("base64url")
        .try_into()
        .expect("32 bytes");
    VerifyingKey::from_bytes(&bytes).expect("an Ed25519 point")
}

/// The `v1a` entries of the delivery's `webhook-signature`, decoded.
fn v1a_signatures(delivery: &Received) -> Vec<Signature> {
    delivery
        .header("webhook-signature")
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1a,"))
        .map(|encoded| {
            Signature::from_slice(&STANDARD.decode(encoded).expect("base64")).expect("64 bytes")
        })
        .collect()
}

/// Whether a consumer trusting only `trusted` accepts the delivery.
fn verifies(delivery: &Received, trusted: &VerifyingKey) -> bool {
    let mut content = format!(
        "{}.{}.",
        delivery.header("webhook-id"),
        delivery.header("webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(&delivery.body);
    v1a_signatures(delivery)
        .iter()
        .any(|signature| trusted.verify(&content, signature).is_ok())
}

async fn new_key(app: &TestApp, key: &str, alg: &str) -> Value {
    let (status, created) = app
        .call(
            "POST",
            "/v1/tenants/acme/ssf/keys",
            Some(key),
            Some(&json!({"alg": alg})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let (status, set) = app.call("GET", "/ssf/acme/jwks.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    set["keys"].as_array().expect("keys").clone()
}

/// Publishes one event and hands back its delivery as the receiver got it.
async fn deliver_one(
    app: &TestApp,
    key: &str,
    receiver: &mut Receiver,
    event_id: &str,
) -> Received {
    app.publish("acme", key, &user_created(event_id)).await;
    assert_eq!(app.deliver().await, 1);
    let delivery = receiver.next().await;
    assert_eq!(delivery.header("webhook-id"), event_id);
    delivery
}

#[tokio::test]
async fn v1a_deliveries_verify_with_the_published_key_across_a_rotation() {
    rotation_journey(&TestApp::spawn().await).await;
}

/// The same on PostgreSQL (the server of tests/it/cluster.rs), in a database of its own.
#[tokio::test]
async fn v1a_across_a_rotation_on_postgresql() {
    let database = FreshPostgres::create("herald_v1a").await;
    let app = database.spawn().await;
    rotation_journey(&app).await;
    app.stop().await;
    database.remove().await;
}

async fn rotation_journey(app: &TestApp) {
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let endpoint =
        json!({"url": receiver.url("/hooks"), "filters": ["*"], "signature_scheme": "v1a"});

    // No Ed25519 key yet: a clear 422 naming the member and the fix.
    let (status, refused) = app
        .call(
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["errors"][0]["path"], "/signature_scheme",
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("no Ed25519 signing key")),
        "{refused}"
    );

    // The SET key and the webhook key are separate kinds: making one leaves the other signing.
    let set_key = new_key(app, &key, "ES256").await;
    let first = new_key(app, &key, "EdDSA").await;
    let first_kid = first["kid"].as_str().expect("kid").to_owned();
    assert_eq!(first["alg"], "EdDSA");
    let listed = app.get("/v1/tenants/acme/ssf/keys", &key).await;
    assert!(
        listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|key| key["retired_at"].is_null()),
        "{listed}"
    );

    let (status, created) = app
        .call(
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let endpoint_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["signature_scheme"], "v1a");
    let first_whpk = created["signature_public_keys"][0]
        .as_str()
        .expect("whpk_")
        .to_owned();
    assert_eq!(
        created["signature_public_keys"].as_array().map(Vec::len),
        Some(1)
    );

    // The JWKS publishes the same key as an OKP JWK, beside the ES256 SET key.
    let published = jwks(app).await;
    let okp = published
        .iter()
        .find(|jwk| jwk["kid"] == first_kid.as_str())
        .expect("in the JWKS");
    assert_eq!(okp["alg"], "EdDSA");
    assert_eq!(key_from_jwk(okp), key_from_whpk(&first_whpk));
    assert!(published.iter().any(|jwk| jwk["kid"] == set_key["kid"]));

    let old_key = key_from_whpk(&first_whpk);
    let delivery = deliver_one(app, &key, &mut receiver, "evt-v1a-1").await;
    assert!(
        !delivery.header("webhook-signature").contains("v1,"),
        "only v1a: {}",
        delivery.header("webhook-signature")
    );
    assert_eq!(v1a_signatures(&delivery).len(), 1);
    assert!(verifies(&delivery, &old_key));

    // Rotate: the new key signs, and the old one signs beside it for the overlap, so consumers
    // trusting either accept; the SET key is untouched.
    let second = new_key(app, &key, "EdDSA").await;
    let listed = app.get("/v1/tenants/acme/ssf/keys", &key).await;
    let retired_at = |kid: &Value| {
        listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|key| key["kid"] == *kid)
            .expect("listed")["retired_at"]
            .clone()
    };
    assert!(retired_at(&json!(first_kid)).is_string());
    assert!(retired_at(&second["kid"]).is_null());
    assert!(
        retired_at(&set_key["kid"]).is_null(),
        "the SET key still signs"
    );
    let shown = app
        .get(&format!("/v1/tenants/acme/endpoints/{endpoint_id}"), &key)
        .await;
    let trusted: Vec<&str> = shown["signature_public_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(trusted.len(), 2, "{shown}");
    assert_eq!(trusted[1], first_whpk, "newest first");
    let new_key_trusted = key_from_whpk(trusted[0]);
    let second_jwk = jwks(app)
        .await
        .into_iter()
        .find(|jwk| jwk["kid"] == second["kid"])
        .expect("published");
    assert_eq!(key_from_jwk(&second_jwk), new_key_trusted);

    let during = deliver_one(app, &key, &mut receiver, "evt-v1a-2").await;
    assert_eq!(v1a_signatures(&during).len(), 2);
    assert!(
        verifies(&during, &old_key),
        "a consumer still on the old key"
    );
    assert!(
        verifies(&during, &new_key_trusted),
        "a consumer already on the new key"
    );

    // After the overlap the old key neither signs nor is published.
    app.advance(Duration::from_secs(25 * 3600));
    assert!(
        !jwks(app)
            .await
            .iter()
            .any(|jwk| jwk["kid"] == first_kid.as_str())
    );
    let shown = app
        .get(&format!("/v1/tenants/acme/endpoints/{endpoint_id}"), &key)
        .await;
    assert_eq!(shown["signature_public_keys"], json!([trusted[0]]));
    let after = deliver_one(app, &key, &mut receiver, "evt-v1a-3").await;
    assert!(verifies(&after, &new_key_trusted));
    assert!(
        !verifies(&after, &old_key),
        "the retired key no longer vouches"
    );

    // A tampered body fails, as it must for any verifier.
    let mut tampered = after;
    tampered.body = axum::body::Bytes::from(
        String::from_utf8_lossy(&tampered.body).replace("UserCreated", "UserDeleted"),
    );
    assert!(!verifies(&tampered, &new_key_trusted));
}

#[tokio::test]
async fn v1a_plus_v1_serves_both_kinds_of_consumer_and_the_scheme_can_change() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    new_key(&app, &key, "EdDSA").await;
    let (endpoint_id, secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hooks"), "filters": ["*"], "signature_scheme": "v1a+v1", "format": "canonical"}),
        )
        .await;
    let shown = app
        .get(&format!("/v1/tenants/acme/endpoints/{endpoint_id}"), &key)
        .await;
    assert_eq!(shown["signature_scheme"], "v1a+v1");
    let whpk = shown["signature_public_keys"][0]
        .as_str()
        .expect("whpk_")
        .to_owned();

    let delivery = deliver_one(&app, &key, &mut receiver, "evt-both-1").await;
    // The official library checks the `v1` entry and skips the `v1a` one.
    standardwebhooks::Webhook::new(&secret)
        .expect("secret")
        .verify(&delivery.body, &delivery.headers)
        .expect("a v1 consumer still verifies");
    assert!(
        verifies(&delivery, &key_from_whpk(&whpk)),
        "and a v1a consumer too"
    );
    // So does `herald verify` given only the public key; another key is refused.
    let directory = tempfile::tempdir().expect("tempdir");
    let headers_file = directory.path().join("headers.txt");
    let body_file = directory.path().join("body.json");
    let headers_text: String = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|name| format!("{name}: {}\n", delivery.header(name)))
        .collect();
    std::fs::write(&headers_file, headers_text).expect("headers written");
    std::fs::write(&body_file, &delivery.body).expect("body written");
    let stranger = format!(
        "whpk_{}",
        STANDARD.encode(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .as_bytes()
        )
    );
    for (trusted, expected_ok) in [(&whpk, true), (&stranger, false)] {
        let (ok, out) = herald_cli(
            &app,
            &key,
            &[
                "verify",
                "--public-key",
                trusted,
                "--headers",
                headers_file.to_str().expect("path"),
                "--body",
                body_file.to_str().expect("path"),
                "--tolerance-s",
                "0",
            ],
        )
        .await;
        assert_eq!(ok, expected_ok, "{out}");
        assert!(out.contains("webhook-signature v1a: "), "{out}");
    }

    // Back to v1: no Ed25519 signature and no public keys shown.
    let (status, changed) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            Some(&key),
            Some(&json!({"signature_scheme": "v1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed.get("signature_public_keys").is_none(), "{changed}");
    let delivery = deliver_one(&app, &key, &mut receiver, "evt-both-2").await;
    assert!(v1a_signatures(&delivery).is_empty());

    // An unknown scheme is refused where it was given.
    let (status, refused) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            Some(&key),
            Some(&json!({"signature_scheme": "v1b"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["errors"][0]["path"], "/signature_scheme");
}

#[tokio::test]
async fn a_retired_ed25519_key_leaves_v1a_endpoints_refused_until_a_new_one() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let other_key = app.tenant("other").await;
    let created = new_key(&app, &key, "EdDSA").await;
    let kid = created["kid"].as_str().expect("kid").to_owned();

    // Another tenant cannot retire it: the key is absent for them.
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/tenants/other/ssf/keys/{kid}/retire"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, retired) = app
        .call(
            "POST",
            &format!("/v1/tenants/acme/ssf/keys/{kid}/retire"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_string(), "{retired}");

    let endpoint =
        json!({"url": "https://hooks.example.com/x", "filters": ["*"], "signature_scheme": "v1a"});
    let (status, refused) = app
        .call(
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    new_key(&app, &key, "EdDSA").await;
    let (status, created) = app
        .call(
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

// ---- herald ssf -------------------------------------------------------------------------------

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
async fn ssf_keys_receivers_and_streams_are_managed_from_the_command_line() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;

    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "ssf", "keys", "create", "--tenant", "acme", "--alg", "EdDSA",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).expect("JSON");
    let kid = created["kid"].as_str().expect("kid").to_owned();
    assert_eq!(created["public_jwk"]["kty"], "OKP");
    let (ok, out) = herald_cli(&app, &key, &["ssf", "keys", "create", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    // An endpoint that signs with it, from the command line too.
    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "endpoints",
            "create",
            "--tenant",
            "acme",
            "--url",
            "https://hooks.example.com/v1a",
            "--signature-scheme",
            "v1a",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let endpoint: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        key_from_whpk(
            endpoint["signature_public_keys"][0]
                .as_str()
                .expect("whpk_")
        ),
        key_from_jwk(&created["public_jwk"])
    );
    let endpoint_id = endpoint["id"].as_str().expect("id");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "endpoints",
            "update",
            "--tenant",
            "acme",
            endpoint_id,
            "--signature-scheme",
            "v1",
        ],
    )
    .await;
    assert!(ok && out.contains("\"signature_scheme\": \"v1\""), "{out}");
    let (ok, out) = herald_cli(&app, &key, &["ssf", "keys", "list", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines.iter().any(|line| line.starts_with(&kid)
            && line.contains("EdDSA")
            && line.ends_with("signing")),
        "{out}"
    );
    assert!(lines.iter().any(|line| line.contains("ES256")), "{out}");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["ssf", "keys", "retire", "--tenant", "acme", &kid],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.starts_with(&kid) && out.contains("retired "), "{out}");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["ssf", "keys", "retire", "--tenant", "acme", "sigkey_nope"],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(out.contains("404") || out.contains("not found"), "{out}");
    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "ssf", "keys", "create", "--tenant", "acme", "--alg", "HS256",
        ],
    )
    .await;
    assert!(!ok && out.contains("/alg"), "{out}");

    let (ok, out) = herald_cli(
        &app,
        &key,
        &[
            "ssf",
            "receivers",
            "create",
            "--tenant",
            "acme",
            "--name",
            "relying party",
            "--all-subjects",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let receiver: Value = serde_json::from_str(&out).expect("JSON");
    let token = receiver["token"]
        .as_str()
        .expect("token shown once")
        .to_owned();
    let receiver_id = receiver["id"].as_str().expect("id").to_owned();
    assert_eq!(receiver["may_receive_all_subjects"], true);
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["ssf", "receivers", "list", "--tenant", "acme"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&receiver_id) && out.contains("relying party") && out.contains("all subjects"),
        "{out}"
    );
    assert!(!out.contains(&token), "{out}");

    // The receiver makes a poll stream with its own token; the tenant looks at it.
    let (status, stream) = app
        .call(
            "POST",
            "/ssf/acme/streams",
            Some(&token),
            Some(&json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "description": "sessions"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().expect("stream_id").to_owned();
    let (ok, out) = herald_cli(&app, &key, &["ssf", "streams", "list", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&stream_id)
            && out.contains("enabled")
            && out.contains("urn:ietf:rfc:8936")
            && out.contains(&receiver_id),
        "{out}"
    );
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["ssf", "streams", "show", "--tenant", "acme", &stream_id],
    )
    .await;
    assert!(ok, "{out}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["stream_id"], stream_id.as_str());
    assert_eq!(shown["config"]["description"], "sessions");
    assert_eq!(shown["n_subjects"], 0);
    let (ok, out) = herald_cli(
        &app,
        &key,
        &["ssf", "streams", "show", "--tenant", "acme", "nope"],
    )
    .await;
    assert!(!ok, "{out}");
    let (ok, out) = herald_cli(&app, &key, &["ssf", "--help"]).await;
    assert!(
        ok && out.contains("keys") && out.contains("receivers") && out.contains("streams"),
        "{out}"
    );
}
