//! Hostile input: oversized bodies (with and without a length), deep nesting, huge strings,
//! invalid UTF-8, wrong content types, duplicate member names, numbers out of range, bad query
//! strings, batches over the limit, hop-by-hop endpoint headers, forged `herald.*` events. Each
//! request gets a clear 4xx `application/problem+json` answer, nothing of it is stored, and the
//! server goes on serving. Hostile connections too, over raw sockets: slow or silent headers, slow
//! bodies, idle keep-alive, more connections than the cap, malformed framing and control
//! characters in a request head.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestApp};

const PROBLEM_BASE: &str = "https://herald.dev/problems/";
const ALICE: &str = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";
const EVENTS: &str = "/v1/tenants/acme/events";

fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}})
}

/// One hostile request and the answer it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    status: StatusCode,
    /// The problem `type`, after the common base.
    kind: &'static str,
    /// A piece of the `detail`.
    detail_part: &'static str,
    /// The path of the first problem in `errors`, when there must be one.
    problem_path: Option<&'static str>,
}

fn post(name: &'static str, path: &str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        method: "POST",
        path: path.to_owned(),
        body: body.into(),
        content_type: Some("application/json"),
        status: StatusCode::BAD_REQUEST,
        kind: "malformed-json",
        detail_part: "",
        problem_path: None,
    }
}

impl Case {
    fn answered(self, status: StatusCode, kind: &'static str, detail_part: &'static str) -> Self {
        Case {
            status,
            kind,
            detail_part,
            ..self
        }
    }

    fn at(self, problem_path: &'static str) -> Self {
        Case {
            problem_path: Some(problem_path),
            ..self
        }
    }

    fn content_type(self, content_type: Option<&'static str>) -> Self {
        Case {
            content_type,
            ..self
        }
    }
}

async fn check(app: &TestApp, key: &str, case: Case) {
    let name = case.name;
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
    let mut request = app
        .http
        .request(method, format!("{}{}", app.base, case.path))
        .bearer_auth(key);
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if !case.body.is_empty() {
        request = request.body(case.body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    let shown: String = text.chars().take(300).collect();
    assert_eq!(status, case.status.as_u16(), "{name}: {shown}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{name}: {shown}"
    );
    assert!(
        text.len() < 4096,
        "{name}: a clear answer, not {} bytes",
        text.len()
    );
    let problem: Value = serde_json::from_str(&text).expect("problem JSON");
    let shown_problem: String = problem.to_string().chars().take(300).collect();
    assert_eq!(
        problem["type"],
        format!("{PROBLEM_BASE}{}", case.kind),
        "{name}: {shown_problem}"
    );
    assert_eq!(problem["status"], case.status.as_u16(), "{name}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains(case.detail_part),
        "{name}: {detail:?} lacks {:?}",
        case.detail_part
    );
    if let Some(path) = case.problem_path {
        assert_eq!(
            problem["errors"][0]["path"], path,
            "{name}: {shown_problem}"
        );
    }
    // Still serving.
    let (status, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{name}: the server stopped answering"
    );
}

/// A POST over a raw connection with a chunked body (no `Content-Length` to refuse it by) of
/// `total` bytes; returns the status line. The body is written while the answer is read, since
/// the server answers (and stops reading) as soon as the limit is passed.
async fn post_chunked(app: &TestApp, key: &str, path: &str, total: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let host = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connects");
    let (reading, mut writing) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        writing.write_all(head.as_bytes()).await?;
        let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
        chunk.extend(std::iter::repeat_n(b' ', 16 * 1024));
        chunk.extend_from_slice(b"\r\n");
        for _ in 0..total / (16 * 1024) {
            writing.write_all(&chunk).await?;
        }
        writing.write_all(b"0\r\n\r\n").await
    });
    let mut status_line = String::new();
    let mut reading = BufReader::new(reading);
    let read = reading.read_line(&mut status_line);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
        .expect("read");
    // The server may hang up before the whole body is written; that is its right.
    writer.abort();
    status_line
}

