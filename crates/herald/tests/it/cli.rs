//! The `herald` command line, run as a user would: the real binary, real files.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn herald(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .expect("the binary runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn seed_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-catalog/tests/fixtures/asgardeo")
        .join(name)
}

#[test]
fn catalog_list_json_has_every_seed_type_with_its_blocking_flag() {
    let (code, out) = herald(&["catalog", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let entries: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    let count = |taxonomy: &str| {
        entries
            .iter()
            .filter(|entry| entry["taxonomy"] == taxonomy)
            .count()
    };
    assert_eq!(
        (count("asgardeo"), count("onewelcome"), count("authgear")),
        (17, 99, 44)
    );
    for entry in &entries {
        let keys: Vec<&str> = entry
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["type", "taxonomy", "blocking", "module", "description"]
        );
    }
    let blocking: Vec<&str> = entries
        .iter()
        .filter(|entry| entry["blocking"] == json!(true))
        .map(|entry| entry["type"].as_str().expect("string"))
        .collect();
    assert_eq!(
        blocking,
        [
            "user.pre_create",
            "user.profile.pre_update",
            "user.pre_schedule_deletion",
            "user.pre_schedule_anonymization",
            "oidc.jwt.pre_create"
        ]
    );
}

#[test]
fn catalog_list_filters_by_taxonomy_and_blocking() {
    let (code, out) = herald(&["catalog", "list", "--taxonomy", "authgear", "--blocking"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("5 event types\n"), "{out}");
    let (code, out) = herald(&["catalog", "list", "--taxonomy", "nope"]);
    assert_ne!(code, 0);
    assert!(out.contains("unknown taxonomy \"nope\""), "{out}");
}

#[test]
fn catalog_show_prints_schema_description_and_example() {
    let (code, out) = herald(&["catalog", "show", "UserCreatedEvent", "--json"]);
    assert_eq!(code, 0, "{out}");
    let entry: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(entry["module"], "Identity");
    assert_eq!(entry["schema"]["properties"]["userId"]["format"], "uuid");
    assert!(entry["example"]["userId"].is_string());
    assert!(
        entry["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
    );

    let (code, out) = herald(&["catalog", "show", "usercreated"]);
    assert_ne!(code, 0);
    assert!(out.contains("did you mean"), "{out}");
}

/// `herald catalog show TYPE --json`, parsed.
fn catalog_show_json(event_type: &str) -> Value {
    let (code, out) = herald(&["catalog", "show", event_type, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).expect("JSON")
}

/// The names under the shown schema's `$defs`, sorted; empty when it has none.
fn shown_definitions(entry: &Value) -> Vec<String> {
    let mut names: Vec<String> = entry["schema"]["$defs"]
        .as_object()
        .map(|definitions| definitions.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn catalog_show_keeps_only_the_definitions_a_type_uses() {
    // (type, the definitions it reaches through `$ref`, transitively)
    let cases: [(&str, &[&str]); 5] = [
        ("UserCreatedEvent", &[]),
        (
            "AuthorizationMemberPermissionAssignmentsChangedEvent",
            &["Permission"],
        ),
        (
            "ConsentReceiptCreatedEvent",
            &[
                "AttributeConsent",
                "AuthMode",
                "ChannelType",
                "Config",
                "ConfirmationMessage",
                "ConsentReceiptStatus",
                "ConsentType",
                "DocumentConsent",
                "OptInType",
                "Principal",
            ],
        ),
        (
            "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess",
            &[
                "Application",
                "Claim",
                "Claims",
                "Organization",
                "Tenant",
                "User",
                "UserStore",
            ],
        ),
        ("user.created", &["Identity", "User"]),
    ];
    for (event_type, expected) in cases {
        let entry = catalog_show_json(event_type);
        assert_eq!(shown_definitions(&entry), expected, "{event_type}");
    }
}

#[test]
fn catalog_show_wraps_the_example_in_the_native_envelope() {
    let login = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess";
    let entry = catalog_show_json(login);
    let envelope = &entry["example_envelope"];
    assert_eq!(envelope["events"][login], entry["example"], "{envelope}");
    assert!(envelope["iss"].is_string() && envelope["jti"].is_string() && envelope["iat"].is_i64());
    assert_eq!(entry["context_schema"], Value::Null);

    let entry = catalog_show_json("UserCreatedEvent");
    let envelope = &entry["example_envelope"];
    assert_eq!(
        envelope["metadata"]["type"], "UserCreatedEvent",
        "{envelope}"
    );
    assert_eq!(envelope["metadata"]["category"], "public");
    assert_eq!(envelope["payload"], entry["example"]);

    let entry = catalog_show_json("user.created");
    let envelope = &entry["example_envelope"];
    assert_eq!(envelope["type"], "user.created", "{envelope}");
    assert_eq!(envelope["payload"], entry["example"]);
    assert!(envelope["seq"].is_i64() && envelope["context"]["timestamp"].is_i64());
    assert_eq!(
        entry["context_schema"]["properties"]["triggered_by"]["enum"],
        json!(["user", "admin_api", "system", "portal"])
    );
}

#[test]
fn catalog_show_text_has_the_envelope_and_the_context_schema() {
    let (code, out) = herald(&["catalog", "show", "user.created"]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "Example envelope",
        "\"context\": {",
        "\"triggered_by\": \"system\"",
        "Context schema",
        "\"admin_api\"",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(
        !out.contains("\"Jwt\""),
        "an unused definition is shown:\n{out}"
    );

    let (code, out) = herald(&["catalog", "show", "UserSignedInEvent"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"metadata\": {"), "{out}");
    assert!(!out.contains("$defs"), "{out}");
    assert!(!out.contains("Context schema"), "{out}");
}

#[test]
fn validate_accepts_every_asgardeo_seed_example() {
    let mut files: Vec<String> = std::fs::read_dir(seed_fixture(""))
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path().display().to_string())
        .filter(|path| {
            path.ends_with(".json")
                && !path.ends_with("cases.json")
                && !path.contains(".malformed.")
        })
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let (code, out) = herald(&args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(": ok (asgardeo ").count(), 17, "{out}");
}

/// Writes `body` to a temporary file and validates it: exit code and output.
fn validate_text(body: &str) -> (i32, String) {
    let directory = tempfile::tempdir().expect("tempdir");
    let file = directory.path().join("event.json");
    std::fs::write(&file, body).expect("written");
    herald(&["validate", file.to_str().expect("utf-8 path")])
}

#[test]
fn validate_refuses_bad_files_with_their_location() {
    let seed = std::fs::read_to_string(seed_fixture("registrationSuccess.json")).expect("seed");
    let uri = "https:~1~1schemas.identity.wso2.org~1events~1registration~1event-type~1registrationSuccess";
    let mut without_user: Value = serde_json::from_str(&seed).expect("JSON");
    let mut bad_enum = without_user.clone();
    without_user["events"]
        .as_object_mut()
        .and_then(|events| events.values_mut().next())
        .and_then(Value::as_object_mut)
        .expect("payload")
        .remove("user");
    bad_enum["events"]
        .as_object_mut()
        .and_then(|events| events.values_mut().next())
        .expect("payload")["initiatorType"] = json!("ROBOT");

    let malformed =
        std::fs::read_to_string(seed_fixture("registrationFailed.malformed.json")).expect("seed");
    let cases = [
        (
            malformed,
            ":30:1: malformed JSON: trailing comma".to_owned(),
        ),
        (
            without_user.to_string(),
            format!("/events/{uri}: \"user\" is a required property"),
        ),
        (
            bad_enum.to_string(),
            format!("/events/{uri}/initiatorType: \"ROBOT\" is not one of"),
        ),
        (
            r#"{"type": "user.created", "type": "user.deleted", "payload": {}}"#.to_owned(),
            "/type: duplicate member \"type\" at line 1, column 31".to_owned(),
        ),
    ];
    for (body, expected) in cases {
        let (code, out) = validate_text(&body);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&expected), "expected {expected:?} in {out}");
    }
}

#[test]
fn validate_with_several_files_fails_if_any_fails() {
    let good = seed_fixture("loginSuccess.json");
    let bad = seed_fixture("registrationFailed.malformed.json");
    let (code, out) = herald(&[
        "validate",
        good.to_str().expect("utf-8"),
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("1 of 2 files invalid"), "{out}");
}
