//! Receivers that misbehave: an endpoint that refuses connections for a while and then comes up
//! (everything arrives, in order where the endpoint asked for order), one that accepts
//! connections and never answers (the other endpoints' latency is unaffected), and ones that
//! answer garbage, huge bodies, or close the connection halfway (each attempt is recorded with
//! what could be read, bodies are truncated, and failed attempts are retried).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_delivery::http_client::EXCERPT_LIMIT;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Receiver, TestApp};

const ALICE: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";
const BOB: &str = "0b7e4a19-3c2d-4f58-8e61-9a0b1c2d3e4f";

fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}})
}

/// Advances the clock past every jittered retry of a one-second schedule and runs the
/// dispatcher until nothing more is due.
async fn next_round(app: &TestApp) {
    app.advance(Duration::from_secs(2));
    app.deliver_until_idle().await;
}

// ---- down for a while, then up ------------------------------------------------------------------

#[tokio::test]
async fn an_endpoint_that_refuses_connections_gets_everything_in_order_once_it_is_up() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    // A socket bound to its port but not listening: connections to it are refused, and the port
    // stays ours until the receiver starts listening on it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let address = socket.local_addr().expect("address");
    let mut endpoints = BTreeMap::new();
    for ordering in ["none", "subject", "strict"] {
        let (endpoint_id, _) = app
            .endpoint(
                "acme",
                &key,
                json!({"url": format!("http://{address}/{ordering}"), "filters": ["*"],
                       "ordering": ordering, "retry_schedule_s": [1, 1, 1, 1, 1, 1, 1, 1]}),
            )
            .await;
        endpoints.insert(ordering, endpoint_id);
    }
    let published = [
        ("alice-1", ALICE),
        ("bob-1", BOB),
        ("alice-2", ALICE),
        ("bob-2", BOB),
        ("alice-3", ALICE),
    ];
    for (event_id, user_id) in published {
        app.publish("acme", &key, &password_updated(event_id, user_id))
            .await;
    }

    // Down: what may go is tried, refused, recorded, and scheduled again.
    assert_eq!(
        app.deliver().await,
        5 + 2 + 1,
        "none: all; subject: each head; strict: one"
    );
    for _ in 0..2 {
        next_round(&app).await;
    }
    for (ordering, endpoint_id) in &endpoints {
        for delivery in app.deliveries("acme", &key, endpoint_id).await {
            assert_ne!(delivery["state"], "delivered", "{ordering}: {delivery}");
            if delivery["n_attempts"].as_u64() > Some(0) {
                let attempts = app
                    .attempts("acme", &key, delivery["id"].as_str().expect("id"))
                    .await;
                let error = attempts[0]["error"].as_str().expect("error");
                assert!(
                    error.starts_with("could not connect"),
                    "{ordering}: {error}"
                );
                assert_eq!(delivery["state"], "scheduled", "{ordering}: {delivery}");
            }
        }
    }

    // Up.
    let mut receiver = Receiver::start_on(socket.listen(64).expect("listen")).await;
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..10 {
        next_round(&app).await;
        for received in receiver.drain() {
            arrived
                .entry(received.path.trim_start_matches('/').to_owned())
                .or_default()
                .push(received.webhook_id().to_owned());
        }
        let n_arrived: usize = arrived.values().map(Vec::len).sum();
        if n_arrived >= 3 * published.len() {
            break;
        }
    }
    let in_publish_order: Vec<String> = published.iter().map(|(id, _)| (*id).to_owned()).collect();
    assert_eq!(arrived["strict"], in_publish_order, "strict is FIFO");
    for subject in ["alice", "bob"] {
        let of_subject = |ids: &Vec<String>| -> Vec<String> {
            ids.iter()
                .filter(|id| id.starts_with(subject))
                .cloned()
                .collect()
        };
        assert_eq!(
            of_subject(&arrived["subject"]),
            of_subject(&in_publish_order),
            "subject ordering keeps {subject}'s events in order"
        );
    }
    let unordered: BTreeSet<&String> = arrived["none"].iter().collect();
    assert_eq!(
        unordered,
        in_publish_order.iter().collect(),
        "none: all of them, once"
    );
    for (ordering, endpoint_id) in &endpoints {
        assert_eq!(
            arrived[*ordering].len(),
            published.len(),
            "{ordering}: once each"
        );
        for delivery in app.deliveries("acme", &key, endpoint_id).await {
            assert_eq!(delivery["state"], "delivered", "{ordering}: {delivery}");
        }
    }
}

// ---- a hanging endpoint -------------------------------------------------------------------------

/// A server that accepts connections and then neither reads nor answers, holding them open.
async fn spawn_black_hole() -> (std::net::SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let held = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            holding.lock().expect("held").push(stream);
        }
    });
    (address, held)
}