#[tokio::test]
async fn hostile_bodies_get_clear_problems_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": "https://hooks.example.com/h", "filters": ["*"]}),
        )
        .await;
    let endpoint = format!("/v1/tenants/acme/endpoints/{endpoint_id}");
    let endpoints = "/v1/tenants/acme/endpoints";
    let batch = "/v1/tenants/acme/events:batch";
    let limit = 256 * 1024;

    let mut oversized = password_updated("evt-big", ALICE);
    oversized["payload"]["padding"] = json!("x".repeat(limit));
    let deep_arrays = format!(
        r#"{{"type": "PasswordUpdatedEvent", "payload": {{"userId": "{ALICE}", "x": {}{}}}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let deep_objects = format!(
        r#"{{"type": "PasswordUpdatedEvent", "payload": {}1{}}}"#,
        r#"{"a":"#.repeat(200),
        "}".repeat(200)
    );
    let huge_type = json!({"type": "x".repeat(200_000), "payload": {}});
    let huge_tenant_name = json!({"id": "huge", "name": "n".repeat(200_000)});
    let huge_url = json!({"url": format!("https://hooks.example.com/{}", "a".repeat(200_000)), "filters": ["*"]});
    let huge_filter =
        json!({"url": "https://hooks.example.com/h", "filters": ["f".repeat(200_000)]});
    let mut invalid_utf8 = br#"{"type": "PasswordUpdatedEvent", "payload": {"userId": ""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xc3\x28\xff");
    invalid_utf8.extend_from_slice(br#""}}"#);
    let valid = password_updated("evt-typed", ALICE).to_string();
    let too_many: Vec<Value> = (0..1001)
        .map(|event_idx| password_updated(&format!("evt-{event_idx}"), ALICE))
        .collect();

    let cases = vec![
        post("oversized event", EVENTS, oversized.to_string())
            .answered(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "262144 bytes"),
        post("oversized endpoint", endpoints, format!(r#"{{"url": "{}"}}"#, "a".repeat(limit)))
            .answered(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "262144 bytes"),
        post("oversized batch", batch, json!({"events": [oversized]}).to_string())
            .answered(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "262144 bytes"),
        post("deeply nested arrays", EVENTS, deep_arrays)
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "recursion limit exceeded"),
        post("deeply nested objects", EVENTS, deep_objects)
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "recursion limit exceeded"),
        post("deeply nested endpoint", endpoints, format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)))
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "recursion limit exceeded"),
        post("a huge event type", EVENTS, huge_type.to_string())
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "unknown event type")
            .at("/type"),
        post("a huge endpoint URL", endpoints, huge_url.to_string())
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/url"),
        post("a huge filter", endpoints, huge_filter.to_string())
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/filters/0"),
        post("invalid UTF-8", EVENTS, invalid_utf8)
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "line 1"),
        post("a lone surrogate", EVENTS, r#"{"type": "\ud800", "payload": {}}"#)
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "line 1"),
        post("an empty body", EVENTS, "")
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "EOF"),
        post("JSON null", EVENTS, "null")
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "expected a JSON object"),
        post("text/plain", EVENTS, valid.clone())
            .content_type(Some("text/plain"))
            .answered(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "application/json"),
        post("no content type", EVENTS, valid.clone())
            .content_type(None)
            .answered(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "application/json"),
        post("form data", endpoints, "url=https://hooks.example.com/h&filters=*")
            .content_type(Some("application/x-www-form-urlencoded"))
            .answered(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "application/json"),
        post("a repeated member in the payload", EVENTS, format!(r#"{{"type": "PasswordUpdatedEvent", "payload": {{"userId": "{ALICE}", "userId": "someone-else"}}}}"#))
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "duplicate member \"userId\" at line 1")
            .at("/payload/userId"),
        post("a repeated type", EVENTS, format!(r#"{{"type": "UserCreatedEvent", "type": "PasswordUpdatedEvent", "payload": {{"userId": "{ALICE}"}}}}"#))
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "duplicate member \"type\"")
            .at("/type"),
        post("a repeated member in a batch", batch, format!(r#"{{"events": [{valid}, {{"id": "a", "id": "b"}}]}}"#))
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "duplicate member \"id\"")
            .at("/events/1/id"),
        post("a repeated endpoint URL", endpoints, r#"{"url": "https://hooks.example.com/a", "url": "http://169.254.169.254/", "filters": ["*"]}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "duplicate member \"url\"")
            .at("/url"),
        post("a number beyond f64", EVENTS, format!(r#"{{"type": "PasswordUpdatedEvent", "payload": {{"userId": "{ALICE}", "n": 1e400}}}}"#))
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "number out of range"),
        post("a timeout beyond u64", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "timeout_ms": 18446744073709551616}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "/timeout_ms")
            .at("/timeout_ms"),
        post("a negative timeout", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "timeout_ms": -1}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/timeout_ms"),
        post("a timeout beyond f64", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "timeout_ms": 1e400}"#)
            .answered(StatusCode::BAD_REQUEST, "malformed-json", "line 1"),
        post("a header value that is not a string", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "headers": {"X-Tenant/Id": 5}}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/headers/X-Tenant~1Id"),
        post("a concurrency beyond u32", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "max_concurrency": 4294967296}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/max_concurrency"),
        post("a retry delay beyond u64", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "retry_schedule_s": [5, 1e30]}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/retry_schedule_s/1"),
        post("a seq beyond i64", &format!("{endpoint}/replay"), r#"{"since_seq": 9223372036854775808}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "")
            .at("/since_seq"),
        post("an unknown member", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "timeout": 5}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "unknown field `timeout`")
            .at("/timeout"),
        post("a missing member", endpoints, r#"{"filters": ["*"]}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "missing field `url`")
            .at("/url"),
        post("a batch over the limit", batch, json!({"events": too_many}).to_string())
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", "at most 1000")
            .at("/events"),
    ];
    for case in cases {
        check(&app, &key, case).await;
    }
    let huge_tenant = post(
        "a huge tenant name",
        "/v1/tenants",
        huge_tenant_name.to_string(),
    )
    .answered(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        "1-200 characters",
    )
    .at("/name");
    check(&app, ADMIN_KEY, huge_tenant).await;

    let query_cases = [
        format!("{EVENTS}?after_seq=99999999999999999999"),
        format!("{EVENTS}?after_seq=abc"),
        format!("{EVENTS}?limit=-1"),
        format!("{EVENTS}?after_seq=1&after_seq=2"),
        format!("{endpoint}/deliveries?limit=1e3"),
    ];
    for path in query_cases {
        let case = Case {
            name: "a bad query string",
            method: "GET",
            path,
            body: Vec::new(),
            content_type: None,
            status: StatusCode::BAD_REQUEST,
            kind: "bad-request",
            detail_part: "query string",
            problem_path: None,
        };
        check(&app, &key, case).await;
    }
    // A page cursor that is no delivery id is refused where it is read, not looked up.
    let not_a_cursor = Case {
        name: "a delivery cursor that is no delivery id",
        method: "GET",
        path: format!("{endpoint}/deliveries?after=ep_1"),
        body: Vec::new(),
        content_type: None,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        kind: "validation",
        detail_part: "is not a delivery id",
        problem_path: Some("/after"),
    };
    check(&app, &key, not_a_cursor).await;

    let status_line = post_chunked(&app, &key, EVENTS, 4 * limit).await;
    assert!(
        status_line.contains(" 413 "),
        "a chunked body over the limit: {status_line}"
    );

    // Nothing of it was stored, and ordinary work goes on.
    assert!(app.events("acme", &key, None).await.is_empty());
    app.publish("acme", &key, &password_updated("evt-after", ALICE))
        .await;
    assert_eq!(app.events("acme", &key, None).await.len(), 1);
}

#[tokio::test]
async fn big_but_allowed_documents_are_accepted_and_read_back() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    // Just under the recursion limit, a long string, many members: odd but valid events.
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    let many_members: serde_json::Map<String, Value> = (0..5_000)
        .map(|member_idx| (format!("m{member_idx}"), json!(member_idx)))
        .collect();
    let mut event = password_updated("evt-odd", ALICE);
    event["payload"]["nested"] = nested.clone();
    event["payload"]["long"] = json!("é".repeat(50_000));
    event["payload"]["many"] = Value::Object(many_members.clone());
    event["payload"]["nul"] = json!("a\u{0}b");
    app.publish("acme", &key, &event).await;
    let stored = app.get("/v1/tenants/acme/events/evt-odd", &key).await;
    assert_eq!(stored["payload"]["nested"], nested);
    assert_eq!(
        stored["payload"]["long"].as_str().map(str::len),
        Some(100_000)
    );
    assert_eq!(stored["payload"]["many"], Value::Object(many_members));
    assert_eq!(stored["payload"]["nul"], "a\u{0}b");
}

// ---- Protocol edges over the API ----------------------------------------------------------------

#[tokio::test]
async fn hop_by_hop_and_framing_headers_are_refused_as_endpoint_headers() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let endpoints = "/v1/tenants/acme/endpoints";
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": "https://hooks.example.com/h", "filters": ["*"], "headers": {"X-Team": "id"}}),
        )
        .await;
    let endpoint = format!("{endpoints}/{endpoint_id}");
    // Each spelling, and the JSON pointer its problem must carry.
    let refused = [
        ("Connection", "/headers/Connection"),
        ("connection", "/headers/connection"),
        ("Transfer-Encoding", "/headers/Transfer-Encoding"),
        ("UPGRADE", "/headers/UPGRADE"),
        ("TE", "/headers/TE"),
        ("Expect", "/headers/Expect"),
        ("Keep-Alive", "/headers/Keep-Alive"),
        ("Proxy-Authorization", "/headers/Proxy-Authorization"),
        ("proxy-connection", "/headers/proxy-connection"),
        ("Proxy-~Anything", "/headers/Proxy-~0Anything"),
        ("Trailer", "/headers/Trailer"),
        ("Host", "/headers/Host"),
        ("Content-Length", "/headers/Content-Length"),
    ];
    for (name, path) in refused {
        let headers = json!({"X-Fine": "yes", name: "value"});
        let create =
            json!({"url": "https://hooks.example.com/h", "filters": ["*"], "headers": headers});
        let (status, problem) = app.call("POST", endpoints, Some(&key), Some(&create)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "create {name}: {problem}"
        );
        assert_eq!(
            problem["errors"][0]["path"], path,
            "create {name}: {problem}"
        );
        let update = json!({"headers": headers});
        let (status, problem) = app
            .call("PATCH", &endpoint, Some(&key), Some(&update))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "update {name}: {problem}"
        );
        assert_eq!(
            problem["errors"][0]["path"], path,
            "update {name}: {problem}"
        );
    }
    // Nothing was changed, and ordinary custom headers (even ones starting like the refused
    // ones) are still accepted.
    let stored = app.get(&endpoint, &key).await;
    assert_eq!(stored["headers"], json!({"X-Team": "id"}));
    let update = json!({"headers": {"X-Connection-Id": "1", "Proxyish": "2", "Tenant": "3"}});
    let (status, body) = app
        .call("PATCH", &endpoint, Some(&key), Some(&update))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn producers_cannot_publish_heralds_own_operational_events() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let disabled = json!({
        "type": "herald.endpoint.disabled",
        "payload": {"endpoint_id": "ep_forged", "url": "https://hooks.example.com/h", "reason": "gone"}
    });
    let (status, problem) = app.call("POST", EVENTS, Some(&key), Some(&disabled)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/type", "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("only Herald emits"), "{detail}");

    let batch = "/v1/tenants/acme/events:batch";
    let valid = password_updated("evt-fine", ALICE);
    let (status, problem) = app
        .call(
            "POST",
            batch,
            Some(&key),
            Some(&json!({"events": [valid, disabled]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/events/1/type", "{problem}");
    let (status, problem) = app
        .call("POST", batch, Some(&key), Some(&json!([disabled, valid])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/0/type", "{problem}");
    // A name in Herald's namespace that the catalog does not know is refused the same way.
    let invented = json!({"type": "herald.tenant.deleted", "payload": {}});
    let (status, problem) = app.call("POST", EVENTS, Some(&key), Some(&invented)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/type", "{problem}");
    assert!(app.events("acme", &key, None).await.is_empty());
}

// ---- Connections, over raw sockets ---------------------------------------------------------------

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to do what it must; far beyond the timeouts under test.
const BOUNDED_WAIT: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.server.address)
        .await
        .expect("connects")
}

/// One answer read off a raw connection: the status, the lower-cased header lines and the body
/// (read by `Content-Length`).
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as a problem, after checking that it is one with this status.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let problem: Value = serde_json::from_str(&self.body).expect("problem JSON");
        assert_eq!(problem["status"], status, "{problem}");
        problem
    }
}

/// Reads one answer; `None` when the connection closed (or was reset) before a whole one came.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Option<RawAnswer> {
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n_read) => received.extend_from_slice(&chunk[..n_read]),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = received[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n_read) => body.extend_from_slice(&chunk[..n_read]),
        }
    }
    Some(RawAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Waits at most [`BOUNDED_WAIT`] for one answer.
async fn answer_within(stream: &mut (impl AsyncRead + Unpin), what: &str) -> RawAnswer {
    tokio::time::timeout(BOUNDED_WAIT, read_answer(stream))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUNDED_WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: the connection closed without an answer"))
}

/// Whether the server has closed the connection: a read returns end of file or a reset.
async fn is_closed(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut chunk = [0_u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

/// Waits at most [`BOUNDED_WAIT`] for the server to close the connection while `drip` keeps
/// writing a byte at a time, as a slow client would; returns how long it took.
async fn closed_while_dripping(
    mut stream: TcpStream,
    drip: &'static [u8],
    every: Duration,
) -> Duration {
    let started = Instant::now();
    let (mut reading, mut writing) = stream.split();
    let dripping = async {
        for byte in drip.iter().cycle() {
            if writing.write_all(std::slice::from_ref(byte)).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        // The server hung up on the writes; the reader will see it too.
        std::future::pending::<()>().await;
    };
    let closing = async {
        let mut chunk = [0_u8; 1024];
        loop {
            match reading.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(BOUNDED_WAIT, async {
        tokio::select! {
            () = dripping => {}
            () = closing => {}
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept a slow connection open for {BOUNDED_WAIT:?}"));
    started.elapsed()
}

const N_SLOW_CONNECTIONS: usize = 50;

fn short_timeouts(options: &mut herald::server::ServerOptions) {
    options.settings.connections.header_read_timeout = Duration::from_millis(300);
    options.settings.connections.body_read_timeout = Duration::from_millis(300);
    options.settings.connections.keep_alive_timeout = Duration::from_millis(300);
}

#[tokio::test]
async fn slow_and_silent_header_senders_are_disconnected() {
    let app = TestApp::spawn_with(short_timeouts).await;
    let mut clients = Vec::new();
    for client_idx in 0..N_SLOW_CONNECTIONS {
        let stream = connect(&app).await;
        clients.push(tokio::spawn(async move {
            if client_idx % 2 == 0 {
                // A header line a byte at a time, each byte well within any per-read timeout.
                let head: &'static [u8] = b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: ";
                closed_while_dripping(stream, head, Duration::from_millis(50)).await
            } else {
                // Connects and says nothing.
                let started = Instant::now();
                let mut stream = stream;
                tokio::time::timeout(BOUNDED_WAIT, is_closed(&mut stream))
                    .await
                    .expect("a silent connection is closed");
                started.elapsed()
            }
        }));
    }
    for client in clients {
        let took = client.await.expect("client task");
        assert!(took < Duration::from_secs(5), "closed only after {took:?}");
    }
    // Still serving.
    let (status, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_answered_408_and_the_connection_closed() {
    let app = TestApp::spawn_with(short_timeouts).await;
    let key = app.tenant("acme").await;
    let mut clients = Vec::new();
    for _ in 0..N_SLOW_CONNECTIONS {
        let stream = connect(&app).await;
        let head = format!(
            "POST {EVENTS} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        clients.push(tokio::spawn(async move {
            let (mut reading, mut writing) = stream.into_split();
            writing.write_all(head.as_bytes()).await.expect("head sent");
            let started = Instant::now();
            // A body byte at a time, never finishing within the body read timeout.
            let drip = tokio::spawn(async move {
                for _ in 0..1000 {
                    if writing.write_all(b" ").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let answer = answer_within(&mut reading, "a slow body").await;
            let took = started.elapsed();
            let problem = answer.problem(408);
            assert_eq!(problem["type"], format!("{PROBLEM_BASE}request-timeout"));
            assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
            let closed = tokio::time::timeout(BOUNDED_WAIT, is_closed(&mut reading)).await;
            assert!(closed.is_ok(), "the connection stays open after the 408");
            drip.abort();
            took
        }));
    }
    for client in clients {
        let took = client.await.expect("client task");
        assert!(
            took < Duration::from_secs(5),
            "answered only after {took:?}"
        );
    }
    // Nothing was stored, and the server still serves.
    assert!(app.events("acme", &key, None).await.is_empty());
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_and_busy_ones_keep_working() {
    let app = TestApp::spawn_with(short_timeouts).await;
    let mut clients = Vec::new();
    for _ in 0..N_SLOW_CONNECTIONS {
        let mut stream = connect(&app).await;
        clients.push(tokio::spawn(async move {
            // Keep-alive works: two requests on one connection, each answered.
            for request_idx in 0..2 {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
                    .await
                    .expect("request sent");
                let answer = answer_within(&mut stream, "a kept-alive request").await;
                assert_eq!(answer.status, 200, "request {request_idx}: {answer:?}");
            }
            // Then idle: the server closes it.
            let started = Instant::now();
            tokio::time::timeout(BOUNDED_WAIT, is_closed(&mut stream))
                .await
                .expect("an idle connection is closed");
            started.elapsed()
        }));
    }
    for client in clients {
        let took = client.await.expect("client task");
        assert!(took < Duration::from_secs(5), "closed only after {took:?}");
    }
}

#[tokio::test]
async fn beyond_the_connection_cap_a_client_waits_until_a_slot_frees() {
    const CAP: usize = 4;
    let app = TestApp::spawn_with(|options| {
        options.settings.connections.max_connections = CAP;
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n";
    let mut served = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect(&app).await;
        stream.write_all(request).await.expect("request sent");
        assert_eq!(
            answer_within(&mut stream, "within the cap").await.status,
            200
        );
        served.push(stream);
    }
    // The kernel completes the handshake, but Herald does not take the connection yet.
    let mut waiting = connect(&app).await;
    waiting.write_all(request).await.expect("request sent");
    let early = tokio::time::timeout(Duration::from_millis(500), read_answer(&mut waiting)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // Kept-alive connections within the cap still work meanwhile.
    served[1].write_all(request).await.expect("request sent");
    assert_eq!(
        answer_within(&mut served[1], "still within the cap")
            .await
            .status,
        200
    );
    // One closes, and the waiting client is served.
    drop(served.remove(0));
    let answer = answer_within(&mut waiting, "once a slot frees").await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST {EVENTS} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let answer = answer_within(&mut stream, "a huge Content-Length").await;
    let problem = answer.problem(413);
    assert_eq!(problem["type"], format!("{PROBLEM_BASE}payload-too-large"));
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(app.events("acme", &key, None).await.is_empty());
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let chunked = |body: &str| {
        format!(
            "POST {EVENTS} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )
    };
    let event = password_updated("evt-chunked", ALICE).to_string();
    let malformed = [
        (
            "a chunk size that is not hexadecimal",
            "zz\r\n{}\r\n0\r\n\r\n".to_owned(),
        ),
        (
            "a chunk longer than its size",
            format!("2\r\n{event}\r\n0\r\n\r\n"),
        ),
    ];
    for (name, body) in malformed {
        let mut stream = connect(&app).await;
        stream
            .write_all(chunked(&body).as_bytes())
            .await
            .expect("sent");
        let answer = answer_within(&mut stream, name).await;
        let problem = answer.problem(400);
        assert_eq!(
            problem["type"],
            format!("{PROBLEM_BASE}bad-request"),
            "{name}: {problem}"
        );
        assert_eq!(
            answer.header("connection"),
            Some("close"),
            "{name}: {answer:?}"
        );
    }
    // A well-formed chunked body is accepted.
    let mut stream = connect(&app).await;
    let body = format!("{:x}\r\n{event}\r\n0\r\n\r\n", event.len());
    stream
        .write_all(chunked(&body).as_bytes())
        .await
        .expect("sent");
    let answer = answer_within(&mut stream, "a well-formed chunked body").await;
    assert_eq!(answer.status, 202, "{answer:?}");
}

#[tokio::test]
async fn control_characters_in_a_request_head_get_a_problem_answer() {
    let app = TestApp::spawn().await;
    let heads: [&[u8]; 4] = [
        b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Bad: a\x00b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Bad: \x00\r\n\r\n",
        b"GET /health\x00z HTTP/1.1\r\nHost: herald\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Bad: a\x1bb\r\n\r\n",
    ];
    for head in heads {
        let shown = String::from_utf8_lossy(head).into_owned();
        let mut stream = connect(&app).await;
        stream.write_all(head).await.expect("sent");
        let problem = answer_within(&mut stream, &shown).await.problem(400);
        assert_eq!(
            problem["type"],
            format!("{PROBLEM_BASE}bad-request"),
            "{shown:?}"
        );
        let closed = tokio::time::timeout(BOUNDED_WAIT, is_closed(&mut stream)).await;
        assert!(closed.is_ok(), "{shown:?}: the connection stays open");
    }
    // The same on a kept-alive connection, after a good request.
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .expect("sent");
    assert_eq!(
        answer_within(&mut stream, "a good request").await.status,
        200
    );
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Bad: a\x00b\r\n\r\n")
        .await
        .expect("sent");
    answer_within(&mut stream, "NUL after a good request")
        .await
        .problem(400);
}
