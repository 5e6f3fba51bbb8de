//! Hostile input: oversized bodies (with and without a length), deep nesting, huge strings,
//! invalid UTF-8, wrong content types, duplicate member names, numbers out of range, bad query
//! strings, batches over the limit. Each request gets a clear 4xx `application/problem+json`
//! answer, nothing of it is stored, and the server goes on serving.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN_KEY, TestApp};

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
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", ""),
        post("a negative timeout", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "timeout_ms": -1}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", ""),
        post("a concurrency beyond u32", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "max_concurrency": 4294967296}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", ""),
        post("a retry delay beyond u64", endpoints, r#"{"url": "https://hooks.example.com/h", "filters": ["*"], "retry_schedule_s": [1e30]}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", ""),
        post("a seq beyond i64", &format!("{endpoint}/replay"), r#"{"since_seq": 9223372036854775808}"#)
            .answered(StatusCode::UNPROCESSABLE_ENTITY, "validation", ""),
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
