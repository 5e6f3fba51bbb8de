//! The README's quickstart, run as a newcomer would: `herald serve` and `herald receive` as real
//! processes, the CLI to create an endpoint and publish a seed event, `herald verify` on what
//! arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ADMIN_KEY: &str = "quickstart-admin-key-0123456789";

/// Kills the child process when the test ends, whatever happens.
struct Process(Option<Child>);

impl Process {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Hands the child over, for a test that waits for it to exit by itself.
    fn into_child(mut self) -> Child {
        self.0.take().expect("running")
    }
}

/// Lines the process prints, on stdout or stderr, as they come.
type Lines = std::sync::mpsc::Receiver<String>;

/// Waits at most 20 s for a line containing `marker`; returns the rest of that line.
fn wait_for_line(lines: &Lines, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no line with {marker:?} within 20 s"));
        if let Some(rest) = line.split(marker).nth(1) {
            return rest.to_owned();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `herald ARGS` and waits for the line announcing `marker` + an address.
fn start(args: &[&str], marker: &str) -> (Process, String, Lines) {
    let mut process = Process(Some(
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_ADMIN_KEY", ADMIN_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald starts"),
    ));
    let (sender, lines) = std::sync::mpsc::channel();
    let child = process.0.as_mut().expect("running");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let forward = |stream: Box<dyn Read + Send>, sender: std::sync::mpsc::Sender<String>| {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    };
    forward(Box::new(stdout), sender.clone());
    forward(Box::new(stderr), sender);
    let rest = wait_for_line(&lines, marker);
    let address = rest
        .split_whitespace()
        .next()
        .expect("address")
        .trim_end_matches('/')
        .to_owned();
    (process, address, lines)
}

/// A minimal HTTP/1.1 POST, enough to create a tenant without another client library.
fn post(address: &str, path: &str, key: &str, body: &str) -> Value {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connects");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 201"), "{response}");
    serde_json::from_str(body).expect("JSON")
}

fn herald(args: &[&str], key: &str, server: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_API_KEY", key)
        .env("HERALD_URL", server)
        .output()
        .expect("runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_newcomer_sees_a_seed_event_delivered_and_verified() {
    let directory = tempfile::tempdir().expect("tempdir");
    let database = directory.path().join("herald.db");
    let received = directory.path().join("received");
    let (_server, server, _) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            database.to_str().expect("path"),
            "--allow-network",
            "127.0.0.0/8",
        ],
        "Herald listening on ",
    );
    let (_receiver, receiver, receiver_lines) = start(
        &[
            "receive",
            "--listen",
            "127.0.0.1:0",
            "--save-dir",
            received.to_str().expect("path"),
        ],
        "receiving on ",
    );
    post(
        &server,
        "/v1/tenants",
        ADMIN_KEY,
        r#"{"id":"acme","name":"Acme"}"#,
    );
    let key = post(&server, "/v1/tenants/acme/api-keys", ADMIN_KEY, "")["key"]
        .as_str()
        .expect("key")
        .to_owned();

    let (code, out) = herald(
        &[
            "endpoints",
            "create",
            "--tenant",
            "acme",
            "--url",
            &format!("{receiver}/hooks"),
            "--filter",
            "*",
        ],
        &key,
        &server,
    );
    assert_eq!(code, 0, "{out}");
    let endpoint: Value = serde_json::from_str(&out).expect("endpoint JSON");
    let secret = endpoint["secret"].as_str().expect("secret");

    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures/asgardeo/loginSuccess.json");
    let (code, out) = herald(
        &["publish", "--tenant", "acme", seed.to_str().expect("path")],
        &key,
        &server,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"seq\": 1"), "{out}");

    wait_for_line(&receiver_lines, "--- delivery 1 to /hooks");
    let body_file = received.join("1.body");
    let arrived: Value =
        serde_json::from_slice(&std::fs::read(&body_file).expect("body")).expect("JSON");
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(&seed).expect("seed")).expect("JSON");
    assert_eq!(arrived, published);

    let headers_file = received.join("1.headers");
    let verify = |secret: &str| {
        herald(
            &[
                "verify",
                "--secret",
                secret,
                "--headers",
                headers_file.to_str().expect("path"),
                "--body",
                body_file.to_str().expect("path"),
            ],
            &key,
            &server,
        )
    };
    let (code, out) = verify(secret);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("webhook-signature: valid") && out.contains("x-hub-signature: valid"),
        "{out}"
    );
    let (code, out) = verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_eq!(code, 1, "a wrong secret fails: {out}");

    let (code, out) = herald(
        &[
            "deliveries",
            "list",
            "--tenant",
            "acme",
            "--endpoint",
            endpoint["id"].as_str().expect("id"),
        ],
        &key,
        &server,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("delivered"), "{out}");
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_sigint() {
    for signal in ["-TERM", "-INT"] {
        let directory = tempfile::tempdir().expect("tempdir");
        let database = directory.path().join("herald.db");
        let (server, address, _) = start(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                database.to_str().expect("path"),
            ],
            "Herald listening on ",
        );
        post(
            &address,
            "/v1/tenants",
            ADMIN_KEY,
            r#"{"id":"acme","name":"Acme"}"#,
        );
        let status = Command::new("kill")
            .args([signal, &server.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let mut child = server.into_child();
        let (sender, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        let exit = exited
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("herald did not stop within 15 s of SIG{signal}"))
            .expect("waited");
        assert!(exit.success(), "{signal}: {exit:?}");
        // The file is intact and reopens with what was written.
        let (_again, address, _) = start(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                database.to_str().expect("path"),
            ],
            "Herald listening on ",
        );
        let key = post(&address, "/v1/tenants/acme/api-keys", ADMIN_KEY, "");
        assert_eq!(key["tenant"], "acme");
    }
}

