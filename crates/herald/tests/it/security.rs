//! Security guarantees, each checked end to end over real HTTP:
//!
//! - every route of the API (the table is checked against the OpenAPI document, so a new route
//!   cannot be left out): no key or a wrong key is 401, another tenant's key is 404, a tenant key
//!   on an admin route is 403;
//! - API keys are stored only as hashes;
//! - keys and signing secrets never appear in the logs, even at debug level;
//! - the SSRF guard: refused ranges at endpoint (and hook) creation with a 422, an allowlist that
//!   opens exactly its networks, and a name that resolves to loopback refused at delivery time.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::clock::Clock;
use herald_core::secret::hash_api_key;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, HeraldProcess, Receiver, TestApp};

const PROBLEM_BASE: &str = "https://herald.dev/problems/";
const ALICE: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";

fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}})
}

fn authgear_seed(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures/authgear/envelopes")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("seed")).expect("JSON")
}

// ---- every route: authentication and tenant isolation -------------------------------------------

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone: health, metrics and the API description.
    Public,
    /// The admin key only.
    Admin,
    /// The admin key, or a key of the tenant in the path.
    Tenant,
    /// No Herald key: a source's ingest URL, authenticated by its vendor's mechanism. Every
    /// Herald key, even the admin's, is refused there.
    Vendor,
}

struct Route {
    method: &'static str,
    /// As in the OpenAPI document: `{tenant}`, `{endpoint_id}`, ... stand for path parameters.
    template: &'static str,
    access: Access,
    body: Option<Value>,
}

fn route(
    method: &'static str,
    template: &'static str,
    access: Access,
    body: Option<Value>,
) -> Route {
    Route {
        method,
        template,
        access,
        body,
    }
}

