//! Blocking hooks end to end: real hook servers on loopback, the chain's merge rules, deadlines,
//! failure policies, signatures, auditing and tenant isolation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::{ADMIN_KEY, TestApp};

/// How a hook answers.
#[derive(Debug, Clone)]
enum Behaviour {
    Allow,
    Mutate(Value),
    Deny(&'static str, &'static str),
    Status(u16),
    Raw(&'static str),
    Slow(Duration),
    RedirectTo(String),
}

#[derive(Debug)]
struct Call {
    hook: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct HookServerState {
    behaviours: Arc<Mutex<HashMap<String, Behaviour>>>,
    calls: mpsc::UnboundedSender<Call>,
}

/// One server hosting many hooks at `/h/{name}`, each with its behaviour.
struct HookServer {
    address: std::net::SocketAddr,
    behaviours: Arc<Mutex<HashMap<String, Behaviour>>>,
    calls: mpsc::UnboundedReceiver<Call>,
}

impl HookServer {
    async fn start() -> Self {
        let behaviours = Arc::new(Mutex::new(HashMap::new()));
        let (sender, calls) = mpsc::unbounded_channel();
        let state = HookServerState {
            behaviours: Arc::clone(&behaviours),
            calls: sender,
        };
        let app = axum::Router::new()
            .route("/h/{name}", axum::routing::post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HookServer {
            address,
            behaviours,
            calls,
        }
    }

    fn hook(&self, name: &str, behaviour: Behaviour) -> String {
        self.behaviours
            .lock()
            .expect("behaviours")
            .insert(name.to_owned(), behaviour);
        format!("http://{}/h/{name}", self.address)
    }

    /// The calls made so far, in order, without waiting (the evaluation has answered by now).
    fn calls(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        while let Ok(call) = self.calls.try_recv() {
            calls.push(call);
        }
        calls
    }
}

async fn answer(
    State(state): State<HookServerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = state
        .behaviours
        .lock()
        .expect("behaviours")
        .get(&name)
        .cloned()
        .unwrap_or(Behaviour::Allow);
    let _ = state.calls.send(Call {
        hook: name,
        headers,
        body,
    });
    match behaviour {
        Behaviour::Allow => axum::Json(json!({"is_allowed": true})).into_response(),
        Behaviour::Mutate(mutations) => {
            axum::Json(json!({"is_allowed": true, "mutations": mutations})).into_response()
        }
        Behaviour::Deny(title, reason) => {
            axum::Json(json!({"is_allowed": false, "title": title, "reason": reason}))
                .into_response()
        }
        Behaviour::Status(status) => StatusCode::from_u16(status)
            .expect("status")
            .into_response(),
        Behaviour::Raw(text) => ([("content-type", "application/json")], text).into_response(),
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            axum::Json(json!({"is_allowed": true})).into_response()
        }
        Behaviour::RedirectTo(location) => {
            (StatusCode::FOUND, [("location", location)]).into_response()
        }
    }
}

/// A `user.pre_create` envelope as Authgear sends it.
fn pre_create(id: &str) -> Value {
    json!({
        "id": id,
        "seq": 12,
        "type": "user.pre_create",
        "payload": {
            "user": {"id": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "standard_attributes": {"email": "ada@example.com"}, "roles": []},
            "identities": [{"type": "login_id", "claims": {"email": "ada@example.com"}}]
        },
        "context": {"timestamp": 1_764_000_000, "triggered_by": "user", "app_id": "acme"}
    })
}

async fn add_hook(app: &TestApp, tenant: &str, key: &str, body: Value) -> Value {
    let (status, created) = app
        .call(
            "POST",
            &format!("/v1/tenants/{tenant}/hooks"),
            Some(key),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn evaluate(app: &TestApp, tenant: &str, key: &str, event: &Value) -> Value {
    let (status, decision) = app
        .call(
            "POST",
            &format!("/v1/tenants/{tenant}/blocking-events"),
            Some(key),
            Some(event),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    decision
}

fn outcomes(decision: &Value) -> Vec<&str> {
    decision["trace"]
        .as_array()
        .expect("trace")
        .iter()
        .map(|entry| entry["outcome"].as_str().expect("outcome"))
        .collect()
}

#[tokio::test]
async fn without_hooks_or_with_allowing_ones_the_event_passes_unchanged() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let event = pre_create("e1");
    let decision = evaluate(&app, "acme", &key, &event).await;
    assert_eq!(decision["is_allowed"], true);
    assert_eq!(decision["payload"], event["payload"]);
    assert!(decision["trace"].as_array().expect("trace").is_empty());

    let mut hooks = HookServer::start().await;
    add_hook(
        &app,
        "acme",
        &key,
        json!({"event_type": "user.pre_create", "url": hooks.hook("a", Behaviour::Allow)}),
    )
    .await;
    let decision = evaluate(&app, "acme", &key, &event).await;
    assert_eq!(
        (decision["is_allowed"].clone(), outcomes(&decision)),
        (json!(true), vec!["allowed"])
    );
    assert_eq!(decision["payload"], event["payload"]);
    assert_eq!(decision["trace"][0]["status"], 200);
    assert_eq!(hooks.calls().len(), 1);
}

#[tokio::test]
async fn each_hook_sees_the_mutations_before_it_and_the_result_is_returned() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    let first =
        json!({"user": {"standard_attributes": {"email": "ada@example.com", "given_name": "Ada"}}});
    let second = json!({"user": {"roles": ["member"]}});
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("first", Behaviour::Mutate(first)), "position": 1})).await;
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("second", Behaviour::Mutate(second)), "position": 2})).await;
    let decision = evaluate(&app, "acme", &key, &pre_create("e1")).await;
    assert_eq!(decision["is_allowed"], true, "{decision}");
    assert_eq!(outcomes(&decision), ["mutated", "mutated"]);
    let user = &decision["payload"]["user"];
    assert_eq!(user["standard_attributes"]["given_name"], "Ada");
    assert_eq!(user["roles"], json!(["member"]));
    assert_eq!(
        user["id"], "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "members nobody mutated stay"
    );
    let calls = hooks.calls();
    assert_eq!(
        calls
            .iter()
            .map(|call| call.hook.as_str())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    let seen_by_second: Value = serde_json::from_slice(&calls[1].body).expect("JSON");
    assert_eq!(
        seen_by_second["payload"]["user"]["standard_attributes"]["given_name"],
        "Ada"
    );
    assert_eq!(seen_by_second["type"], "user.pre_create");
    assert_eq!(seen_by_second["id"], "e1");
}

