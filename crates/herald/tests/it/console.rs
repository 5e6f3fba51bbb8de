//! The web console in a real headless browser (Debian's `chromium` driven through
//! `chromedriver`): sign in, follow an event to its delivery and attempt, pause an endpoint,
//! replay, read a refused blocking decision; and over plain HTTP, the console's session cookie,
//! CSRF tokens and tenant scoping.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Receiver, TestApp};

const INSTALL_HINT: &str = "the console's browser tests need Debian's chromium and chromedriver: \
     run `apt-get update && apt-get install -y chromium chromium-driver` (.ci/run does it)";

/// Where the PNGs of the README's console section are written, with
/// `HERALD_CONSOLE_SCREENSHOTS=1 cargo test -p herald --test it console::`.
fn screenshot_directory() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

fn find_program(names: &[&str]) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for directory in std::env::split_paths(&path) {
        for name in names {
            let candidate = directory.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{} not found: {INSTALL_HINT}", names.join(" or "));
}

/// chromedriver on a free port with a headless chromium behind it, stopped when dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = find_program(&["chromedriver"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("chromedriver does not start ({error}): {INSTALL_HINT}")
            });
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        // chromedriver listens once it is up: wait for its port, with a deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(address).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen on {address} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // The tests run as root in CI, where chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{address}"))
            .await
            .unwrap_or_else(|error| panic!("no browser session ({error}): {INSTALL_HINT}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("main"))
            .await
            .expect("main")
            .text()
            .await
            .expect("text")
    }

    async fn heading(&self) -> String {
        self.client
            .find(Locator::Css("h1"))
            .await
            .expect("h1")
            .text()
            .await
            .expect("text")
    }

    async fn click_link(&self, text: &str) {
        self.client
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|error| panic!("no link {text:?}: {error}"))
            .click()
            .await
            .expect("click");
    }

    /// Clicks a form's button and waits for the page the form leads to: until the button is
    /// gone from the document (the old page was replaced), with a deadline.
    async fn click_button(&self, text: &str) {
        let button = self
            .client
            .find(Locator::XPath(&format!(
                "//button[normalize-space()='{text}']"
            )))
            .await
            .unwrap_or_else(|error| panic!("no button {text:?}: {error}"));
        button.click().await.expect("click");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while button.tag_name().await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the form of {text:?} led nowhere within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn fill(&self, field_id: &str, value: &str) {
        self.client
            .find(Locator::Id(field_id))
            .await
            .unwrap_or_else(|error| panic!("no field {field_id:?}: {error}"))
            .send_keys(value)
            .await
            .expect("type");
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }

    /// Takes a screenshot of the page; with `HERALD_CONSOLE_SCREENSHOTS=1` it replaces the
    /// README's copy (they change with every run's ids, so an ordinary run leaves them alone).
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if std::env::var_os("HERALD_CONSOLE_SCREENSHOTS").is_none() {
            return;
        }
        let directory = screenshot_directory();
        std::fs::create_dir_all(&directory).expect("screenshot directory");
        std::fs::write(directory.join(name), png).expect("screenshot written");
    }

    async fn sign_in(&self, base: &str, key: &str) {
        self.client
            .goto(&format!("{base}/console"))
            .await
            .expect("console");
        self.fill("key", key).await;
        self.click_button("Sign in").await;
    }
}