/// Every route the API serves.
fn every_route() -> Vec<Route> {
    use Access::{Admin, Public, Tenant, Vendor};
    let endpoint = json!({"url": "https://hooks.example.com/sneaky", "filters": ["*"]});
    let hook = json!({"event_type": "user.pre_create", "url": "https://hooks.example.com/sneaky"});
    let custom_type = json!({"type": "acme.badge.awarded", "description": "A badge.", "schema": {"type": "object"}});
    vec![
        route("GET", "/healthz", Public, None),
        route("GET", "/readyz", Public, None),
        route("GET", "/metrics", Public, None),
        route("GET", "/v1/openapi.json", Public, None),
        route(
            "POST",
            "/v1/tenants",
            Admin,
            Some(json!({"id": "sneaky", "name": "Sneaky"})),
        ),
        route("GET", "/v1/tenants", Admin, None),
        route("POST", "/v1/tenants/{tenant}/api-keys", Admin, None),
        route("GET", "/v1/tenants/{tenant}/api-keys", Admin, None),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/api-keys/{key_id}",
            Admin,
            None,
        ),
        route("POST", "/v1/admin-keys", Admin, None),
        route("GET", "/v1/admin-keys", Admin, None),
        route("DELETE", "/v1/admin-keys/{key_id}", Admin, None),
        route("GET", "/v1/tenants/{tenant}", Tenant, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/events",
            Tenant,
            Some(password_updated("evt-planted", ALICE)),
        ),
        route("GET", "/v1/tenants/{tenant}/events", Tenant, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/events:batch",
            Tenant,
            Some(json!({"events": [password_updated("evt-planted", ALICE)]})),
        ),
        route(
            "GET",
            "/v1/tenants/{tenant}/events/{event_id}",
            Tenant,
            None,
        ),
        route("GET", "/v1/tenants/{tenant}/catalog", Tenant, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/catalog",
            Tenant,
            Some(custom_type),
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/endpoints",
            Tenant,
            Some(endpoint),
        ),
        route("GET", "/v1/tenants/{tenant}/endpoints", Tenant, None),
        route(
            "GET",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}",
            Tenant,
            None,
        ),
        route(
            "PATCH",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}",
            Tenant,
            Some(json!({"enabled": false})),
        ),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}",
            Tenant,
            None,
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}/secret/rotate",
            Tenant,
            Some(json!({})),
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}/replay",
            Tenant,
            Some(json!({"since_seq": 0})),
        ),
        route(
            "GET",
            "/v1/tenants/{tenant}/endpoints/{endpoint_id}/deliveries",
            Tenant,
            None,
        ),
        route(
            "GET",
            "/v1/tenants/{tenant}/deliveries/{delivery_id}",
            Tenant,
            None,
        ),
        route(
            "GET",
            "/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts",
            Tenant,
            None,
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/deliveries/{delivery_id}/retry",
            Tenant,
            None,
        ),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/subjects/{subject}",
            Tenant,
            None,
        ),
        route("POST", "/v1/tenants/{tenant}/hooks", Tenant, Some(hook)),
        route("GET", "/v1/tenants/{tenant}/hooks", Tenant, None),
        route("GET", "/v1/tenants/{tenant}/hooks/{hook_id}", Tenant, None),
        route(
            "PATCH",
            "/v1/tenants/{tenant}/hooks/{hook_id}",
            Tenant,
            Some(json!({"enabled": false})),
        ),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/hooks/{hook_id}",
            Tenant,
            None,
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/blocking-events",
            Tenant,
            Some(authgear_seed("user.pre_create.json")),
        ),
        route("GET", "/v1/tenants/{tenant}/blocking-events", Tenant, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/sources",
            Tenant,
            Some(json!({"kind": "authgear", "secret": "sneaky"})),
        ),
        route("GET", "/v1/tenants/{tenant}/sources", Tenant, None),
        route(
            "GET",
            "/v1/tenants/{tenant}/sources/{source_id}",
            Tenant,
            None,
        ),
        route(
            "PATCH",
            "/v1/tenants/{tenant}/sources/{source_id}",
            Tenant,
            Some(json!({"secret": "sneaky"})),
        ),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/sources/{source_id}",
            Tenant,
            None,
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/sources/{source_id}/secret/rotate",
            Tenant,
            Some(json!({})),
        ),
        route(
            "POST",
            "/v1/ingest/{source_id}",
            Vendor,
            Some(authgear_seed("user.created.json")),
        ),
        route("GET", "/v1/ingest/{source_id}", Vendor, None),
        // `herald listen`: no session of acme exists, so `{session_id}` stays a literal id.
        route("GET", "/v1/tenants/{tenant}/listen", Tenant, None),
        route(
            "DELETE",
            "/v1/tenants/{tenant}/listen/{session_id}",
            Tenant,
            None,
        ),
        route(
            "POST",
            "/v1/tenants/{tenant}/listen/{session_id}/results",
            Tenant,
            Some(json!({"delivery_id": "dl_sneaky", "status": 200, "latency_ms": 1})),
        ),
        // Shared Signals (issue 14): the tenant's keys and receivers; the transmitter metadata and
        // JWKS are public. The stream endpoints, authenticated by receiver tokens and described by
        // the metadata rather than the OpenAPI document, are tested in tests/it/ssf.rs.
        route(
            "POST",
            "/v1/tenants/{tenant}/ssf/keys",
            Tenant,
            Some(json!({})),
        ),
        route("GET", "/v1/tenants/{tenant}/ssf/keys", Tenant, None),
        route(
            "POST",
            "/v1/tenants/{tenant}/ssf/receivers",
            Tenant,
            Some(json!({})),
        ),
        route("GET", "/v1/tenants/{tenant}/ssf/receivers", Tenant, None),
        route(
            "GET",
            "/.well-known/ssf-configuration/ssf/{tenant}",
            Public,
            None,
        ),
        route("GET", "/ssf/{tenant}/jwks.json", Public, None),
        // Standard Webhooks `v1a` keys and the tenant's view of its SSF streams (issue 14): no
        // key or stream of acme exists, so `{kid}` and `{stream_id}` stay literal ids.
        route(
            "POST",
            "/v1/tenants/{tenant}/ssf/keys/{kid}/retire",
            Tenant,
            None,
        ),
        route("GET", "/v1/tenants/{tenant}/ssf/streams", Tenant, None),
        route(
            "GET",
            "/v1/tenants/{tenant}/ssf/streams/{stream_id}",
            Tenant,
            None,
        ),
        // Shared Signals durable delivery: a stream's push attempts, for the tenant.
        route(
            "GET",
            "/v1/tenants/{tenant}/ssf/streams/{stream_id}/attempts",
            Tenant,
            None,
        ),
    ]
}

/// The ids of tenant acme's resources, to fill the templates with.
struct AcmeIds {
    key_id: String,
    event_id: String,
    endpoint_id: String,
    delivery_id: String,
    hook_id: String,
    source_id: String,
    stream_id: String,
}

fn fill(template: &str, tenant: &str, ids: &AcmeIds) -> String {
    template
        .replace("{tenant}", tenant)
        .replace("{key_id}", &ids.key_id)
        .replace("{event_id}", &ids.event_id)
        .replace("{endpoint_id}", &ids.endpoint_id)
        .replace("{delivery_id}", &ids.delivery_id)
        .replace("{hook_id}", &ids.hook_id)
        .replace("{source_id}", &ids.source_id)
        .replace("{stream_id}", &ids.stream_id)
        .replace("{subject}", ALICE)
}

/// A request with the raw `Authorization` value `authorization` (none when `None`).
async fn call_with(
    app: &TestApp,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("sent");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts a problem+json answer of `status` and `kind`.
#[track_caller]
fn check_refused(
    what: &str,
    (status, headers, problem): &(StatusCode, reqwest::header::HeaderMap, Value),
    expected: StatusCode,
    kind: &str,
) {
    assert_eq!(*status, expected, "{what}: {problem}");
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/problem+json"),
        "{what}"
    );
    assert_eq!(
        problem["type"],
        format!("{PROBLEM_BASE}{kind}"),
        "{what}: {problem}"
    );
    if expected == StatusCode::UNAUTHORIZED {
        assert_eq!(
            headers
                .get("www-authenticate")
                .and_then(|value| value.to_str().ok()),
            Some("Bearer"),
            "{what}"
        );
    }
}