#[tokio::test]
async fn an_endpoint_that_never_answers_does_not_delay_the_others() {
    let app = TestApp::spawn_with(|options| options.run_background_work = true).await;
    let key = app.tenant("acme").await;
    let (black_hole, held) = spawn_black_hole().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": format!("http://{black_hole}/never"), "filters": ["*"], "timeout_ms": 30_000}),
    )
    .await;
    let mut healthy = Receiver::start().await;
    app.endpoint(
        "acme",
        &key,
        json!({"url": healthy.url("/fast"), "filters": ["*"]}),
    )
    .await;

    // More events than the hanging endpoint's concurrency limit (16), so it is saturated.
    let mut slowest = Duration::ZERO;
    for event_idx in 0..24 {
        let event_id = format!("evt-{event_idx}");
        let published_at = Instant::now();
        app.publish("acme", &key, &password_updated(&event_id, ALICE))
            .await;
        let arrived = healthy
            .next_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{event_id} did not reach the healthy endpoint within 5 s"));
        assert_eq!(arrived.webhook_id(), event_id);
        slowest = slowest.max(published_at.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "the slowest healthy delivery took {slowest:?}"
    );
    assert!(
        !held.lock().expect("held").is_empty(),
        "the hanging endpoint was being called"
    );
}

// ---- garbage, huge bodies, connections closed halfway -------------------------------------------

/// What the faulty receiver does on the first request to a path; the second gets a clean 200.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Bytes that are not HTTP at all.
    Garbage,
    /// A status code that does not exist in HTTP/1.1's three digits.
    InvalidStatus,
    /// A 200 or 500 with a 10 MiB body.
    Huge(u16),
    /// The status line and headers promise 1000 bytes; 7 come, then the connection closes.
    ClosedMidBody(u16),
    /// The connection closes in the middle of the headers.
    ClosedMidHead,
    /// The connection closes after the request is read, with no answer at all.
    ClosedWithoutAnswer,
    /// A 200 whose body is not UTF-8.
    BinaryBody,
}

const FAULTS: [(&str, Fault); 9] = [
    ("garbage", Fault::Garbage),
    ("invalid-status", Fault::InvalidStatus),
    ("huge-200", Fault::Huge(200)),
    ("huge-500", Fault::Huge(500)),
    ("closed-mid-body-200", Fault::ClosedMidBody(200)),
    ("closed-mid-body-503", Fault::ClosedMidBody(503)),
    ("closed-mid-head", Fault::ClosedMidHead),
    ("closed-without-answer", Fault::ClosedWithoutAnswer),
    ("binary-body", Fault::BinaryBody),
];

/// Reads one request and returns its path (the body is read as far as it came with the head).
async fn read_request_path(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 8192];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1).unwrap_or("/").to_owned()
}

async fn answer(stream: &mut TcpStream, fault: Option<Fault>) {
    let head = |status: u16, length: usize| {
        format!(
            "HTTP/1.1 {status} Whatever\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
        )
    };
    let _ = match fault {
        None => {
            stream
                .write_all(format!("{}ok", head(200, 2)).as_bytes())
                .await
        }
        Some(Fault::Garbage) => {
            stream
                .write_all(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
                .await
        }
        Some(Fault::InvalidStatus) => stream.write_all(b"HTTP/1.1 2000 OK\r\n\r\n").await,
        Some(Fault::Huge(status)) => {
            let size = 10 * 1024 * 1024;
            let mut result = stream.write_all(head(status, size).as_bytes()).await;
            let chunk = vec![b'a'; 64 * 1024];
            // The client stops reading after its excerpt and hangs up; writing then fails.
            for _ in 0..size / chunk.len() {
                result = stream.write_all(&chunk).await;
                if result.is_err() {
                    break;
                }
            }
            result
        }
        Some(Fault::ClosedMidBody(status)) => {
            stream
                .write_all(format!("{}partial", head(status, 1000)).as_bytes())
                .await
        }
        Some(Fault::ClosedMidHead) => stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-le").await,
        Some(Fault::ClosedWithoutAnswer) => Ok(()),
        Some(Fault::BinaryBody) => {
            let mut bytes = head(200, 4).into_bytes();
            bytes.extend_from_slice(b"\x00\xff\xfe\xfd");
            stream.write_all(&bytes).await
        }
    };
    let _ = stream.shutdown().await;
}

/// A raw TCP receiver: the first request to each path of [`FAULTS`] gets that fault, every
/// other request a clean 200. Counts the requests per path.
async fn spawn_faulty_receiver() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let counting = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counting = Arc::clone(&counting);
            tokio::spawn(async move {
                let path = read_request_path(&mut stream).await;
                let name = path.trim_start_matches('/').to_owned();
                let n_before = {
                    let mut seen = counting.lock().expect("seen");
                    let count = seen.entry(name.clone()).or_default();
                    *count += 1;
                    *count - 1
                };
                let fault = FAULTS
                    .iter()
                    .find(|(fault_name, _)| *fault_name == name)
                    .map(|(_, fault)| *fault)
                    .filter(|_| n_before == 0);
                answer(&mut stream, fault).await;
            });
        }
    });
    (address, seen)
}

