//! End-to-end tests of the hub over real HTTP: publish, deliver, sign, retry, order, operate.

mod support;

use serde_json::{Value, json};
use support::{Receiver, TestApp};

fn seed(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

#[tokio::test]
async fn a_seed_event_is_delivered_byte_for_byte_and_verifiable() {
    let app = TestApp::spawn().await;
    let key = app.tenant("acme").await;
    let mut receiver = Receiver::start().await;
    let (_, secret) = app
        .endpoint(
            "acme",
            &key,
            json!({"url": receiver.url("/hook"), "filters": ["*"]}),
        )
        .await;
    let event = seed("asgardeo/loginSuccess.json");
    let published = app.publish("acme", &key, &event).await;
    assert_eq!(published["id"], event["jti"]);
    assert_eq!(published["seq"], 1);
    assert_eq!(app.deliver().await, 1);
    let arrived = receiver.next().await;
    assert_eq!(arrived.json(), event);
    let wh = standardwebhooks::Webhook::new(&secret).expect("secret");
    wh.verify(&arrived.body, &arrived.headers)
        .expect("Standard Webhooks signature verifies");
    assert!(arrived.header("x-hub-signature").starts_with("sha256="));
}