/// The (method, template) pairs the OpenAPI document describes.
async fn documented_routes(app: &TestApp) -> BTreeSet<(String, String)> {
    let (status, _, document) = call_with(app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_refuses_missing_wrong_and_foreign_keys() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    let acme_key = app.tenant("acme").await;
    let other_key = app.tenant("other").await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &acme_key,
            json!({"url": receiver.url("/acme"), "filters": ["*"]}),
        )
        .await;
    let event_id = app
        .publish("acme", &acme_key, &password_updated("evt-of-acme", ALICE))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.deliver().await;
    receiver.next().await;
    let delivery_id = app.only_delivery("acme", &acme_key, &endpoint_id).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, hook) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&acme_key),
            Some(&json!({"event_type": "user.pre_create", "url": receiver.url("/hook")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let (status, keys) = app
        .call("GET", "/v1/tenants/acme/api-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let (status, source) = app
        .call(
            "POST",
            "/v1/tenants/acme/sources",
            Some(&acme_key),
            Some(&json!({"kind": "authgear"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    // An SSF poll stream of acme, made by one of its receivers with the receiver's token.
    let (status, ssf_receiver) = app
        .call(
            "POST",
            "/v1/tenants/acme/ssf/receivers",
            Some(&acme_key),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ssf_receiver}");
    let (status, stream) = app
        .call(
            "POST",
            "/ssf/acme/streams",
            ssf_receiver["token"].as_str(),
            Some(&json!({"delivery": {"method": "urn:ietf:rfc:8936"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let ids = AcmeIds {
        stream_id: stream["stream_id"].as_str().expect("stream id").to_owned(),
        source_id: source["id"].as_str().expect("id").to_owned(),
        key_id: keys["data"][0]["id"].as_str().expect("key id").to_owned(),
        event_id,
        endpoint_id,
        delivery_id,
        hook_id: hook["id"].as_str().expect("id").to_owned(),
    };

    let routes = every_route();
    let tabled: BTreeSet<(String, String)> = routes
        .iter()
        .filter(|route| route.access != Access::Public)
        .map(|route| (route.method.to_owned(), route.template.to_owned()))
        .collect();
    assert_eq!(
        tabled,
        documented_routes(&app).await,
        "the table above must list exactly the routes of the OpenAPI document"
    );

    let acme_truncated = format!("Bearer {}", &acme_key[..acme_key.len() - 1]);
    let admin_extended = format!("Bearer {ADMIN_KEY}x");
    let admin_as_basic = format!("Basic {}", STANDARD.encode(format!("admin:{ADMIN_KEY}")));
    let too_long = format!("Bearer {}", "k".repeat(300));
    let bad_credentials: [Option<&str>; 7] = [
        None,
        Some("Bearer hk_not-a-key-anyone-was-given"),
        Some(&acme_truncated),
        Some(&admin_extended),
        Some(&admin_as_basic),
        Some(&too_long),
        Some("Bearer "),
    ];
    let other_bearer = format!("Bearer {other_key}");
    let acme_bearer = format!("Bearer {acme_key}");
    let admin_bearer = format!("Bearer {ADMIN_KEY}");
    for route in &routes {
        let path = fill(route.template, "acme", &ids);
        let what = format!("{} {path}", route.method);
        let body = route.body.as_ref();
        if route.access == Access::Public {
            let (status, _, answer) = call_with(&app, route.method, &path, None, None).await;
            assert_eq!(status, StatusCode::OK, "{what}: {answer}");
            continue;
        }
        if route.access == Access::Vendor {
            // A Herald key is no vendor credential: an unsigned POST is refused whatever it
            // carries, and a GET without a hub's parameters verifies nothing.
            let herald_keys = [
                Some(other_bearer.as_str()),
                Some(acme_bearer.as_str()),
                Some(admin_bearer.as_str()),
            ];
            for authorization in bad_credentials.into_iter().chain(herald_keys) {
                let (status, headers, answer) =
                    call_with(&app, route.method, &path, authorization, body).await;
                let (expected, kind) = if route.method == "POST" {
                    (StatusCode::UNAUTHORIZED, "unauthorized")
                } else {
                    (StatusCode::NOT_FOUND, "not-found")
                };
                assert_eq!(status, expected, "{what} with {authorization:?}: {answer}");
                assert_eq!(
                    answer["type"],
                    format!("{PROBLEM_BASE}{kind}"),
                    "{what} with {authorization:?}"
                );
                if expected == StatusCode::UNAUTHORIZED {
                    assert!(headers.contains_key("www-authenticate"), "{what}");
                }
            }
            continue;
        }
        for authorization in bad_credentials {
            let answer = call_with(&app, route.method, &path, authorization, body).await;
            check_refused(
                &format!("{what} with {authorization:?}"),
                &answer,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            );
        }
        match route.access {
            Access::Admin => {
                for key in [&other_bearer, &acme_bearer] {
                    let answer = call_with(&app, route.method, &path, Some(key), body).await;
                    check_refused(
                        &format!("{what} with a tenant key"),
                        &answer,
                        StatusCode::FORBIDDEN,
                        "forbidden",
                    );
                }
            }
            Access::Tenant => {
                let answer = call_with(&app, route.method, &path, Some(&other_bearer), body).await;
                check_refused(
                    &format!("{what} with other's key"),
                    &answer,
                    StatusCode::NOT_FOUND,
                    "not-found",
                );
                // Other's own tenant in the path, with acme's resource ids: still nothing.
                let has_resource_id = route.template.contains("_id}");
                if has_resource_id {
                    let foreign = fill(route.template, "other", &ids);
                    let answer =
                        call_with(&app, route.method, &foreign, Some(&other_bearer), body).await;
                    check_refused(
                        &format!("{} {foreign} with other's key", route.method),
                        &answer,
                        StatusCode::NOT_FOUND,
                        "not-found",
                    );
                }
            }
            Access::Public | Access::Vendor => {}
        }
    }

    // The keys that may read, can: the refusals above were not for want of a resource.
    for route in routes.iter().filter(|route| {
        // A listen stream never ends by itself: tests/it/listen.rs reads it.
        route.access == Access::Tenant
            && route.method == "GET"
            && !route.template.ends_with("/listen")
    }) {
        let path = fill(route.template, "acme", &ids);
        for key in [&acme_bearer, &admin_bearer] {
            let (status, _, answer) = call_with(&app, "GET", &path, Some(key), None).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {answer}");
        }
    }
    // And nothing of acme changed.
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{}", ids.endpoint_id),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(app.events("acme", &acme_key, None).await.len(), 1);
    let event = app
        .get(
            &format!("/v1/tenants/acme/events/{}", ids.event_id),
            &acme_key,
        )
        .await;
    assert_eq!(event["erased"], false);
    assert_eq!(
        app.delivery("acme", &acme_key, &ids.delivery_id).await["state"],
        "delivered"
    );
    let hook = app
        .get(
            &format!("/v1/tenants/acme/hooks/{}", ids.hook_id),
            &acme_key,
        )
        .await;
    assert_eq!(hook["enabled"], true);
    let source = app
        .get(
            &format!("/v1/tenants/acme/sources/{}", ids.source_id),
            &acme_key,
        )
        .await;
    assert_eq!(source["n_accepted"], 0, "{source}");
    assert_eq!(source["name"], Value::Null, "{source}");
    assert_eq!(app.deliver().await, 0, "nothing was replayed or retried");
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn api_keys_are_stored_only_as_hashes() {
    let app = TestApp::spawn_with(|options| options.settings.admin_key = None).await;
    let admin_key = app
        .server
        .generated_admin_key
        .clone()
        .expect("a first start makes an admin key")
        .key;
    let (status, body) = app
        .call(
            "POST",
            "/v1/tenants",
            Some(&admin_key),
            Some(&json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call("POST", "/v1/tenants/acme/api-keys", Some(&admin_key), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant_key = body["key"].as_str().expect("key").to_owned();
    let (status, _) = app
        .call("GET", "/v1/tenants/acme", Some(&tenant_key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the key works");

    // Everything SQLite wrote: the main file and the write-ahead log.
    let mut stored = Vec::new();
    for name in ["herald.db", "herald.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.directory.path().join(name)) {
            stored.extend(bytes);
        }
    }
    let contains = |needle: &str| {
        stored
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    for (name, key) in [("admin key", &admin_key), ("tenant key", &tenant_key)] {
        assert!(!contains(key), "the {name} is stored in clear");
        assert!(contains(&hash_api_key(key)), "the {name}'s hash is stored");
    }
}

// ---- API keys: listed, revoked, spelled for scanners ---------------------------------------------

/// Sends `request` as it is on a new connection; the whole answer.
async fn raw_request(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.server.address)
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered within 10 s")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// GET `path` with `key`; the status alone.
async fn status_with(app: &TestApp, path: &str, key: &str) -> StatusCode {
    app.call("GET", path, Some(key), None).await.0
}

#[tokio::test]
async fn tenant_keys_are_listed_without_the_key_and_a_revoked_key_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let first_key = app.tenant("acme").await;
    let other_key = app.tenant("other").await;
    let (status, second) = app
        .call(
            "POST",
            "/v1/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            Some(&json!({"name": "billing producer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_key = second["key"].as_str().expect("key").to_owned();
    assert_eq!(second["tenant"], "acme");
    assert_eq!(second["name"], "billing producer");
    assert!(
        herald_core::api_key::is_well_formed_api_key(&second_key),
        "{second_key}"
    );
    assert!(second_key.starts_with("herald_tk_"), "{second_key}");
    assert_eq!(second["prefix"], second_key[..14]);

    // A key is made without a body however the client says so: no body at all, an empty
    // chunked body, or `Content-Length: 0`, each with or without a JSON content type.
    for framing in [
        "Content-Type: application/json\r\n",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        "Content-Type: application/json\r\nContent-Length: 0\r\n",
        "Transfer-Encoding: chunked\r\n\r\n0\r\n",
    ] {
        let answer = raw_request(
            &app,
            &format!(
                "POST /v1/tenants/other/api-keys HTTP/1.1\r\nHost: herald\r\n\
                 Authorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n{framing}\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{framing:?}: {answer}");
    }

    // A tenant key cannot list keys, not even its own tenant's.
    let (status, _) = app
        .call("GET", "/v1/tenants/acme/api-keys", Some(&first_key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &first_key).await,
        StatusCode::OK
    );
    let (status, listed) = app
        .call("GET", "/v1/tenants/acme/api-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let text = listed.to_string();
    for key in [&first_key, &second_key] {
        assert!(
            !text.contains(key.as_str()),
            "a listed key is shown: {text}"
        );
        assert!(!text.contains(&hash_api_key(key)), "a key's hash is shown");
    }
    let keys = listed["data"].as_array().expect("data");
    assert_eq!(keys.len(), 2, "{listed}");
    let first = &keys[0];
    assert!(first.get("key").is_none(), "{first}");
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["prefix"], first_key[..14]);
    assert!(first["created_at"].is_string(), "{first}");
    assert!(
        first["last_used_at"].is_string(),
        "the first key was just used: {first}"
    );
    assert_eq!(keys[1]["id"], second["id"]);
    assert_eq!(keys[1]["last_used_at"], Value::Null, "never used yet");

    // Revoked: refused on the very next request, and only that key.
    let first_id = first["id"].as_str().expect("id");
    let (status, answer) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/other/api-keys/{first_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not other's key to revoke: {answer}"
    );
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &first_key).await,
        StatusCode::OK
    );
    let (status, answer) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/acme/api-keys/{first_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &first_key).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &second_key).await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&app, "/v1/tenants/other", &other_key).await,
        StatusCode::OK
    );
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/acme/api-keys/{first_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked twice");

    // A restart does not bring it back.
    let directory = app.stop().await;
    let app = TestApp::spawn_in(directory, |_| {}).await;
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &first_key).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", &second_key).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_keys_are_made_listed_and_revoked_and_the_last_one_is_kept() {
    let app = TestApp::spawn_with(|options| options.settings.admin_key = None).await;
    let generated = app
        .server
        .generated_admin_key
        .clone()
        .expect("a first start makes an admin key")
        .key;
    assert!(generated.starts_with("herald_ak_"), "{generated}");
    let (status, listed) = app
        .call("GET", "/v1/admin-keys", Some(&generated), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let generated_id = listed["data"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["data"][0]["generated_at_start"], true);
    assert_eq!(listed["data"][0]["tenant"], Value::Null);

    let (status, answer) = app
        .call(
            "DELETE",
            &format!("/v1/admin-keys/{generated_id}"),
            Some(&generated),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the last admin key: {answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("last admin key")),
        "{answer}"
    );

    let (status, created) = app
        .call(
            "POST",
            "/v1/admin-keys",
            Some(&generated),
            Some(&json!({"name": "ops"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["key"].as_str().expect("key").to_owned();
    assert!(second.starts_with("herald_ak_"), "{second}");
    assert_eq!(
        status_with(&app, "/v1/tenants", &second).await,
        StatusCode::OK
    );
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/admin-keys/{generated_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_with(&app, "/v1/tenants", &generated).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, "/v1/tenants", &second).await,
        StatusCode::OK
    );
    // A tenant key's id is not an admin key's.
    let tenant_key_id = {
        app.call(
            "POST",
            "/v1/tenants",
            Some(&second),
            Some(&json!({"id": "acme", "name": "Acme"})),
        )
        .await;
        let (_, made) = app
            .call("POST", "/v1/tenants/acme/api-keys", Some(&second), None)
            .await;
        made["id"].as_str().expect("id").to_owned()
    };
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/admin-keys/{tenant_key_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_configured_admin_key_replaces_the_generated_one() {
    let app = TestApp::spawn_with(|options| options.settings.admin_key = None).await;
    let generated = app
        .server
        .generated_admin_key
        .clone()
        .expect("a first start makes an admin key")
        .key;
    assert_eq!(
        status_with(&app, "/v1/tenants", &generated).await,
        StatusCode::OK
    );
    let directory = app.stop().await;
    // HERALD_ADMIN_KEY now set (the harness's default settings carry ADMIN_KEY).
    let app = TestApp::spawn_in(directory, |_| {}).await;
    assert!(app.server.generated_admin_key.is_none());
    assert_eq!(
        status_with(&app, "/v1/tenants", &generated).await,
        StatusCode::UNAUTHORIZED,
        "the generated key was replaced"
    );
    assert_eq!(
        status_with(&app, "/v1/tenants", ADMIN_KEY).await,
        StatusCode::OK
    );
    let (_, listed) = app
        .call("GET", "/v1/admin-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    // With a configured key, the last stored admin key may go too: the operator keeps a way in.
    let (_, created) = app
        .call("POST", "/v1/admin-keys", Some(ADMIN_KEY), None)
        .await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/admin-keys/{}", created["id"].as_str().expect("id")),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_old_keys_keep_working() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    for authorization in [
        format!("Bearer {key}"),
        format!("bearer {key}"),
        format!("BEARER {key}"),
        format!("bEaReR {key}"),
        format!("Bearer  {key}"),
    ] {
        let answer = call_with(&app, "GET", "/v1/tenants/acme", Some(&authorization), None).await;
        assert_eq!(answer.0, StatusCode::OK, "{authorization:?}: {}", answer.2);
    }
    for authorization in [
        format!("Bearerx {key}"),
        format!("Token {key}"),
        key.clone(),
    ] {
        let answer = call_with(&app, "GET", "/v1/tenants/acme", Some(&authorization), None).await;
        check_refused(
            &authorization,
            &answer,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }

    // A key of the spelling Herald used to generate, stored by an earlier version.
    let old_key = "hk_q1IvRC3yv7M8o0JHk0aJ0uWZb2wQv5m1T8u2H4nJb6A";
    app.server
        .store
        .create_api_key(herald_store::models::ApiKeyRecord {
            id: herald_core::ids::ApiKeyId::parse("key_old").expect("a key id"),
            tenant_id: Some("acme".to_owned()),
            key_hash: hash_api_key(old_key),
            prefix: String::new(),
            name: None,
            generated_at_start: false,
            created_at: app.clock.now(),
            last_used_at: None,
        })
        .await
        .expect("stored");
    assert_eq!(
        status_with(&app, "/v1/tenants/acme", old_key).await,
        StatusCode::OK
    );
    // New keys and hook ids no longer share a prefix.
    let (_, hook) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&key),
            Some(&json!({"event_type": "user.pre_create", "url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    let hook_id = hook["id"].as_str().expect("hook id");
    assert!(hook_id.starts_with("hk_"), "{hook_id}");
    assert!(!key.starts_with("hk_"), "{key}");
}

// ---- logs ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_key_goes_to_a_private_file_and_never_to_the_logs() {
    let directory = tempfile::tempdir().expect("tempdir");
    let database = directory.path().join("herald.db");
    let key_file = directory.path().join("herald-admin-key");
    // Standard error is a pipe here, as under a service manager: the key must not go there.
    let herald = HeraldProcess::serve_with_admin_key(
        &database,
        &["--log-json"],
        &[("HERALD_LOG", "debug")],
        None,
    )
    .await;
    // Printed before the listening line, which `serve` waited for.
    let announced = herald
        .seen
        .iter()
        .find_map(|line| line.split("wrote it to ").nth(1))
        .expect("the key file is announced")
        .to_owned();
    assert!(
        announced.starts_with(&key_file.display().to_string()),
        "{announced}"
    );
    let key = std::fs::read_to_string(&key_file).expect("the key file");
    let key = key.trim().to_owned();
    assert!(
        herald_core::api_key::is_well_formed_api_key(&key),
        "{key:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let http = reqwest::Client::new();
    let (status, body) = herald
        .call(&http, "GET", "/v1/tenants", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let printed = herald.stop().await;
    assert!(
        printed
            .iter()
            .any(|line| line.contains("\"level\":\"DEBUG\"")),
        "debug logging was on"
    );
    for line in &printed {
        assert!(
            !line.contains(&key),
            "the admin key is in the output: {line}"
        );
    }

    // Started again with a key of the operator's own, the generated one is revoked.
    let herald =
        HeraldProcess::serve_with_admin_key(&database, &[], &[], Some("operator-chosen-key-0123"))
            .await;
    let (status, _) = herald
        .call(&http, "GET", "/v1/tenants", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = herald
        .call(
            &http,
            "GET",
            "/v1/tenants",
            Some("operator-chosen-key-0123"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    herald.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_secrets_never_appear_in_the_logs_even_at_debug_level() {
    let directory = tempfile::tempdir().expect("tempdir");
    let database = directory.path().join("herald.db");
    let mut receiver = Receiver::start().await;
    let herald = HeraldProcess::serve(
        &database,
        &["--allow-network", "127.0.0.0/8", "--log-json"],
        &[("HERALD_LOG", "debug")],
    )
    .await;
    let http = reqwest::Client::new();
    let call = |method: &'static str, path: String, key: Option<String>, body: Option<Value>| {
        let (herald, http) = (&herald, &http);
        async move {
            herald
                .call(http, method, &path, key.as_deref(), body.as_ref())
                .await
        }
    };
    let admin = Some(ADMIN_KEY.to_owned());
    let (status, body) = call(
        "POST",
        "/v1/tenants".into(),
        admin.clone(),
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        "POST",
        "/v1/tenants/acme/api-keys".into(),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant_key = body["key"].as_str().expect("key").to_owned();
    let key = Some(tenant_key.clone());

    let standard_key = STANDARD.encode("the-log-test-standard-key-0123456789");
    let standard_secret = format!("whsec_{standard_key}");
    let plain_secret = "the-log-test-plain-vendor-secret".to_owned();
    let rotated_key = STANDARD.encode("the-log-test-rotated-key-9876543210");
    let rotated_secret = format!("whsec_{rotated_key}");
    let (status, first) = call(
        "POST",
        "/v1/tenants/acme/endpoints".into(),
        key.clone(),
        Some(
            json!({"url": receiver.url("/standard"), "filters": ["*"], "secret": standard_secret}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = call(
        "POST",
        "/v1/tenants/acme/endpoints".into(),
        key.clone(),
        Some(json!({"url": receiver.url("/plain"), "filters": ["*"], "secret": plain_secret})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, third) = call(
        "POST",
        "/v1/tenants/acme/endpoints".into(),
        key.clone(),
        Some(json!({"url": receiver.url("/generated"), "filters": ["*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    let generated_secret = third["secret"].as_str().expect("secret").to_owned();

    let asgardeo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures/asgardeo/loginSuccess.json");
    let login: Value =
        serde_json::from_str(&std::fs::read_to_string(asgardeo).expect("seed")).expect("JSON");
    let (status, body) = call(
        "POST",
        "/v1/tenants/acme/events".into(),
        key.clone(),
        Some(login),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    receiver.take(3).await;

    let first_id = first["id"].as_str().expect("id");
    let (status, body) = call(
        "POST",
        format!("/v1/tenants/acme/endpoints/{first_id}/secret/rotate"),
        key.clone(),
        Some(json!({"secret": rotated_secret})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        "POST",
        "/v1/tenants/acme/events".into(),
        key.clone(),
        Some(authgear_seed("user.created.json")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let after_rotation = receiver.take(3).await;
    // A blocking hook with its own secret, called once (its answer is not a decision, so the
    // chain fails closed; what matters here is that the call was signed and logged).
    let hook_key = STANDARD.encode("the-log-test-hook-key-5555555555");
    let hook_secret = format!("whsec_{hook_key}");
    let (status, body) = call(
        "POST",
        "/v1/tenants/acme/hooks".into(),
        key.clone(),
        Some(json!({"event_type": "user.pre_create", "url": receiver.url("/hook"), "secret": hook_secret})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        "POST",
        "/v1/tenants/acme/blocking-events".into(),
        key.clone(),
        Some(authgear_seed("user.pre_create.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(receiver.next().await.path, "/hook");
    assert!(
        after_rotation
            .iter()
            .any(|arrived| arrived.header("webhook-signature").contains(' ')),
        "both secrets signed"
    );
    // Refused attempts log nothing of what was presented either.
    let wrong_key = "hk_a-wrong-key-that-must-not-be-logged".to_owned();
    let (status, _) = call(
        "GET",
        "/v1/tenants/acme/events".into(),
        Some(wrong_key.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let lines = herald.stop().await;
    assert!(
        lines
            .iter()
            .filter(|line| line.contains("\"level\":\"DEBUG\""))
            .count()
            > 10,
        "debug logging was on: {lines:?}"
    );
    let logs = lines.join("\n");
    assert!(
        logs.contains("/v1/tenants/acme/events"),
        "the requests were logged, so their keys had a chance to leak"
    );
    for (name, needle) in [
        ("the admin key", ADMIN_KEY),
        ("the tenant key", &tenant_key),
        ("a presented wrong key", &wrong_key),
        ("a whsec_ secret", &standard_secret),
        ("a whsec_ secret's key", &standard_key),
        ("a plain secret", &plain_secret),
        ("a generated secret", &generated_secret),
        ("a rotated-in secret", &rotated_secret),
        ("a rotated-in secret's key", &rotated_key),
        ("a hook secret", &hook_secret),
        ("a hook secret's key", &hook_key),
    ] {
        assert!(!logs.contains(needle), "{name} is in the logs");
    }
}

// ---- SSRF ---------------------------------------------------------------------------------------

/// `url` is refused at endpoint creation with a 422 at `/url` whose detail contains `reason`.
async fn check_refused_url(app: &TestApp, key: &str, path: &str, url: &str, reason: &str) {
    let body = if path.ends_with("/hooks") {
        json!({"event_type": "user.pre_create", "url": url})
    } else {
        json!({"url": url, "filters": ["*"]})
    };
    let (status, problem) = app.call("POST", path, Some(key), Some(&body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
    assert_eq!(problem["errors"][0]["path"], "/url", "{url}: {problem}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains(reason),
        "{url}: {detail:?} lacks {reason:?}"
    );
}

#[tokio::test]
async fn every_refused_range_and_spelling_is_refused_when_an_endpoint_or_hook_is_created() {
    let app = TestApp::spawn_with(|options| options.settings.allow_network = vec![]).await;
    let key = app.tenant("acme").await;
    let table = [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.255.255.254:8080/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://0.1.2.3/hook", "unspecified"),
        ("http://10.0.0.1/hook", "private network"),
        ("http://172.16.0.1/hook", "private network"),
        ("http://172.31.255.255/hook", "private network"),
        ("http://192.168.1.20/hook", "private network"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://169.254.1.1/hook", "link-local"),
        ("http://100.64.0.1/hook", "shared address space"),
        ("http://100.100.100.200/hook", "shared address space"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://239.255.255.250/hook", "multicast"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fc00::1]/hook", "unique local"),
        ("http://[fd12:3456::1]/hook", "unique local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[ff02::1]/hook", "multicast"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[::ffff:169.254.169.254]/hook", "cloud metadata"),
        ("http://[::ffff:10.0.0.1]/hook", "private network"),
        // Other spellings of 127.0.0.1: decimal, hex, octal, short, mixed.
        ("http://2130706433/hook", "loopback"),
        ("http://0x7f000001/hook", "loopback"),
        ("http://0177.0.0.1/hook", "loopback"),
        ("http://127.1/hook", "loopback"),
        ("http://0x7f.0.0.1/hook", "loopback"),
        ("http://017700000001/hook", "loopback"),
        // And of 169.254.169.254.
        ("http://2852039166/", "cloud metadata"),
        ("http://0xa9fea9fe/", "cloud metadata"),
        ("http://localhost/hook", "local name"),
        ("http://LOCALHOST./hook", "local name"),
        ("http://api.localhost:8080/hook", "local name"),
        ("ftp://hooks.example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:password@hooks.example.com/hook", "user name"),
    ];
    for (url, reason) in table {
        check_refused_url(&app, &key, "/v1/tenants/acme/endpoints", url, reason).await;
    }
    for (url, reason) in [
        ("http://169.254.169.254/", "cloud metadata"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost/hook", "local name"),
    ] {
        check_refused_url(&app, &key, "/v1/tenants/acme/hooks", url, reason).await;
    }
    // An endpoint's URL cannot be moved into a refused range afterwards either.
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": "https://hooks.example.com/herald", "filters": ["*"]}),
        )
        .await;
    let (status, problem) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            Some(&key),
            Some(&json!({"url": "http://169.254.169.254/"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(app.events("acme", &key, None).await.is_empty());
}

#[tokio::test]
async fn an_allowed_network_opens_its_own_addresses_and_nothing_else() {
    let app = TestApp::spawn_with(|options| {
        options.settings.allow_network = vec!["127.0.0.2/32".parse().expect("cidr")];
    })
    .await;
    let key = app.tenant("acme").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let mut receiver = Receiver::start_on(listener).await;
    let port = receiver.address.port();
    for (url, reason) in [
        (format!("http://127.0.0.1:{port}/hook"), "loopback"),
        (format!("http://127.0.0.3:{port}/hook"), "loopback"),
        ("http://localhost/hook".to_owned(), "local name"),
        ("http://10.0.0.1/hook".to_owned(), "private network"),
    ] {
        check_refused_url(&app, &key, "/v1/tenants/acme/endpoints", &url, reason).await;
    }
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["*"]}),
        )
        .await;
    app.publish("acme", &key, &password_updated("evt-allowed", ALICE))
        .await;
    assert_eq!(app.deliver().await, 1);
    assert_eq!(receiver.next().await.webhook_id(), "evt-allowed");
    assert_eq!(
        app.only_delivery("acme", &key, &endpoint_id).await["state"],
        "delivered"
    );
}

#[tokio::test]
async fn a_stored_url_that_now_reaches_loopback_is_refused_at_delivery_time_and_recorded() {
    // The URLs are accepted while loopback is open, as a name is accepted that later resolves
    // somewhere else (DNS rebinding); then Herald restarts with the guard closed. The check at
    // connect time must catch both the name and the literal, and the receiver must see nothing.
    let mut receiver = Receiver::start().await;
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let port = receiver.address.port();
    let (by_name, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": format!("http://localhost:{port}/by-name"), "filters": ["*"]}),
        )
        .await;
    let (by_address, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": format!("http://127.0.0.1:{port}/by-address"), "filters": ["*"]}),
        )
        .await;
    let directory = app.stop().await;

    let app = TestApp::spawn_in(directory, |options| options.settings.allow_network = vec![]).await;
    app.publish("acme", &key, &password_updated("evt-rebound", ALICE))
        .await;
    assert_eq!(app.deliver().await, 2);
    for (endpoint_id, expected) in [
        (
            &by_name,
            "refused: every address \"localhost\" resolves to is refused",
        ),
        (
            &by_address,
            "refused: 127.0.0.1 is in 127.0.0.0/8 (loopback)",
        ),
    ] {
        let delivery = app.only_delivery("acme", &key, endpoint_id).await;
        assert_eq!(delivery["state"], "scheduled", "{delivery}");
        let attempts = app
            .attempts("acme", &key, delivery["id"].as_str().expect("id"))
            .await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        let error = attempts[0]["error"].as_str().expect("an error is recorded");
        assert!(error.starts_with(expected), "{error}");
        assert!(error.contains("loopback"), "{error}");
        assert_eq!(attempts[0]["status"], Value::Null);
    }
    // Every attempt has finished, so anything that had arrived would be here already.
    assert!(receiver.drain().is_empty(), "nothing reached the receiver");
}