/// What the first attempt must have recorded.
struct Expected {
    state: &'static str,
    status: Option<u16>,
    /// The recorded response excerpt, or `None` when nothing must be recorded.
    excerpt: Option<fn(&str) -> bool>,
    /// A piece of the recorded error, or `None` when there must be none.
    error: Option<&'static str>,
}

fn expected_after_first_attempt(fault: Fault) -> Expected {
    let transport_error = |error| Expected {
        state: "scheduled",
        status: None,
        excerpt: None,
        error: Some(error),
    };
    match fault {
        Fault::Garbage
        | Fault::InvalidStatus
        | Fault::ClosedMidHead
        | Fault::ClosedWithoutAnswer => transport_error(""),
        Fault::Huge(status) => Expected {
            state: if status == 200 {
                "delivered"
            } else {
                "scheduled"
            },
            status: Some(status),
            excerpt: Some(|excerpt| {
                excerpt.len() == EXCERPT_LIMIT && excerpt.bytes().all(|byte| byte == b'a')
            }),
            error: (status != 200).then_some("HTTP 500"),
        },
        Fault::ClosedMidBody(status) => Expected {
            state: if status == 200 {
                "delivered"
            } else {
                "scheduled"
            },
            status: Some(status),
            excerpt: Some(|excerpt| excerpt == "partial"),
            error: (status != 200).then_some("HTTP 503"),
        },
        Fault::BinaryBody => Expected {
            state: "delivered",
            status: Some(200),
            excerpt: Some(|excerpt| excerpt.starts_with('\u{0}') && excerpt.contains('\u{fffd}')),
            error: None,
        },
    }
}

#[tokio::test]
async fn garbage_huge_and_broken_answers_are_recorded_truncated_and_retried() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let (address, seen) = spawn_faulty_receiver().await;
    let mut endpoints = Vec::new();
    for (name, fault) in FAULTS {
        let (endpoint_id, _) = app
            .endpoint(
                "acme",
                &key,
                json!({"url": format!("http://{address}/{name}"), "filters": ["*"],
                       "retry_schedule_s": [1, 1], "timeout_ms": 5000}),
            )
            .await;
        endpoints.push((name, fault, endpoint_id));
    }
    app.publish("acme", &key, &password_updated("evt-faults", ALICE))
        .await;
    assert_eq!(app.deliver().await, FAULTS.len());

    for (name, fault, endpoint_id) in &endpoints {
        let expected = expected_after_first_attempt(*fault);
        let delivery = app.only_delivery("acme", &key, endpoint_id).await;
        assert_eq!(delivery["state"], expected.state, "{name}: {delivery}");
        let attempts = app
            .attempts("acme", &key, delivery["id"].as_str().expect("id"))
            .await;
        assert_eq!(attempts.len(), 1, "{name}: {attempts:?}");
        let attempt = &attempts[0];
        assert_eq!(
            attempt["status"].as_u64(),
            expected.status.map(u64::from),
            "{name}: {attempt}"
        );
        match expected.excerpt {
            Some(check) => {
                let excerpt = attempt["response"].as_str().expect("an excerpt");
                assert!(
                    check(excerpt),
                    "{name}: excerpt of {} bytes: {:?}",
                    excerpt.len(),
                    &excerpt[..excerpt.len().min(40)]
                );
            }
            None => assert_eq!(attempt["response"], Value::Null, "{name}"),
        }
        match expected.error {
            Some(piece) => {
                let error = attempt["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: an error is recorded: {attempt}"));
                assert!(error.contains(piece), "{name}: {error}");
            }
            None => assert_eq!(attempt["error"], Value::Null, "{name}: {attempt}"),
        }
    }

    // The failed ones are retried, and now succeed; the delivered ones are not sent again.
    next_round(&app).await;
    for (name, fault, endpoint_id) in &endpoints {
        let delivery = app.only_delivery("acme", &key, endpoint_id).await;
        assert_eq!(delivery["state"], "delivered", "{name}: {delivery}");
        let first_delivered = expected_after_first_attempt(*fault).state == "delivered";
        let n_requests = seen.lock().expect("seen").get(*name).copied().unwrap_or(0);
        assert_eq!(n_requests, if first_delivered { 1 } else { 2 }, "{name}");
        assert_eq!(delivery["n_attempts"], n_requests, "{name}");
    }
}