/// A hook server that refuses every operation.
async fn refusing_hook() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/refuse",
        axum::routing::post(|| async {
            axum::Json(json!({"is_allowed": false, "title": "Not on the guest list", "reason": "sign-ups are closed"}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/refuse")
}

const ALICE: &str = "7c1f2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b";
const BOB: &str = "9e8d7c6b-5a49-4837-a625-1b0c9d8e7f6a";

fn password_updated(event_id: &str, user_id: &str) -> Value {
    json!({"id": event_id, "type": "PasswordUpdatedEvent", "subject": user_id, "payload": {"userId": user_id}})
}

fn pre_create(id: &str) -> Value {
    json!({
        "id": id,
        "type": "user.pre_create",
        "payload": {
            "user": {"id": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "standard_attributes": {"email": "ada@example.com"}, "roles": []},
            "identities": [{"type": "login_id", "claims": {"email": "ada@example.com"}}]
        },
        "context": {"timestamp": 1_764_000_000, "triggered_by": "user", "app_id": "acme"}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_follows_an_event_to_its_attempt_pauses_replays_and_reads_a_refusal() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    let acme_key = app.tenant("acme").await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &acme_key,
            json!({"url": receiver.url("/acme"), "filters": ["*"], "description": "CRM sync"}),
        )
        .await;
    app.publish("acme", &acme_key, &password_updated("evt-console-1", ALICE))
        .await;
    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    let hook_url = refusing_hook().await;
    let (status, _) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&acme_key),
            Some(&json!({"event_type": "user.pre_create", "url": hook_url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, decision) = app
        .call(
            "POST",
            "/v1/tenants/acme/blocking-events",
            Some(&acme_key),
            Some(&pre_create("signup-1")),
        )
        .await;
    assert_eq!(
        (status, &decision["is_allowed"]),
        (StatusCode::OK, &json!(false))
    );

    let browser = Browser::start().await;
    browser.sign_in(&app.base, &acme_key).await;
    assert_eq!(browser.path().await, "/console/t/acme");
    assert!(
        browser
            .client
            .find(Locator::LinkText("sources"))
            .await
            .is_err(),
        "no sources, no link to them"
    );
    assert_eq!(browser.heading().await, "Overview");
    let overview = browser.text().await;
    assert!(
        overview.contains("Events per minute: 1 in the last hour"),
        "{overview}"
    );
    browser.screenshot("overview.png").await;

    // The event log, the event, its delivery and the attempt.
    browser.click_link("Events").await;
    assert!(browser.text().await.contains("PasswordUpdatedEvent"));
    browser.screenshot("events.png").await;
    // The list refreshes in place (the embedded script, allowed by the page's policy): an event
    // published now shows up without a reload.
    let list = browser
        .client
        .find(Locator::Id("event-list"))
        .await
        .expect("the event list");
    browser
        .client
        .execute("window.heraldNotReloaded = true; return null;", vec![])
        .await
        .expect("mark the page");
    app.publish(
        "acme",
        &acme_key,
        &password_updated("evt-console-live", ALICE),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !browser.text().await.contains("evt-console-live") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the list did not refresh within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(list.tag_name().await.is_err(), "the list was replaced");
    let not_reloaded = browser
        .client
        .execute("return window.heraldNotReloaded === true;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(not_reloaded, json!(true), "in place, without a reload");
    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    browser.click_link("evt-console-1").await;
    assert_eq!(browser.heading().await, "Event evt-console-1");
    let event_page = browser.text().await;
    assert!(event_page.contains("delivered"), "{event_page}");
    assert!(event_page.contains(ALICE), "{event_page}");
    assert!(
        event_page.contains(&format!("As {endpoint_id} receives it (native)")),
        "{event_page}"
    );
    browser.screenshot("event.png").await;
    let delivery_link = browser
        .client
        .find(Locator::Css("a[href*='/deliveries/']"))
        .await
        .expect("a delivery link");
    delivery_link.click().await.expect("click");
    assert!(browser.heading().await.starts_with("Delivery "));
    let attempts = browser
        .client
        .find_all(Locator::Css("main table:last-of-type tbody tr"))
        .await
        .expect("attempt rows");
    assert_eq!(attempts.len(), 1);
    let attempt = attempts[0].text().await.expect("text");
    assert!(attempt.contains("200"), "{attempt}");
    assert!(attempt.contains(" ms"), "{attempt}");
    browser.screenshot("delivery.png").await;

    // Pause the endpoint from the endpoints page: the API sees it paused.
    browser.click_link("Endpoints").await;
    browser.screenshot("endpoints.png").await;
    browser.click_button("Pause").await;
    let path = browser.path().await;
    assert!(path.ends_with(&endpoint_id), "{path} {endpoint_id}");
    assert!(browser.text().await.contains("paused"));
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["paused"], true, "{endpoint}");
    browser.click_button("Resume").await;
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["paused"], false, "{endpoint}");

    // Replay the event to the endpoint: it is delivered again.
    browser.fill("event_id", "evt-console-1").await;
    browser.click_button("Replay this event").await;
    assert_eq!(app.deliver().await, 1);
    let again = receiver.next().await;
    assert_eq!(again.webhook_id(), "evt-console-1");

    // The refused sign-up, with the hook's reason.
    browser.click_link("Blocking hooks").await;
    let hooks_page = browser.text().await;
    assert!(hooks_page.contains("refused"), "{hooks_page}");
    assert!(hooks_page.contains("sign-ups are closed"), "{hooks_page}");
    assert!(hooks_page.contains("signup-1"), "{hooks_page}");
    browser.screenshot("hooks.png").await;
    // Edit the chain: the hook disabled, then a second one added (its secret shown once).
    browser
        .client
        .find(Locator::Css("select[name='enabled']"))
        .await
        .expect("the hook's state")
        .select_by_value("false")
        .await
        .expect("select");
    browser.click_button("Save hook").await;
    let hooks = app.get("/v1/tenants/acme/hooks", &acme_key).await;
    assert_eq!(hooks["data"][0]["enabled"], false, "{hooks}");
    browser
        .client
        .find(Locator::Id("hook_type"))
        .await
        .expect("the hook's type")
        .select_by_value("user.pre_create")
        .await
        .expect("select");
    browser.fill("hook_url", &hook_url).await;
    browser.click_button("Add hook").await;
    let hook_secret = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the hook's secret")
        .text()
        .await
        .expect("text");
    assert!(hook_secret.starts_with("whsec_"), "{hook_secret}");
    let hooks = app.get("/v1/tenants/acme/hooks", &acme_key).await;
    assert_eq!(hooks["data"].as_array().map(Vec::len), Some(2), "{hooks}");

    // A new user's quickstart without curl: find a type in the catalog, create an endpoint,
    // send it that type's example, verify the delivery with the secret the console showed.
    browser.click_link("Catalog").await;
    browser.fill("q", "passwordupdated").await;
    browser.click_button("Search").await;
    browser.click_link("PasswordUpdatedEvent").await;
    let type_page = browser.text().await;
    assert!(
        type_page.contains("Example, in the native envelope"),
        "{type_page}"
    );
    assert!(type_page.contains("Schema"), "{type_page}");
    browser.screenshot("catalog.png").await;

    browser.click_link("Endpoints").await;
    browser
        .fill("new_url", &receiver.url("/made-in-console"))
        .await;
    browser.fill("new_description", "Made in the console").await;
    browser.click_button("Create endpoint").await;
    let secret = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the secret, shown once")
        .text()
        .await
        .expect("text");
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser
        .client
        .find(Locator::Css("main a[href*='/endpoints/ep_']"))
        .await
        .expect("a link to the new endpoint")
        .click()
        .await
        .expect("click");
    let new_endpoint_page = browser.client.current_url().await.expect("url");
    browser
        .client
        .find(Locator::Id("test_type"))
        .await
        .expect("the type of a test event")
        .select_by_value("PasswordUpdatedEvent")
        .await
        .expect("select");
    browser.click_button("Send test event").await;
    assert!(browser.heading().await.starts_with("Event "));
    assert_eq!(app.deliver().await, 2, "both endpoints take every type");
    let arrived = receiver.take(2).await;
    let made = arrived
        .iter()
        .find(|received| received.path == "/made-in-console")
        .expect("the test event at the new endpoint");
    standardwebhooks::Webhook::new(&secret)
        .expect("secret")
        .verify(&made.body, &made.headers)
        .expect("signed with the secret the console showed");
    browser
        .client
        .goto(new_endpoint_page.as_str())
        .await
        .expect("back to the endpoint");
    let description = browser
        .client
        .find(Locator::Id("edit_description"))
        .await
        .expect("the description field");
    description.clear().await.expect("clear");
    description
        .send_keys("Edited in the console")
        .await
        .expect("type");
    browser.click_button("Save").await;
    assert!(browser.text().await.contains("Edited in the console"));
    browser.click_button("Rotate the secret").await;
    let rotated = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the new secret")
        .text()
        .await
        .expect("text");
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );

    // A source appears once the tenant has one; its secret never does.
    let (status, source) = app
        .call(
            "POST",
            "/v1/tenants/acme/sources",
            Some(&acme_key),
            Some(&json!({"kind": "authgear", "secret": "source-secret-not-for-pages"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    browser.click_link("Overview").await;
    browser.click_link("sources").await;
    let sources_page = browser.text().await;
    assert!(sources_page.contains("authgear"), "{sources_page}");
    let source_id = source["id"].as_str().expect("id");
    assert!(
        sources_page.contains(&format!("/v1/ingest/{source_id}")),
        "{sources_page}"
    );
    assert!(
        !browser
            .client
            .source()
            .await
            .expect("html")
            .contains("source-secret-not-for-pages")
    );

    // Signing out ends the session: the console asks for a key again.
    browser.click_button("Sign out").await;
    browser
        .client
        .goto(&format!("{}/console/t/acme/events", app.base))
        .await
        .expect("goto");
    assert_eq!(browser.heading().await, "Sign in");
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_event_is_not_found_in_the_console() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let globex_key = app.tenant("globex").await;
    app.publish(
        "globex",
        &globex_key,
        &password_updated("evt-globex-secret", BOB),
    )
    .await;

    // Signed in by keyboard alone: the field has focus, Enter submits the form.
    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/console", app.base))
        .await
        .expect("console");
    let focused = browser.client.active_element().await.expect("focus");
    assert_eq!(
        focused.attr("id").await.expect("id").as_deref(),
        Some("key")
    );
    focused
        .send_keys(&format!("{acme_key}\u{E007}"))
        .await
        .expect("type and press Enter");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while browser.path().await != "/console/t/acme" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Enter did not sign in"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in [
        "/console/t/acme/events/evt-globex-secret",
        "/console/t/globex/events/evt-globex-secret",
        "/console/t/globex/events",
    ] {
        browser
            .client
            .goto(&format!("{}{path}", app.base))
            .await
            .expect("goto");
        assert_eq!(browser.heading().await, "Not found", "{path}");
        assert!(!browser.text().await.contains(BOB), "{path}");
    }
    // A signed-in admin picks the tenant and sees it.
    browser.client.delete_all_cookies().await.expect("sign out");
    browser.sign_in(&app.base, ADMIN_KEY).await;
    assert_eq!(browser.path().await, "/console/tenants");
    browser.click_link("globex").await;
    browser.click_link("Events").await;
    assert!(browser.text().await.contains("evt-globex-secret"));
    browser.stop().await;

    // The same answers over plain HTTP, with the status.
    let cookie = format!("herald_console={}", hex::encode(&acme_key));
    let answer = app
        .http
        .get(format!(
            "{}/console/t/acme/events/evt-globex-secret",
            app.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
}

/// An `application/x-www-form-urlencoded` body, as a browser's form sends it.
fn form_body(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The console's session cookie from signing in with `key`.
async fn sign_in_cookie(app: &TestApp, key: &str) -> (StatusCode, Option<String>) {
    sign_in_cookie_with(app, key, &[]).await
}

async fn sign_in_cookie_with(
    app: &TestApp,
    key: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client.post(format!("{}/console/sign-in", app.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", key)]))
        .send()
        .await
        .expect("sent");
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (answer.status(), cookie)
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_forms_need_the_sessions_token() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let receiver = Receiver::start().await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &acme_key,
            json!({"url": receiver.url("/acme"), "filters": ["*"]}),
        )
        .await;

    let (status, cookie) = sign_in_cookie(&app, "not-a-key").await;
    assert_eq!((status, cookie), (StatusCode::UNAUTHORIZED, None));
    let (status, cookie) = sign_in_cookie(&app, &acme_key).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(&acme_key), "the key is encoded: {cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    for proxy_header in [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=10.0.0.1;proto=https"),
    ] {
        let (_, behind_tls) = sign_in_cookie_with(&app, &acme_key, &[proxy_header]).await;
        let behind_tls = behind_tls.expect("a session cookie");
        assert!(
            behind_tls.ends_with("; Secure"),
            "{proxy_header:?}: {behind_tls}"
        );
    }
    let session = cookie.split(';').next().expect("name=value").to_owned();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("{}/console/t/acme/endpoints", app.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("sent");
    let policy = page
        .headers()
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = page.text().await.expect("html");
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();

    let pause = format!("{}/console/t/acme/endpoints/{endpoint_id}/pause", app.base);
    let zeros = "0".repeat(64);
    let forms: [&[(&str, &str)]; 3] = [&[], &[("csrf", &zeros)], &[("csrf", "")]];
    for form in forms {
        let answer = client
            .post(&pause)
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{form:?}");
    }
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["paused"], false, "a refused form changes nothing");

    let answer = client
        .post(&pause)
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", token.as_str())]))
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let endpoint = app
        .get(
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            &acme_key,
        )
        .await;
    assert_eq!(endpoint["paused"], true);

    // A revoked key's session is over on its next request, as for a bearer key.
    let keys = app.get("/v1/tenants/acme/api-keys", ADMIN_KEY).await;
    for key in keys["data"].as_array().expect("keys") {
        let key_id = key["id"].as_str().expect("id");
        let (status, _) = app
            .call(
                "DELETE",
                &format!("/v1/tenants/acme/api-keys/{key_id}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let answer = client
        .get(format!("{}/console/t/acme/endpoints", app.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok()),
        Some("/console")
    );
}

#[tokio::test]
async fn the_overview_counts_the_last_hours_events_however_long_the_log() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let mut n_published = 0;
    let mut publish_some = |n: usize| {
        let batch: Vec<Value> = (0..n)
            .map(|_| {
                n_published += 1;
                password_updated(&format!("evt-{n_published}"), ALICE)
            })
            .collect();
        json!({"events": batch})
    };
    // 37 old events (an odd number, so the bisection has something to find), then 5 recent.
    let old = publish_some(37);
    let recent = publish_some(5);
    let (status, _) = app
        .call(
            "POST",
            "/v1/tenants/acme/events:batch",
            Some(&acme_key),
            Some(&old),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.advance(Duration::from_secs(3 * 3600));
    let (status, _) = app
        .call(
            "POST",
            "/v1/tenants/acme/events:batch",
            Some(&acme_key),
            Some(&recent),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.advance(Duration::from_secs(90));

    let page = app
        .http
        .get(format!("{}/console/t/acme", app.base))
        .header(
            "cookie",
            format!("herald_console={}", hex::encode(&acme_key)),
        )
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Events per minute: 5 in the last hour"),
        "{page}"
    );
    assert!(
        page.contains("5 · 1 min ago"),
        "the bar of a minute and a half ago: {page}"
    );

    // The log from a time: the same bisection finds where the last hour starts.
    let since = (app.now() - time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let console_get = |path: String| {
        app.http
            .get(format!("{}{path}", app.base))
            .header(
                "cookie",
                format!("herald_console={}", hex::encode(&acme_key)),
            )
            .send()
    };
    let answer = console_get(format!("/console/t/acme/events?since={since}"))
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::OK);
    let log = answer.text().await.expect("html");
    for n in 38..=42 {
        assert!(log.contains(&format!(">evt-{n}<")), "evt-{n}: {log}");
    }
    assert!(
        !log.contains(">evt-37<") && !log.contains(">evt-1<"),
        "{log}"
    );
    let answer = console_get("/console/t/acme/events?since=yesterday".to_owned())
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

// --- Issue 15, the console alone: tenants, keys, publishing, charts, deleting, sources, SSF ---

/// Waits until the page's main text contains `needle`, reloading it (the chart and the
/// delivery state are rendered by the server), with a deadline.
async fn reload_until_contains(browser: &Browser, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} did not show within 10 s: {text}"
        );
        browser.client.refresh().await.expect("reload");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_does_the_quickstart_in_the_console_alone() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    // The receiver is down for the first attempt: the retry is what succeeds.
    receiver.script([crate::support::Reply::Status(503)]);
    let browser = Browser::start().await;

    // The admin key makes a tenant, and the console opens it.
    browser.sign_in(&app.base, ADMIN_KEY).await;
    assert_eq!(browser.heading().await, "Tenants");
    browser.fill("tenant_id", "Not Valid").await;
    browser.fill("tenant_name", "Quickstart").await;
    browser.click_button("Create tenant").await;
    let refused = browser.text().await;
    assert!(refused.contains("/id: a tenant id has"), "{refused}");
    browser.client.back().await.expect("back");
    let id_field = browser
        .client
        .find(Locator::Id("tenant_id"))
        .await
        .expect("id field");
    id_field.clear().await.expect("clear");
    id_field.send_keys("quick").await.expect("type");
    browser.click_button("Create tenant").await;
    assert_eq!(browser.path().await, "/console/t/quick");
    assert_eq!(browser.heading().await, "Overview");
    let tenants = app.get("/v1/tenants", ADMIN_KEY).await;
    assert!(
        tenants["data"]
            .as_array()
            .expect("tenants")
            .iter()
            .any(|tenant| tenant["id"] == "quick" && tenant["name"] == "Quickstart"),
        "{tenants}"
    );

    // A key for the tenant's producers, shown once; revoked after a confirmation.
    browser.click_link("API keys").await;
    browser.fill("key_name", "signup service").await;
    browser.click_button("Create key").await;
    let tenant_key = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the key, shown once")
        .text()
        .await
        .expect("text");
    let (status, _) = app
        .call("GET", "/v1/tenants/quick/events", Some(&tenant_key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the key shown opens the tenant");
    browser.click_link("Back to the keys").await;
    let keys_page = browser.text().await;
    assert!(keys_page.contains("signup service"), "{keys_page}");
    assert!(!keys_page.contains(&tenant_key), "the key is shown once");
    browser.screenshot("keys.png").await;
    browser
        .client
        .find(Locator::Css("main a[href$='/revoke']"))
        .await
        .expect("a revoke link")
        .click()
        .await
        .expect("click");
    assert!(browser.heading().await.starts_with("Revoke key "));
    let (status, _) = app
        .call("GET", "/v1/tenants/quick/events", Some(&tenant_key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "asking is not revoking");
    browser.click_button("Revoke the key").await;
    let (status, _) = app
        .call("GET", "/v1/tenants/quick/events", Some(&tenant_key), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");

    // An endpoint at the test's receiver, its secret shown once: the overview of a tenant
    // without endpoints says where to start.
    browser.click_link("Overview").await;
    browser.click_link("Create an endpoint").await;
    assert_eq!(browser.path().await, "/console/t/quick/endpoints");
    browser.fill("new_url", &receiver.url("/quickstart")).await;
    browser.click_button("Create endpoint").await;
    let secret = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the secret")
        .text()
        .await
        .expect("text");

    // Publish: a catalog type's example, loaded into the editor; an edit that breaks it is
    // refused with the JSON path of the problem, and nothing is stored.
    browser.click_link("Publish").await;
    browser
        .client
        .find(Locator::Id("type"))
        .await
        .expect("the type")
        .select_by_value("PasswordUpdatedEvent")
        .await
        .expect("select");
    browser.click_button("Load its example").await;
    let editor = browser
        .client
        .find(Locator::Id("document"))
        .await
        .expect("the editor");
    let example = editor
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    let example: Value = serde_json::from_str(&example).expect("the example is JSON");
    assert_eq!(
        example["metadata"]["type"], "PasswordUpdatedEvent",
        "{example}"
    );
    browser.screenshot("publish.png").await;
    editor.clear().await.expect("clear");
    editor
        .send_keys(r#"{"type": "PasswordUpdatedEvent", "payload": {"userId": 42}}"#)
        .await
        .expect("type");
    browser.click_button("Publish").await;
    let problems = browser
        .client
        .find(Locator::Id("problems"))
        .await
        .expect("the problems")
        .text()
        .await
        .expect("text");
    assert!(problems.contains("/payload/userId"), "{problems}");
    assert!(
        app.events("quick", ADMIN_KEY, None).await.is_empty(),
        "nothing stored"
    );
    browser.click_button("Load its example").await;
    browser.click_button("Publish").await;
    assert!(browser.heading().await.starts_with("Event "));
    let event_path = browser.path().await;
    let event_id = event_path.rsplit('/').next().expect("id").to_owned();

    // The delivery: refused once (503), then delivered, signed with the secret shown.
    assert_eq!(app.deliver().await, 1);
    receiver.next().await;
    app.advance(Duration::from_secs(60));
    assert_eq!(app.deliver().await, 1);
    let delivered = receiver.next().await;
    assert_eq!(delivered.webhook_id(), event_id);
    standardwebhooks::Webhook::new(&secret)
        .expect("secret")
        .verify(&delivered.body, &delivered.headers)
        .expect("signed with the secret the console showed");
    browser.client.refresh().await.expect("reload");
    reload_until_contains(&browser, "delivered").await;
    browser
        .client
        .find(Locator::Css("main a[href*='/deliveries/']"))
        .await
        .expect("a delivery link")
        .click()
        .await
        .expect("click");
    let attempts = browser
        .client
        .find_all(Locator::Css("main table:last-of-type tbody tr"))
        .await
        .expect("attempt rows");
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].text().await.expect("text").contains("503"));
    assert!(attempts[1].text().await.expect("text").contains("200"));

    // The overview's charts count both attempts, one of them failed.
    browser.click_link("Overview").await;
    let overview = browser.text().await;
    assert!(
        overview.contains("Delivery attempts per minute: 2 in the last hour"),
        "{overview}"
    );
    assert!(
        overview.contains("Failure rate: 50% of 2 attempts failed in the last hour"),
        "{overview}"
    );
    browser.screenshot("charts.png").await;
    browser.stop().await;
}

/// Follows the link whose `href` ends with `suffix` inside `main`.
async fn follow(browser: &Browser, suffix: &str) {
    browser
        .client
        .find(Locator::Css(&format!("main a[href$='{suffix}']")))
        .await
        .unwrap_or_else(|error| panic!("no link to …{suffix}: {error}"))
        .click()
        .await
        .expect("click");
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_hooks_and_sources_are_managed_and_ssf_streams_listed() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let acme_key = app.tenant("acme").await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &acme_key,
            json!({"url": receiver.url("/acme"), "filters": ["*"]}),
        )
        .await;
    let hook_url = refusing_hook().await;
    let (status, hook) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&acme_key),
            Some(&json!({"event_type": "user.pre_create", "url": hook_url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    // An SSF receiver with a poll stream, made through the SSF API.
    let (status, ssf_receiver) = app
        .call(
            "POST",
            "/v1/tenants/acme/ssf/receivers",
            Some(&acme_key),
            Some(&json!({"name": "relying party"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ssf_receiver}");
    let token = ssf_receiver["token"].as_str().expect("token");
    let (status, stream) = app
        .call(
            "POST",
            "/ssf/acme/streams",
            Some(token),
            Some(&json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "description": "sessions"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().expect("stream_id").to_owned();
    // A verification request queues one SET for the receiver to poll.
    let (status, verified) = app
        .call(
            "POST",
            "/ssf/acme/streams/verify",
            Some(token),
            Some(&json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{verified}");

    let browser = Browser::start().await;
    browser.sign_in(&app.base, &acme_key).await;
    assert!(
        browser
            .client
            .find(Locator::LinkText("API keys"))
            .await
            .is_err(),
        "a tenant key manages no keys"
    );

    // The SSF page, from the overview's card.
    browser.click_link("SSF streams").await;
    assert_eq!(browser.heading().await, "Shared Signals");
    let ssf_page = browser.text().await;
    assert!(ssf_page.contains(&stream_id), "{ssf_page}");
    assert!(ssf_page.contains("poll (RFC 8936)"), "{ssf_page}");
    assert!(ssf_page.contains("sessions"), "{ssf_page}");
    let queued = browser
        .client
        .find(Locator::Css("main table tbody tr td.num"))
        .await
        .expect("the queued count")
        .text()
        .await
        .expect("text");
    assert_eq!(queued, "1", "the verification SET waits: {ssf_page}");
    assert!(!browser.client.source().await.expect("html").contains(token));
    browser.screenshot("ssf.png").await;

    // A source made in the console, its secret shown once; a new secret after a confirmation
    // (the old one refused from then on); deleted after a confirmation.
    browser.click_link("Sources").await;
    browser.fill("source_name", "Authgear production").await;
    browser.click_button("Create source").await;
    let first_secret = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the secret")
        .text()
        .await
        .expect("text");
    let sources = app.get("/v1/tenants/acme/sources", &acme_key).await;
    let source_id = sources["data"][0]["id"]
        .as_str()
        .expect("a source")
        .to_owned();
    assert_eq!(sources["data"][0]["kind"], "authgear", "{sources}");
    browser.click_link("Back to the sources").await;
    assert!(!browser.text().await.contains(&first_secret));
    browser.screenshot("sources.png").await;
    follow(&browser, &format!("/sources/{source_id}/rotate")).await;
    browser.click_button("Make a new secret").await;
    let second_secret = browser
        .client
        .find(Locator::Id("secret"))
        .await
        .expect("the new secret")
        .text()
        .await
        .expect("text");
    assert!(
        !second_secret.is_empty() && second_secret != first_secret,
        "{second_secret}"
    );
    browser.click_link("Back to the sources").await;
    follow(&browser, &format!("/sources/{source_id}/delete")).await;
    assert!(browser.heading().await.starts_with("Delete source "));
    browser.click_link("Cancel").await;
    let sources = app.get("/v1/tenants/acme/sources", &acme_key).await;
    assert_eq!(
        sources["data"].as_array().map(Vec::len),
        Some(1),
        "cancelled"
    );
    follow(&browser, &format!("/sources/{source_id}/delete")).await;
    browser.click_button("Delete the source").await;
    let sources = app.get("/v1/tenants/acme/sources", &acme_key).await;
    assert_eq!(sources["data"], json!([]), "{sources}");

    // The hook, then the endpoint, each after its confirmation page.
    browser.click_link("Blocking hooks").await;
    follow(&browser, &format!("/hooks/{hook_id}/delete")).await;
    assert_eq!(browser.heading().await, format!("Delete hook {hook_id}?"));
    browser.screenshot("confirm.png").await;
    browser.click_button("Delete the hook").await;
    assert_eq!(browser.path().await, "/console/t/acme/hooks");
    let hooks = app.get("/v1/tenants/acme/hooks", &acme_key).await;
    assert_eq!(hooks["data"], json!([]), "{hooks}");

    browser.click_link("Endpoints").await;
    follow(&browser, &format!("/endpoints/{endpoint_id}/delete")).await;
    assert!(browser.text().await.contains(&receiver.url("/acme")));
    browser.click_button("Delete the endpoint").await;
    assert_eq!(browser.path().await, "/console/t/acme/endpoints");
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            Some(&acme_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    browser.stop().await;
}

#[tokio::test]
async fn the_new_forms_need_the_token_keys_need_an_admin_and_other_tenants_are_not_found() {
    let app = TestApp::spawn().await;
    let acme_key = app.tenant("acme").await;
    let globex_key = app.tenant("globex").await;
    let receiver = Receiver::start().await;
    let (endpoint_id, _) = app
        .endpoint(
            "acme",
            &acme_key,
            json!({"url": receiver.url("/acme"), "filters": ["*"]}),
        )
        .await;
    let (status, source) = app
        .call(
            "POST",
            "/v1/tenants/acme/sources",
            Some(&acme_key),
            Some(&json!({"kind": "authgear"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let source_id = source["id"].as_str().expect("id");
    let (status, hook) = app
        .call(
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&acme_key),
            Some(&json!({"event_type": "user.pre_create", "url": receiver.url("/hook")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_str().expect("id");
    let keys = app.get("/v1/tenants/acme/api-keys", ADMIN_KEY).await;
    let key_id = keys["data"][0]["id"].as_str().expect("a key").to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = |key: &str| format!("herald_console={}", hex::encode(key));
    let post = |path: String, key: &str, fields: Vec<(&'static str, String)>| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        client
            .post(format!("{}{path}", app.base))
            .header("cookie", cookie(key))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let admin_forms: Vec<(String, Vec<(&'static str, String)>)> = vec![
        (
            "/console/tenants".to_owned(),
            vec![("id", "initech".to_owned()), ("name", "Initech".to_owned())],
        ),
        ("/console/t/acme/keys".to_owned(), vec![]),
        (
            "/console/t/acme/publish".to_owned(),
            vec![(
                "document",
                json!({"type": "PasswordUpdatedEvent", "payload": {"userId": ALICE}}).to_string(),
            )],
        ),
        (
            format!("/console/t/acme/endpoints/{endpoint_id}/delete"),
            vec![],
        ),
        (
            "/console/t/acme/sources".to_owned(),
            vec![("kind", "authgear".to_owned())],
        ),
        (
            format!("/console/t/acme/sources/{source_id}/rotate"),
            vec![],
        ),
        (
            format!("/console/t/acme/sources/{source_id}/delete"),
            vec![],
        ),
        (format!("/console/t/acme/hooks/{hook_id}/delete"), vec![]),
        (format!("/console/t/acme/keys/{key_id}/revoke"), vec![]),
    ];
    for (path, fields) in &admin_forms {
        let answer = post(path.clone(), ADMIN_KEY, fields.clone())
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "no token: {path}");
    }
    // Nothing changed.
    let tenants = app.get("/v1/tenants", ADMIN_KEY).await;
    assert_eq!(
        tenants["data"].as_array().map(Vec::len),
        Some(2),
        "{tenants}"
    );
    assert!(app.events("acme", &acme_key, None).await.is_empty());
    let sources = app.get("/v1/tenants/acme/sources", &acme_key).await;
    assert_eq!(
        sources["data"].as_array().map(Vec::len),
        Some(1),
        "{sources}"
    );
    let hooks = app.get("/v1/tenants/acme/hooks", &acme_key).await;
    assert_eq!(hooks["data"].as_array().map(Vec::len), Some(1), "{hooks}");
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/tenants/acme/endpoints/{endpoint_id}"),
            Some(&acme_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The console publishes within the API's body limit (256 KiB here), with the token.
    let admin_page = client
        .get(format!("{}/console/t/acme/publish", app.base))
        .header("cookie", cookie(ADMIN_KEY))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    let admin_token = admin_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    let oversized = json!({
        "type": "PasswordUpdatedEvent",
        "payload": {"userId": ALICE, "padding": "x".repeat(300 * 1024)}
    });
    let answer = post(
        "/console/t/acme/publish".to_owned(),
        ADMIN_KEY,
        vec![("csrf", admin_token), ("document", oversized.to_string())],
    )
    .await
    .expect("sent");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = answer.text().await.expect("html");
    assert!(
        page.contains("larger than the limit of 262144 bytes"),
        "{page}"
    );
    assert!(app.events("acme", &acme_key, None).await.is_empty());

    // A tenant key, with its own page's token, still may not make tenants or keys.
    let page = client
        .get(format!("{}/console/t/acme/endpoints", app.base))
        .header("cookie", cookie(&acme_key))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    for path in ["/console/tenants", "/console/t/acme/keys"] {
        let answer = post(
            path.to_owned(),
            &acme_key,
            vec![
                ("csrf", token.clone()),
                ("id", "initech".to_owned()),
                ("name", "Initech".to_owned()),
            ],
        )
        .await
        .expect("sent");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let keys = app.get("/v1/tenants/acme/api-keys", ADMIN_KEY).await;
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1), "{keys}");

    // Another tenant's things are not found, on the confirmation pages as on the forms.
    for path in [
        format!("/console/t/acme/endpoints/{endpoint_id}/delete"),
        format!("/console/t/acme/hooks/{hook_id}/delete"),
        format!("/console/t/acme/sources/{source_id}/delete"),
        format!("/console/t/acme/sources/{source_id}/rotate"),
        "/console/t/acme/ssf".to_owned(),
        "/console/t/acme/publish".to_owned(),
    ] {
        let answer = client
            .get(format!("{}{path}", app.base))
            .header("cookie", cookie(&globex_key))
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        format!("/console/t/globex/endpoints/{endpoint_id}/delete"),
        format!("/console/t/globex/sources/{source_id}/delete"),
    ] {
        let answer = client
            .get(format!("{}{path}", app.base))
            .header("cookie", cookie(&globex_key))
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
