//! `herald listen` end to end: the real binary holds a stream open to an in-process Herald and
//! forwards each delivery to a real local receiver; the local answers become the attempts.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::postgres::FreshPostgres;
use crate::support::{ADMIN_KEY, HeraldProcess, Receiver, Reply, TestApp};

fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}})
}

/// The event id of a delivered (native OneWelcome) body.
fn event_id_of(body: &Value) -> &str {
    body["metadata"]["eventId"]
        .as_str()
        .expect("metadata.eventId")
}

fn user_created(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "UserCreatedEvent", "payload": {"userId": user_id}})
}

/// `herald listen` as a child process; every line it prints arrives on `lines`. Killed on drop.
struct ListenProcess {
    child: std::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl ListenProcess {
    fn start(base: &str, key: &str, forward_to: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "listen",
                "--server",
                base,
                "--tenant",
                "acme",
                "--forward-to",
            ])
            .arg(forward_to)
            .args(["--max-backoff-s", "1"])
            .args(extra)
            .env("HERALD_API_KEY", key)
            .env_remove("HERALD_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("herald listen starts");
        let (sender, lines) = mpsc::unbounded_channel();
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for stream in streams {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = sender.send(line);
                }
            });
        }
        ListenProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits at most 20 s for a line containing `marker`; returns the rest of that line.
    async fn wait_for_line(&mut self, marker: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no line with {marker:?}; saw {:?}", self.seen))
                .unwrap_or_else(|| panic!("listen ended before {marker:?}; saw {:?}", self.seen));
            let rest = line.split(marker).nth(1).map(str::to_owned);
            self.seen.push(line);
            if let Some(rest) = rest {
                return rest;
            }
        }
    }

    /// SIGINT (Ctrl-C); returns once the process said it closed its session and exited.
    async fn interrupt(&mut self, session: &str) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.wait_for_line(&format!("Session {session} closed."))
            .await;
        // It exits right after saying so.
        self.child.wait().expect("waited")
    }

    /// The secret and the session id it printed on its first connection.
    async fn session(&mut self) -> (String, String) {
        let secret = self
            .wait_for_line("Signing secret: ")
            .await
            .trim()
            .to_owned();
        let session = self
            .wait_for_line("Connected: session ")
            .await
            .trim()
            .to_owned();
        (secret, session)
    }
}

impl Drop for ListenProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The delivery of `event_id` among the session's deliveries.
async fn delivery_of(app: &TestApp, key: &str, session: &str, event_id: &str) -> Value {
    app.deliveries("acme", key, session)
        .await
        .into_iter()
        .find(|delivery| delivery["event_id"] == event_id)
        .unwrap_or_else(|| panic!("no delivery of {event_id}"))
}

#[tokio::test]
async fn deliveries_reach_the_local_receiver_signed_and_its_answers_are_the_attempts() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let mut listen = ListenProcess::start(
        &app.base,
        &key,
        &receiver.url("/webhooks"),
        &["--filter", "PasswordUpdatedEvent"],
    );
    let (secret, session) = listen.session().await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    // The session is an endpoint of the tenant, with the filter given.
    let endpoint = app
        .get(&format!("/v1/tenants/acme/endpoints/{session}"), &key)
        .await;
    assert_eq!(endpoint["filters"], json!(["PasswordUpdatedEvent"]));

    receiver.script([Reply::Status(500)]);
    let event = password_updated("evt-listen-1", "0f8fad5b-d9cb-469f-a165-70867728950e");
    app.publish("acme", &key, &event).await;
    app.publish(
        "acme",
        &key,
        &user_created("evt-not-listened", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
    )
    .await;
    assert_eq!(app.deliver().await, 1, "only the matching event");

    let first = receiver.next().await;
    assert_eq!(first.path, "/webhooks");
    assert_eq!(event_id_of(&first.json()), "evt-listen-1");
    assert_eq!(first.json()["payload"], event["payload"]);
    let webhook = standardwebhooks::Webhook::new(&secret).expect("secret");
    webhook
        .verify(&first.body, &first.headers)
        .expect("the printed secret verifies the forwarded delivery");

    // The local 500 is the attempt's result, and it is retried by the schedule.
    let delivery = delivery_of(&app, &key, &session, "evt-listen-1").await;
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();
    let attempts = app.attempts("acme", &key, &delivery_id).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["status"], 500, "{attempts:?}");
    assert!(attempts[0]["latency_ms"].is_u64(), "{attempts:?}");
    listen.wait_for_line("PasswordUpdatedEvent").await;

    app.advance(Duration::from_secs(2));
    assert_eq!(app.deliver().await, 1);
    let second = receiver.next().await;
    assert_eq!(second.body, first.body, "the same event, byte for byte");
    webhook
        .verify(&second.body, &second.headers)
        .expect("the retry verifies too");
    let attempts = app.attempts("acme", &key, &delivery_id).await;
    let statuses: Vec<&Value> = attempts.iter().map(|attempt| &attempt["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(200)]);
    assert_eq!(
        app.delivery("acme", &key, &delivery_id).await["state"],
        "delivered"
    );
    assert!(
        receiver
            .next_within(Duration::from_millis(200))
            .await
            .is_none(),
        "the other event type never arrives"
    );
    // Ctrl-C closes the session: its endpoint is gone.
    let status = listen.interrupt(&session).await;
    assert!(status.success(), "{status:?}");
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/tenants/acme/endpoints/{session}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn no_stream_is_a_transport_failure_that_is_retried() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let mut listen = ListenProcess::start(&app.base, &key, &receiver.url("/hook"), &[]);
    let (secret, session) = listen.session().await;
    drop(listen);

    let event = password_updated("evt-while-away", "0f8fad5b-d9cb-469f-a165-70867728950e");
    app.publish("acme", &key, &event).await;
    // The CLI is gone. Herald may not have noticed yet (a dead peer shows only when a write
    // fails): the attempt then fails when its wait runs out. Either way, it is a failure.
    assert_eq!(app.deliver().await, 1);
    let delivery = delivery_of(&app, &key, &session, "evt-while-away").await;
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();
    assert_eq!(delivery["state"], "scheduled", "{delivery}");
    let attempts = app.attempts("acme", &key, &delivery_id).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0]["status"].is_null(), "{attempts:?}");
    assert!(attempts[0]["error"].is_string(), "{attempts:?}");
    assert!(receiver.drain().is_empty());
    // Disabled meanwhile (as a local 410 would): resuming the session enables it again.
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/v1/tenants/acme/endpoints/{session}"),
            Some(&key),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut listen = ListenProcess::start(
        &app.base,
        &key,
        &receiver.url("/hook"),
        &["--session", &session],
    );
    let (secret_again, resumed) = listen.session().await;
    assert_eq!(resumed, session, "the same session, resumed");
    assert_eq!(secret_again, secret, "its secret printed again");
    app.advance(Duration::from_secs(2));
    assert_eq!(app.deliver().await, 1);
    let arrived = receiver.next().await.json();
    assert_eq!(event_id_of(&arrived), "evt-while-away");
    assert_eq!(arrived["payload"], event["payload"]);
    let attempts = app.attempts("acme", &key, &delivery_id).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[1]["status"], 200, "{attempts:?}");
}

