//! The HTTP client against real servers on loopback: the guard at send and at connect time,
//! redirects not followed, timeouts, body excerpts, and connection reuse.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use herald_delivery::http_client::{
    EXCERPT_LIMIT, HttpClient, OutboundError, OutboundRequest, OutboundResult,
};
use herald_delivery::ssrf::{NetworkPolicy, SpecialRange, UrlRefused};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server saw.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    hook_hits: AtomicUsize,
    redirect_target_hits: AtomicUsize,
    last_request: Mutex<Option<(HeaderMap, Bytes)>>,
}

struct TestServer {
    address: SocketAddr,
    seen: Arc<Seen>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// An axum server on `127.0.0.1:0` that counts the connections it accepts.
async fn spawn_server() -> TestServer {
    let seen = Arc::new(Seen::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let redirect_target = format!("http://{address}/redirect-target");

    let router =
        Router::new()
            .route(
                "/hook",
                post({
                    let seen = Arc::clone(&seen);
                    move |headers: HeaderMap, body: Bytes| async move {
                        seen.hook_hits.fetch_add(1, Ordering::SeqCst);
                        *seen.last_request.lock().unwrap() = Some((headers, body));
                        (StatusCode::CREATED, "received")
                    }
                }),
            )
            .route(
                "/busy",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "120")],
                        "later",
                    )
                }),
            )
            .route(
                "/redirect",
                post(move || async move {
                    (StatusCode::FOUND, [(header::LOCATION, redirect_target)], "")
                }),
            )
            .route(
                "/redirect-target",
                post({
                    let seen = Arc::clone(&seen);
                    move || async move {
                        seen.redirect_target_hits.fetch_add(1, Ordering::SeqCst);
                        "you followed"
                    }
                }),
            )
            .route(
                "/silent",
                post(|| async {
                    std::future::pending::<()>().await;
                    "never"
                }),
            )
            .route(
                "/huge",
                post(|| async { vec![b'a'; 10 * 1024 * 1024].into_response() }),
            );

    let counted = listener.tap_io({
        let seen = Arc::clone(&seen);
        move |_stream| {
            seen.connections.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::spawn(async move { axum::serve(counted, router).await.unwrap() });
    TestServer { address, seen }
}

fn loopback_allowed() -> NetworkPolicy {
    NetworkPolicy::with_allowed(["127.0.0.0/8".parse().unwrap()])
}

fn post_to(url: String) -> OutboundRequest {
    OutboundRequest {
        url,
        headers: vec![("webhook-id".to_owned(), "msg_1".to_owned())],
        body: Bytes::from_static(br#"{"type":"user.created"}"#),
        timeout: Duration::from_secs(10),
    }
}

/// Asserts an answer and returns its excerpt.
#[track_caller]
fn responded(
    result: OutboundResult,
    expected_status: u16,
) -> (String, Option<String>, Option<String>) {
    match result {
        OutboundResult::Responded {
            status,
            retry_after,
            location,
            body_excerpt,
            ..
        } => {
            assert_eq!(status, expected_status);
            (body_excerpt, retry_after, location)
        }
        OutboundResult::Failed { error, .. } => panic!("expected {expected_status}, got {error:?}"),
    }
}

#[track_caller]
fn failed(result: OutboundResult) -> OutboundError {
    match result {
        OutboundResult::Failed { error, .. } => error,
        OutboundResult::Responded { status, .. } => panic!("expected a failure, got {status}"),
    }
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_in_every_spelling() {
    let server = spawn_server().await;
    let client = HttpClient::new(NetworkPolicy::default()).unwrap();
    let port = server.address.port();
    for url in [
        server.url("/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let error = failed(client.send(post_to(url.clone())).await);
        match error {
            OutboundError::Refused(UrlRefused::Address(refused)) => {
                assert_eq!(refused.kind, SpecialRange::Loopback, "{url}");
            }
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time() {
    let server = spawn_server().await;
    let client = HttpClient::new(NetworkPolicy::default()).unwrap();
    let url = format!("http://localhost:{}/hook", server.address.port());
    let error = failed(client.send(post_to(url)).await);
    match error {
        OutboundError::Refused(UrlRefused::AllAddressesRefused { host, first }) => {
            assert_eq!(host, "localhost");
            assert_eq!(first.kind, SpecialRange::Loopback);
        }
        other => panic!("expected a connect-time refusal, got {other:?}"),
    }
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_that_resolves_to_an_allowed_address_is_reached() {
    let server = spawn_server().await;
    let policy =
        NetworkPolicy::with_allowed(["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
    let client = HttpClient::new(policy).unwrap();
    let url = format!("http://localhost:{}/hook", server.address.port());
    let (excerpt, ..) = responded(client.send(post_to(url)).await, 201);
    assert_eq!(excerpt, "received");
}

#[tokio::test]
async fn an_allowed_request_arrives_and_its_answer_comes_back() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();

    let result = client.send(post_to(server.url("/hook"))).await;
    assert!(result.latency() > Duration::ZERO);
    let (excerpt, retry_after, location) = responded(result, 201);
    assert_eq!(
        (excerpt.as_str(), retry_after, location),
        ("received", None, None)
    );

    let (headers, body) = server.seen.last_request.lock().unwrap().take().unwrap();
    assert_eq!(body, Bytes::from_static(br#"{"type":"user.created"}"#));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["webhook-id"], "msg_1");
    assert_eq!(
        headers["user-agent"],
        concat!("Herald/", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_given_content_type_is_kept() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let mut request = post_to(server.url("/hook"));
    request.headers.push((
        "Content-Type".to_owned(),
        "application/secevent+jwt".to_owned(),
    ));
    responded(client.send(request).await, 201);
    let (headers, _) = server.seen.last_request.lock().unwrap().take().unwrap();
    let content_types: Vec<_> = headers.get_all("content-type").iter().collect();
    assert_eq!(content_types, ["application/secevent+jwt"]);
}

#[tokio::test]
async fn retry_after_is_returned() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let (excerpt, retry_after, _) = responded(client.send(post_to(server.url("/busy"))).await, 503);
    assert_eq!(
        (excerpt.as_str(), retry_after.as_deref()),
        ("later", Some("120"))
    );
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let (_, _, location) = responded(client.send(post_to(server.url("/redirect"))).await, 302);
    assert_eq!(location, Some(server.url("/redirect-target")));
    assert_eq!(server.seen.redirect_target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_timeout() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let timeout = Duration::from_millis(300);
    let mut request = post_to(server.url("/silent"));
    request.timeout = timeout;
    let result = client.send(request).await;
    let latency = result.latency();
    assert_eq!(failed(result), OutboundError::Timeout);
    assert!(latency >= timeout, "{latency:?}");
    assert!(latency < timeout + Duration::from_secs(2), "{latency:?}");
}

#[tokio::test]
async fn a_huge_body_is_cut_to_the_excerpt_limit() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let (excerpt, ..) = responded(client.send(post_to(server.url("/huge"))).await, 200);
    assert_eq!(excerpt.len(), EXCERPT_LIMIT);
    assert!(excerpt.bytes().all(|byte| byte == b'a'));
}

/// A raw server that answers 200 and then streams chunks until the client hangs up, so a client
/// that read the whole body would never return.
async fn spawn_endless_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0_u8; 64 * 1024];
        let _ = stream.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // 4095 bytes, so the excerpt limit falls inside the first `é` of the second chunk.
        let chunk = format!("fff\r\n{}a\r\n", "é".repeat(2047));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    address
}

#[tokio::test]
async fn an_endless_body_is_cut_to_the_excerpt_limit() {
    let address = spawn_endless_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let (excerpt, ..) = responded(
        client.send(post_to(format!("http://{address}/"))).await,
        200,
    );
    // The half of a character at the cut is dropped, not shown as a replacement mark.
    assert_eq!(excerpt, format!("{}a", "é".repeat(2047)));
    assert_eq!(excerpt.len(), EXCERPT_LIMIT - 1);
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    for _ in 0..3 {
        responded(client.send(post_to(server.url("/hook"))).await, 201);
    }
    assert_eq!(server.seen.hook_hits.load(Ordering::SeqCst), 3);
    assert_eq!(server.seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let url = format!("http://{address}/hook?token=very-secret");
    match failed(client.send(post_to(url)).await) {
        OutboundError::Connect(message) => {
            assert!(message.contains("connect"), "{message}");
            assert!(!message.contains("very-secret"), "{message}");
            assert!(!message.contains("127.0.0.1"), "{message}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// Exercises the rustls set-up (ring provider, roots, ALPN) up to the handshake, which a plain
/// HTTP server cannot complete.
#[tokio::test]
async fn https_to_a_plain_http_server_fails_the_handshake() {
    let server = spawn_server().await;
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let url = format!("https://{}/hook", server.address);
    match failed(client.send(post_to(url)).await) {
        OutboundError::Connect(_) => {}
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert_eq!(server.seen.hook_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_requests_fail_without_echoing_secrets() {
    let client = HttpClient::new(loopback_allowed()).unwrap();
    let mut request = post_to("http://127.0.0.1:9/".to_owned());
    request.headers.push((
        "webhook-signature".to_owned(),
        "v1,secret\nvalue".to_owned(),
    ));
    assert_eq!(
        failed(client.send(request).await),
        OutboundError::Other("invalid value for header webhook-signature".to_owned())
    );

    let refused = failed(
        client
            .send(post_to("http://user:pw@127.0.0.1:9/".to_owned()))
            .await,
    );
    assert_eq!(refused, OutboundError::Refused(UrlRefused::UserInfo));
    let refused = failed(client.send(post_to("ftp://127.0.0.1:9/".to_owned())).await);
    assert_eq!(
        refused,
        OutboundError::Refused(UrlRefused::Scheme("ftp".to_owned()))
    );
}