#[tokio::test]
async fn a_refusal_stops_the_chain_with_its_reason() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("no", Behaviour::Deny("Sign-ups are closed", "The beta is full")), "position": 1})).await;
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("never", Behaviour::Allow), "position": 2})).await;
    let decision = evaluate(&app, "acme", &key, &pre_create("e1")).await;
    assert_eq!(decision["is_allowed"], false);
    assert_eq!(
        decision["reasons"],
        json!([{"title": "Sign-ups are closed", "reason": "The beta is full"}])
    );
    assert_eq!(outcomes(&decision), ["denied"]);
    assert_eq!(
        hooks
            .calls()
            .iter()
            .map(|call| call.hook.clone())
            .collect::<Vec<_>>(),
        ["no"]
    );
}

/// Hooks that fail in one way each; under fail_closed each refuses the operation, under
/// fail_open each is skipped and the next hook still runs.
#[tokio::test]
async fn failing_hooks_refuse_under_fail_closed_and_are_skipped_under_fail_open() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    let other = hooks.hook("elsewhere", Behaviour::Allow);
    let cases: Vec<(&str, Behaviour, &str)> = vec![
        (
            "forbidden",
            Behaviour::Mutate(json!({"user": {"id": "someone-else"}})),
            "forbidden mutation",
        ),
        (
            "refusing-mutator",
            Behaviour::Raw(r#"{"is_allowed": false, "mutations": {"user": {"roles": []}}}"#),
            "malformed answer",
        ),
        ("malformed", Behaviour::Raw("{not json"), "malformed answer"),
        (
            "no-verdict",
            Behaviour::Raw(r#"{"allowed": true}"#),
            "malformed answer",
        ),
        ("error", Behaviour::Status(500), "answered HTTP 500"),
        (
            "redirect",
            Behaviour::RedirectTo(other),
            "redirects are not followed",
        ),
        ("slow", Behaviour::Slow(Duration::from_secs(5)), "timed out"),
        (
            "wrong-type",
            Behaviour::Mutate(json!({"user": {"roles": "admin"}})),
            "must be an array of strings",
        ),
    ];
    for (index, (name, behaviour, expected)) in cases.into_iter().enumerate() {
        let tenant = format!("t{index}");
        let tenant_key = app.tenant(&tenant).await;
        let url = hooks.hook(name, behaviour);
        let hook = add_hook(
            &app,
            &tenant,
            &tenant_key,
            json!({"event_type": "user.pre_create", "url": url, "timeout_ms": 300, "position": 1}),
        )
        .await;
        add_hook(&app, &tenant, &tenant_key, json!({"event_type": "user.pre_create", "url": hooks.hook("after", Behaviour::Allow), "position": 2})).await;
        let started = Instant::now();
        let closed = evaluate(&app, &tenant, &tenant_key, &pre_create("e1")).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{name}: answered in time"
        );
        assert_eq!(closed["is_allowed"], false, "{name}: {closed}");
        assert_eq!(outcomes(&closed), ["failed"], "{name}");
        let text = closed.to_string();
        assert!(
            text.contains(expected),
            "{name}: expected {expected:?} in {text}"
        );
        assert!(
            hooks.calls().iter().all(|call| call.hook != "after"),
            "{name}: the chain stopped"
        );
        assert!(
            hooks.calls().iter().all(|call| call.hook != "elsewhere"),
            "{name}: no redirect followed"
        );

        let (status, _) = app
            .call(
                "PATCH",
                &format!(
                    "/v1/tenants/{tenant}/hooks/{}",
                    hook["id"].as_str().expect("id")
                ),
                Some(&tenant_key),
                Some(&json!({"failure_policy": "fail_open"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let open = evaluate(&app, &tenant, &tenant_key, &pre_create("e2")).await;
        assert_eq!(open["is_allowed"], true, "{name}: {open}");
        assert_eq!(outcomes(&open), ["failed_open", "allowed"], "{name}");
        assert_eq!(
            open["payload"],
            pre_create("e2")["payload"],
            "{name}: a skipped hook changes nothing"
        );
        let _ = hooks.calls();
    }
    let _ = key;
}

/// Slow hooks against a 1.5 s chain deadline: the first answers in 1 s, the second would take
/// 5 s but gets only what is left, the third is not called. Without the deadline the chain would
/// take 11 s; the bound asserted is loose because the machine may be busy.
#[tokio::test]
async fn the_chain_deadline_bounds_several_slow_hooks() {
    let app = TestApp::spawn_with(|options| options.settings.hook_chain_deadline_ms = 1_500).await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    let plan = [
        ("one", Duration::from_secs(1)),
        ("two", Duration::from_secs(5)),
        ("three", Duration::from_secs(5)),
    ];
    for (position, (name, delay)) in plan.into_iter().enumerate() {
        let url = hooks.hook(name, Behaviour::Slow(delay));
        add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": url, "timeout_ms": 1_500, "failure_policy": "fail_open", "position": position})).await;
    }
    let started = Instant::now();
    let decision = evaluate(&app, "acme", &key, &pre_create("e1")).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "answered {elapsed:?} after the call: {decision}"
    );
    assert_eq!(
        outcomes(&decision),
        ["allowed", "failed_open", "failed_open"],
        "{decision}"
    );
    assert!(
        decision["trace"][1]["error"]
            .as_str()
            .expect("error")
            .contains("timed out"),
        "{decision}"
    );
    assert!(
        decision["trace"][2]["error"]
            .as_str()
            .expect("error")
            .contains("deadline"),
        "{decision}"
    );
    let called: Vec<String> = hooks.calls().into_iter().map(|call| call.hook).collect();
    assert_eq!(
        called,
        ["one", "two"],
        "the third hook is not called once the deadline has passed"
    );

    // Under fail_closed the deadline refuses.
    let app = TestApp::spawn_with(|options| options.settings.hook_chain_deadline_ms = 500).await;
    let key = app.tenant("acme").await;
    let url = hooks.hook("slower", Behaviour::Slow(Duration::from_secs(10)));
    add_hook(
        &app,
        "acme",
        &key,
        json!({"event_type": "user.pre_create", "url": url, "timeout_ms": 500}),
    )
    .await;
    let started = Instant::now();
    let decision = evaluate(&app, "acme", &key, &pre_create("e1")).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{decision}");
    assert_eq!(decision["is_allowed"], false);
    assert_eq!(outcomes(&decision), ["failed"]);
}

#[tokio::test]
async fn a_chain_whose_result_breaks_the_schema_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    // Replacing jwt.payload whole is allowed, but this replacement lacks the required `sub`.
    let mutation = json!({"jwt": {"payload": {"iss": "issuer", "aud": ["audience"]}}});
    add_hook(&app, "acme", &key, json!({"event_type": "oidc.jwt.pre_create", "url": hooks.hook("jwt", Behaviour::Mutate(mutation)), "failure_policy": "fail_open"})).await;
    let event = json!({"type": "oidc.jwt.pre_create", "payload": {"user": {"id": "u1"}, "jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "u1"}}}});
    let decision = evaluate(&app, "acme", &key, &event).await;
    assert_eq!(decision["is_allowed"], false, "{decision}");
    assert_eq!(
        decision["payload"], event["payload"],
        "a refusal returns the payload unchanged"
    );
    assert!(
        decision["reasons"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("sub"),
        "{decision}"
    );
    assert_eq!(hooks.calls().len(), 1);
}

#[tokio::test]
async fn hooks_receive_signed_authgear_envelopes() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    add_hook(&app, "acme", &key, json!({"event_type": "oidc.jwt.pre_create", "url": hooks.hook("jwt", Behaviour::Mutate(json!({"jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "user_id", "tier": "gold"}}}))), "secret": secret})).await;
    let event = json!({"type": "oidc.jwt.pre_create", "payload": {"user": {"id": "u1"}, "jwt": {"payload": {"iss": "issuer", "aud": ["audience"], "sub": "user_id"}}}});
    let decision = evaluate(&app, "acme", &key, &event).await;
    assert_eq!(
        decision["payload"]["jwt"]["payload"]["tier"], "gold",
        "{decision}"
    );
    let call = hooks.calls().remove(0);
    let webhook = standardwebhooks::Webhook::new(secret).expect("secret");
    webhook
        .verify(&call.body, &call.headers)
        .expect("the hook can verify the Standard Webhooks signature");
    let native = call
        .headers
        .get("x-authgear-body-signature")
        .expect("native header")
        .to_str()
        .expect("ascii");
    use hmac::Mac;
    let key_bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .expect("base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key_bytes).expect("key");
    mac.update(&call.body);
    assert_eq!(native, hex::encode(mac.finalize().into_bytes()));
    let envelope: Value = serde_json::from_slice(&call.body).expect("JSON");
    assert_eq!(envelope["type"], "oidc.jwt.pre_create");
    assert!(envelope["context"]["timestamp"].is_i64());
}

#[tokio::test]
async fn only_blocking_types_and_valid_payloads_are_evaluated() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let cases = [
        (
            json!({"type": "user.created", "payload": {"user": {}, "identities": []}}),
            "/type",
            "not a blocking event type",
        ),
        (
            json!({"type": "user.pre_create", "payload": {"user": {}}}),
            "/payload",
            "identities",
        ),
        (
            json!({"type": "user.pre_create", "payload": {"user": {"id": 7}, "identities": []}}),
            "/payload/user/id",
            "string",
        ),
    ];
    for (event, path, expected) in cases {
        let (status, problem) = app
            .call(
                "POST",
                "/v1/tenants/acme/blocking-events",
                Some(&key),
                Some(&event),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["path"], path, "{problem}");
        assert!(problem.to_string().contains(expected), "{problem}");
    }
    let (status, problem) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&key),
            Some(&json!({"event_type": "user.created", "url": "http://127.0.0.1:1/"})),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("/event_type"))
    );
    let (status, problem) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&key),
            Some(&json!({"event_type": "user.pre_create", "url": "http://169.254.169.254/latest"})),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("/url"))
    );
}

#[tokio::test]
async fn decisions_are_recorded_and_hooks_and_decisions_stay_within_their_tenant() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let beta = app.tenant("beta").await;
    let mut hooks = HookServer::start().await;
    let hook = add_hook(&app, "acme", &acme, json!({"event_type": "user.pre_create", "url": hooks.hook("acme-only", Behaviour::Deny("No", "acme says no"))})).await;
    let hook_id = hook["id"].as_str().expect("id");
    assert!(
        hook["secret"]
            .as_str()
            .expect("secret shown once")
            .starts_with("whsec_")
    );

    let decision = evaluate(&app, "beta", &beta, &pre_create("b1")).await;
    assert_eq!(
        decision["is_allowed"], true,
        "acme's hook does not run for beta"
    );
    assert!(hooks.calls().is_empty());
    for (method, path) in [
        ("GET", format!("/v1/tenants/acme/hooks/{hook_id}")),
        ("GET", "/v1/tenants/acme/hooks".to_owned()),
        ("GET", "/v1/tenants/acme/blocking-events".to_owned()),
        ("DELETE", format!("/v1/tenants/acme/hooks/{hook_id}")),
    ] {
        let (status, _) = app.call(method, &path, Some(&beta), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/beta/hooks/{hook_id}"),
            Some(&beta),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let refused = evaluate(&app, "acme", &acme, &pre_create("a1")).await;
    assert_eq!(refused["is_allowed"], false);
    let listed = app.get("/v1/tenants/acme/blocking-events", &acme).await;
    let decisions = listed["data"].as_array().expect("data");
    assert_eq!(decisions.len(), 1, "{listed}");
    assert_eq!(decisions[0]["event_id"], "a1");
    assert_eq!(decisions[0]["is_allowed"], false);
    assert_eq!(decisions[0]["reasons"][0]["reason"], "acme says no");
    assert_eq!(decisions[0]["trace"][0]["hook_id"], hook_id);
    let beta_listed = app.get("/v1/tenants/beta/blocking-events", &beta).await;
    assert_eq!(beta_listed["data"].as_array().expect("data").len(), 1);
    assert_eq!(beta_listed["data"][0]["event_id"], "b1");
    let admin_view = app
        .get("/v1/tenants/acme/blocking-events?limit=1", ADMIN_KEY)
        .await;
    assert_eq!(admin_view["data"][0]["id"], decisions[0]["id"]);

    // Disabling the hook takes effect at once: the cached chain is dropped on change.
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/hooks/{hook_id}"),
            Some(&acme),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        evaluate(&app, "acme", &acme, &pre_create("a2")).await["is_allowed"],
        true
    );
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/tenants/acme/hooks/{hook_id}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        app.get("/v1/tenants/acme/hooks", &acme).await["data"]
            .as_array()
            .expect("data")
            .is_empty()
    );
}

#[tokio::test]
async fn hooks_are_called_in_position_order_and_positions_default_to_the_end() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut hooks = HookServer::start().await;
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("b", Behaviour::Allow), "position": 20})).await;
    add_hook(&app, "acme", &key, json!({"event_type": "user.pre_create", "url": hooks.hook("a", Behaviour::Allow), "position": 10})).await;
    let last = add_hook(
        &app,
        "acme",
        &key,
        json!({"event_type": "user.pre_create", "url": hooks.hook("c", Behaviour::Allow)}),
    )
    .await;
    assert_eq!(last["position"], 30);
    add_hook(&app, "acme", &key, json!({"event_type": "user.profile.pre_update", "url": hooks.hook("other-type", Behaviour::Allow)})).await;
    evaluate(&app, "acme", &key, &pre_create("e1")).await;
    let called: Vec<String> = hooks.calls().into_iter().map(|call| call.hook).collect();
    assert_eq!(called, ["a", "b", "c"]);
}

/// The path of the one problem in a 422 answer to a blocking evaluation of `event`.
async fn refused_at(app: &TestApp, key: &str, event: Value) -> String {
    let (status, problem) = app
        .call(
            "POST",
            "/v1/tenants/acme/blocking-events",
            Some(key),
            Some(&event),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    problem["errors"][0]["path"]
        .as_str()
        .expect("a path")
        .to_owned()
}

/// A type that is not blocking is refused at the place where the envelope that was sent names
/// its type: a OneWelcome envelope at `/metadata/type`, a flat document at `/type` even for an
/// Asgardeo type, and an Asgardeo envelope at its event's key under `/events`.
#[tokio::test]
async fn a_non_blocking_type_is_refused_where_the_envelope_sent_names_it() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let catalog = herald_catalog::catalog::Catalog::builtin();
    let native_example = |taxonomy: &str| {
        let definition = catalog
            .iter()
            .find(|definition| {
                definition.taxonomy().as_str() == taxonomy
                    && !definition.is_blocking()
                    && definition.example().is_some()
            })
            .expect("a non-blocking type with an example");
        let envelope =
            herald_catalog::envelope::example_envelope(definition).expect("an example envelope");
        (definition.name().to_owned(), envelope)
    };
    let (_, onewelcome) = native_example("onewelcome");
    assert_eq!(refused_at(&app, &key, onewelcome).await, "/metadata/type");

    let (asgardeo_type, asgardeo) = native_example("asgardeo");
    let escaped = asgardeo_type.replace('~', "~0").replace('/', "~1");
    assert_eq!(
        refused_at(&app, &key, asgardeo.clone()).await,
        format!("/events/{escaped}")
    );

    let payload = asgardeo["events"][&asgardeo_type].clone();
    let flat = json!({"type": asgardeo_type, "payload": payload});
    assert_eq!(refused_at(&app, &key, flat).await, "/type");
}