#[test]
fn keys_are_made_listed_and_revoked_from_the_command_line() {
    let directory = tempfile::tempdir().expect("tempdir");
    let database = directory.path().join("herald.db");
    let (_server, server, _) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            database.to_str().expect("path"),
        ],
        "Herald listening on ",
    );
    post(
        &server,
        "/v1/tenants",
        ADMIN_KEY,
        r#"{"id":"acme","name":"Acme"}"#,
    );
    let (code, out) = herald(&["keys", "create"], ADMIN_KEY, &server);
    assert_ne!(code, 0, "neither --tenant nor --admin: {out}");
    assert!(out.contains("--tenant") && out.contains("--admin"), "{out}");

    let (code, out) = herald(
        &["keys", "create", "--tenant", "acme", "--name", "producer"],
        ADMIN_KEY,
        &server,
    );
    assert_eq!(code, 0, "{out}");
    let created: Value = serde_json::from_str(&out).expect("JSON");
    let key = created["key"].as_str().expect("key").to_owned();
    let key_id = created["id"].as_str().expect("id").to_owned();
    let (code, out) = herald(&["endpoints", "list", "--tenant", "acme"], &key, &server);
    assert_eq!(code, 0, "the new key works: {out}");

    let (code, out) = herald(&["keys", "list", "--tenant", "acme"], ADMIN_KEY, &server);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&key_id) && out.contains("producer"), "{out}");
    assert!(out.contains(&key[..14]), "the prefix is shown: {out}");
    assert!(!out.contains(&key), "the key is not: {out}");

    let (code, out) = herald(
        &["keys", "revoke", "--tenant", "acme", &key],
        ADMIN_KEY,
        &server,
    );
    assert_ne!(code, 0, "a key given for an id is refused: {out}");
    assert!(!out.contains(&key), "and not repeated: {out}");
    let (code, out) = herald(
        &["keys", "revoke", "--tenant", "acme", &key_id],
        ADMIN_KEY,
        &server,
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = herald(&["endpoints", "list", "--tenant", "acme"], &key, &server);
    assert_ne!(code, 0, "the revoked key is refused: {out}");
    assert!(out.contains("401"), "{out}");

    let (code, out) = herald(&["keys", "create", "--admin"], ADMIN_KEY, &server);
    assert_eq!(code, 0, "{out}");
    let admin: Value = serde_json::from_str(&out).expect("JSON");
    let (code, out) = herald(&["keys", "list", "--admin"], ADMIN_KEY, &server);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(admin["id"].as_str().expect("id")), "{out}");
}