#[tokio::test]
async fn herald_listen_survives_a_restart_of_herald() {
    let app = TestApp::spawn().await;
    let address: SocketAddr = app.server.address;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let mut listen = ListenProcess::start(&app.base, &key, &receiver.url("/hook"), &[]);
    let (secret, session) = listen.session().await;

    // Published before the restart, not yet delivered.
    let before = password_updated("evt-before-restart", "0f8fad5b-d9cb-469f-a165-70867728950e");
    app.publish("acme", &key, &before).await;
    let directory = app.stop().await;
    listen.wait_for_line("The stream ended").await;

    let app = TestApp::spawn_in(directory, |options| options.settings.listen = address).await;
    let resumed = listen.wait_for_line("Connected: session ").await;
    assert_eq!(resumed.trim(), session, "the same session, resumed");

    let after = password_updated("evt-after-restart", "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    app.publish("acme", &key, &after).await;
    app.deliver_until_idle().await;
    let mut arrived: Vec<String> = receiver
        .take(2)
        .await
        .iter()
        .map(|received| {
            standardwebhooks::Webhook::new(&secret)
                .expect("secret")
                .verify(&received.body, &received.headers)
                .expect("signed with the session's secret");
            event_id_of(&received.json()).to_owned()
        })
        .collect();
    arrived.sort();
    assert_eq!(arrived, ["evt-after-restart", "evt-before-restart"]);
}

/// `herald serve` as a process on PostgreSQL (one node), with its own dispatcher loop: a
/// published event reaches the local receiver through `herald listen` with nobody stepping it.
#[tokio::test]
async fn herald_listen_works_against_a_herald_serve_process_on_postgres() {
    let database = FreshPostgres::create("herald_listen").await;
    let herald = HeraldProcess::serve(std::path::Path::new(&database.url), &[], &[]).await;
    let http = reqwest::Client::new();
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants",
            Some(ADMIN_KEY),
            Some(&json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().expect("key").to_owned();
    let mut receiver = Receiver::start().await;
    let mut listen = ListenProcess::start(&herald.base, &key, &receiver.url("/pg"), &[]);
    let (secret, _session) = listen.session().await;
    let event = password_updated("evt-on-postgres", "0f8fad5b-d9cb-469f-a165-70867728950e");
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/events",
            Some(&key),
            Some(&event),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let arrived = receiver.next().await;
    assert_eq!(event_id_of(&arrived.json()), "evt-on-postgres");
    standardwebhooks::Webhook::new(&secret)
        .expect("secret")
        .verify(&arrived.body, &arrived.headers)
        .expect("signed with the session's secret");
    listen.wait_for_line("PasswordUpdatedEvent").await;
    drop(listen);
    drop(herald);
    database.remove().await;
}
