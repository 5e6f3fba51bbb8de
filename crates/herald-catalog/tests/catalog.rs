//! The catalog's integration tests: the data files, validation against every taxonomy's table of
//! cases, the seed examples, envelope round trips, pinned renderings and a round-trip property.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use herald_catalog::catalog::{Catalog, CustomTypeSpec, compile_custom_type};
use herald_catalog::envelope::{
    EXAMPLE_RENDER_OPTIONS, EnvelopeError, Event, ParsedEvent, RenderFormat, RenderOptions,
    example_envelope, parse_envelope, parse_envelope_bytes, render, render_bytes,
};
use herald_catalog::taxonomy::Taxonomy;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

const OPTIONS: RenderOptions<'static> = RenderOptions {
    tenant_id: "acme",
    issuer: "https://herald.example/t/acme",
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path:?}: {error}"))
}

fn count_by_taxonomy(catalog: &Catalog) -> BTreeMap<Taxonomy, usize> {
    let mut counts = BTreeMap::new();
    for definition in catalog.iter() {
        *counts.entry(definition.taxonomy()).or_default() += 1;
    }
    counts
}

#[test]
fn builtin_catalog_has_every_seed_type() {
    let counts = count_by_taxonomy(Catalog::builtin());
    assert_eq!(counts.get(&Taxonomy::Asgardeo), Some(&17));
    assert_eq!(counts.get(&Taxonomy::Onewelcome), Some(&99));
    assert_eq!(counts.get(&Taxonomy::Authgear), Some(&44));
}

#[test]
fn exactly_the_five_authgear_pre_events_are_blocking() {
    let blocking: BTreeSet<&str> = Catalog::builtin()
        .iter()
        .filter(|definition| definition.is_blocking())
        .map(|definition| definition.name())
        .collect();
    let expected: BTreeSet<&str> = [
        "user.pre_create",
        "user.profile.pre_update",
        "user.pre_schedule_deletion",
        "user.pre_schedule_anonymization",
        "oidc.jwt.pre_create",
    ]
    .into_iter()
    .collect();
    assert_eq!(blocking, expected);
}

#[test]
fn onewelcome_modules_match_the_document() {
    let mut per_module: BTreeMap<&str, usize> = BTreeMap::new();
    for definition in Catalog::builtin().iter() {
        if definition.taxonomy() == Taxonomy::Onewelcome {
            *per_module.entry(definition.module()).or_default() += 1;
        }
    }
    let expected: BTreeMap<&str, usize> = [
        ("Access", 8),
        ("Delegated administration", 20),
        ("Consent", 3),
        ("Credentials", 1),
        ("dmv2", 45),
        ("Identity", 22),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_module, expected);
}

#[test]
fn every_type_is_described_and_its_example_is_valid() {
    for definition in Catalog::builtin().iter() {
        let name = definition.name();
        assert!(!definition.description().trim().is_empty(), "{name}");
        assert!(!definition.description().contains('\n'), "{name}: one line");
        let example = definition
            .example()
            .unwrap_or_else(|| panic!("{name} has no example"));
        if let Err(problems) = definition.validate_payload(example) {
            panic!("{name}: its example is invalid: {problems:?}");
        }
        // The subject may be absent from one event (a failed login has no user id yet), but the
        // object that would hold it must be where the pointer says.
        if let Some(pointer) = definition.subject_pointer() {
            let parent = &pointer[..pointer.rfind('/').unwrap_or(0)];
            assert!(
                example.pointer(parent).is_some_and(Value::is_object),
                "{name}: the subject pointer {pointer} leads nowhere in the example"
            );
        }
    }
}

#[test]
fn a_duplicate_name_is_refused() {
    let file = r#"{"taxonomy":"custom","format_version":1,"event_types":[
        {"type":"a.b","module":"m","description":"d","schema":{"type":"object"}},
        {"type":"a.b","module":"m","description":"d","schema":{"type":"object"}}]}"#;
    let error = Catalog::from_files(&[("dup.json", file)]).unwrap_err();
    assert_eq!(error.to_string(), "event type \"a.b\" is defined twice");
}

#[test]
fn a_schema_that_does_not_compile_is_refused_with_its_type() {
    let file = r#"{"taxonomy":"custom","format_version":1,"event_types":[
        {"type":"a.b","module":"m","description":"d","schema":{"type":"no-such-type"}}]}"#;
    let error = Catalog::from_files(&[("bad.json", file)]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("bad.json: event type \"a.b\": the schema does not compile"),
        "{error}"
    );
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(rename = "type")]
    event_type: String,
    payload: Value,
    valid: bool,
    expect_paths: Vec<String>,
}

/// One table row: the payload validates, or fails with problems at exactly the expected paths.
fn check_case(case: &Case) {
    let catalog = Catalog::builtin();
    let definition = catalog
        .get(&case.event_type)
        .unwrap_or_else(|| panic!("{}: unknown type {}", case.name, case.event_type));
    let found: BTreeSet<String> = match definition.validate_payload(&case.payload) {
        Ok(()) => BTreeSet::new(),
        Err(problems) => problems.into_iter().map(|problem| problem.path).collect(),
    };
    let expected: BTreeSet<String> = case.expect_paths.iter().cloned().collect();
    if case.valid {
        assert!(
            found.is_empty(),
            "{}: expected valid, got problems at {found:?}",
            case.name
        );
    } else {
        assert!(
            !expected.is_empty(),
            "{}: an invalid case names its paths",
            case.name
        );
        assert_eq!(found, expected, "{}", case.name);
    }
}

#[test]
fn table_of_cases_per_taxonomy_and_module() {
    let catalog = Catalog::builtin();
    for taxonomy in ["asgardeo", "onewelcome", "authgear"] {
        let cases: Vec<Case> =
            serde_json::from_value(read_json(&fixtures().join(taxonomy).join("cases.json")))
                .expect("cases.json has the table's shape");
        let mut coverage: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for case in &cases {
            check_case(case);
            let definition = catalog.get(&case.event_type).expect("known type");
            let mut keys = vec![definition.module().to_owned()];
            if taxonomy == "authgear" {
                keys.push(
                    if definition.is_blocking() {
                        "blocking"
                    } else {
                        "non-blocking"
                    }
                    .to_owned(),
                );
            }
            for key in keys {
                let entry = coverage.entry(key).or_default();
                if case.valid {
                    entry.0 += 1
                } else {
                    entry.1 += 1
                }
            }
        }
        let modules: BTreeSet<&str> = catalog
            .iter()
            .filter(|definition| definition.taxonomy().as_str() == taxonomy)
            .map(|definition| definition.module())
            .collect();
        for module in modules {
            let (valid, invalid) = coverage.get(module).copied().unwrap_or_default();
            assert!(
                valid >= 1 && invalid >= 1,
                "{taxonomy} module {module}: {valid} valid, {invalid} invalid cases"
            );
        }
        if taxonomy == "authgear" {
            for kind in ["blocking", "non-blocking"] {
                let (valid, invalid) = coverage[kind];
                assert!(valid >= 1 && invalid >= 1, "authgear {kind}");
            }
        }
    }
}

fn asgardeo_seed_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("asgardeo"))
        .expect("fixtures exist")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            name.ends_with(".json") && name != "cases.json" && !name.contains(".malformed.")
        })
        .collect();
    files.sort();
    files
}

/// Parse, store and render a native envelope: the JSON that comes out is the JSON that went in.
fn check_round_trip(path: &Path) {
    let original = read_json(path);
    let parsed = parse_envelope(Catalog::builtin(), original.clone())
        .unwrap_or_else(|error| panic!("{path:?}: {error}"));
    let seq = original.get("seq").and_then(Value::as_i64).unwrap_or(7);
    let event = parsed.into_event("unused-id".to_owned(), OffsetDateTime::UNIX_EPOCH, seq);
    let rendered = render(&event, RenderFormat::Native, &OPTIONS);
    assert_eq!(rendered, original, "{path:?}");
    assert_eq!(
        serde_json::to_string(&rendered).expect("serializes"),
        serde_json::to_string(&original).expect("serializes"),
        "{path:?}: member order is kept too"
    );
}

#[test]
fn every_asgardeo_seed_example_validates_and_round_trips() {
    let files = asgardeo_seed_files();
    assert_eq!(files.len(), 17);
    for path in files {
        check_round_trip(&path);
    }
}

#[test]
fn authgear_envelopes_round_trip() {
    let directory = fixtures().join("authgear/envelopes");
    let mut n_files = 0;
    for entry in std::fs::read_dir(directory).expect("fixtures exist") {
        check_round_trip(&entry.expect("readable").path());
        n_files += 1;
    }
    assert!(n_files >= 5);
}

#[test]
fn the_malformed_seed_is_refused_with_line_and_column() {
    let body = std::fs::read(fixtures().join("asgardeo/registrationFailed.malformed.json"))
        .expect("fixture");
    match parse_envelope_bytes(Catalog::builtin(), &body) {
        Err(EnvelopeError::Malformed {
            line,
            column,
            message,
        }) => {
            assert!(message.contains("trailing comma"), "{message}");
            let text = String::from_utf8(body).expect("utf-8");
            let offending_line = text.lines().nth(line - 1).expect("line exists");
            assert!(
                offending_line.trim_start().starts_with('}'),
                "line {line} column {column}: {offending_line:?}"
            );
        }
        other => panic!("expected a malformed-JSON error, got {other:?}"),
    }
}

fn envelope_problems(document: Value) -> Vec<(String, String)> {
    match parse_envelope(Catalog::builtin(), document) {
        Ok(parsed) => panic!("expected problems, parsed {parsed:?}"),
        Err(error) => error
            .problems()
            .into_iter()
            .map(|problem| (problem.path, problem.message))
            .collect(),
    }
}

#[test]
fn envelope_problems_carry_their_paths() {
    let login = read_json(&fixtures().join("asgardeo/loginSuccess.json"));
    let uri = "https:~1~1schemas.identity.wso2.org~1events~1login~1event-type~1loginSuccess";

    let mut missing_user = login.clone();
    let payload = missing_user["events"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    payload.as_object_mut().unwrap().remove("user");
    let problems = envelope_problems(missing_user);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, format!("/events/{uri}"));
    assert!(problems[0].1.contains("\"user\""), "{problems:?}");

    let mut two_problems = login.clone();
    two_problems["iat"] = json!("yesterday");
    let payload = two_problems["events"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    payload["organization"]["depth"] = json!("zero");
    let paths: BTreeSet<String> = envelope_problems(two_problems)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let expected: BTreeSet<String> = [
        "/iat".to_owned(),
        format!("/events/{uri}/organization/depth"),
    ]
    .into_iter()
    .collect();
    assert_eq!(paths, expected);

    let unknown = json!({"type": "user.teleported", "payload": {}});
    assert_eq!(envelope_problems(unknown)[0].0, "/type");

    let wrong_envelope =
        json!({"metadata": {"type": "user.created", "eventId": "x"}, "payload": {"user": {}}});
    assert!(
        envelope_problems(wrong_envelope)[0]
            .1
            .contains("cannot travel in a onewelcome envelope")
    );

    let not_an_object = json!([1, 2]);
    assert_eq!(
        envelope_problems(not_an_object)[0].1,
        "expected a JSON object, found an array"
    );

    let authgear_context = json!({"id": "e1", "type": "user.disabled", "payload": {"user": {"id": "u1"}},
        "context": {"timestamp": "now", "triggered_by": "robot"}});
    let paths: BTreeSet<String> = envelope_problems(authgear_context)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let expected: BTreeSet<String> = ["/context/timestamp", "/context/triggered_by"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths, expected);
}

#[test]
fn subjects_come_from_the_payload_or_the_envelope() {
    let cases = [
        (
            json!({"metadata": {"eventId": "e", "type": "UserCreatedEvent"}, "payload": {"userId": "0b6f3f2e-4c1d-4f5a-9e8b-2a7c6d5e4f30"}}),
            Some("0b6f3f2e-4c1d-4f5a-9e8b-2a7c6d5e4f30"),
        ),
        (
            json!({"type": "user.disabled", "payload": {"user": {}}, "context": {"timestamp": 1, "triggered_by": "system", "user_id": "from-context"}}),
            Some("from-context"),
        ),
        (
            json!({"type": "DeviceDeregisteredEvent", "payload": {"clientId": "c"}}),
            None,
        ),
        (
            json!({"type": "DeviceDeregisteredEvent", "payload": {"clientId": "c"}, "subject": "explicit"}),
            Some("explicit"),
        ),
    ];
    for (document, expected) in cases {
        let parsed = parse_envelope(Catalog::builtin(), document.clone())
            .unwrap_or_else(|error| panic!("{document}: {error}"));
        assert_eq!(parsed.subject.as_deref(), expected, "{document}");
    }
}

/// Pins the exact bytes Herald sends for one event of each taxonomy and format.
fn check_snapshot(name: &str, rendered: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, rendered).expect("snapshot written");
        return;
    }
    let pinned = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{path:?} missing: run with UPDATE_SNAPSHOTS=1"));
    assert_eq!(
        String::from_utf8_lossy(rendered),
        String::from_utf8_lossy(&pinned),
        "{name}"
    );
}

fn stored_event(event_type: &str) -> Event {
    let definition = Catalog::builtin().get(event_type).expect("known");
    let payload = definition.example().expect("example").clone();
    Event {
        id: "0190f2a1-c3d8-7e5f-9a0b-1c2d3e4f5a6b".to_owned(),
        seq: 42,
        taxonomy: definition.taxonomy(),
        event_type: event_type.to_owned(),
        subject: definition.subject_of(&payload),
        occurred_at: OffsetDateTime::from_unix_timestamp(1_751_705_149).expect("valid"),
        payload,
        context: serde_json::Map::new(),
        producer: serde_json::Map::new(),
    }
}

#[test]
fn rendered_envelopes_are_pinned() {
    let cases = [
        (
            "asgardeo-native.json",
            "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess",
            RenderFormat::Native,
        ),
        (
            "onewelcome-native.json",
            "UserCreatedEvent",
            RenderFormat::Native,
        ),
        (
            "authgear-native.json",
            "user.disabled",
            RenderFormat::Native,
        ),
        (
            "herald-native.json",
            "herald.delivery.exhausted",
            RenderFormat::Native,
        ),
        (
            "authgear-canonical.json",
            "user.disabled",
            RenderFormat::Canonical,
        ),
    ];
    for (snapshot, event_type, format) in cases {
        check_snapshot(
            snapshot,
            &render_bytes(&stored_event(event_type), format, &OPTIONS),
        );
    }
    let asgardeo_seed = parse_envelope_bytes(
        Catalog::builtin(),
        &std::fs::read(fixtures().join("asgardeo/userCreated.json")).expect("fixture"),
    )
    .expect("valid")
    .into_event("unused".to_owned(), OffsetDateTime::UNIX_EPOCH, 1);
    check_snapshot(
        "asgardeo-seed-userCreated.json",
        &render_bytes(&asgardeo_seed, RenderFormat::Native, &OPTIONS),
    );
}

#[test]
fn custom_types_register_with_their_schema() {
    let spec = |name: &str, schema: Value| CustomTypeSpec {
        name: name.to_owned(),
        description: "A badge was awarded.".to_owned(),
        module: None,
        subject_pointer: Some("/user_id".to_owned()),
        schema,
        example: Some(json!({"user_id": "u1", "badge": "gold"})),
    };
    let schema = json!({"type": "object", "properties": {"user_id": {"type": "string"}, "badge": {"enum": ["gold", "silver"]}}, "required": ["user_id", "badge"]});
    let definition =
        compile_custom_type(spec("acme.badge.awarded", schema.clone())).expect("compiles");
    assert_eq!(definition.taxonomy(), Taxonomy::Custom);
    let problems = definition
        .validate_payload(&json!({"user_id": "u1", "badge": "tin"}))
        .unwrap_err();
    assert_eq!(problems[0].path, "/badge");

    for (name, schema, expected) in [
        (
            "user.created",
            schema.clone(),
            "a built-in type already has this name",
        ),
        ("Bad Name", schema.clone(), "a custom type name uses only"),
        ("acme.x", json!({"type": 12}), "the schema does not compile"),
        (
            "acme.y",
            json!({"type": "object", "required": ["other"]}),
            "the example does not match the schema",
        ),
    ] {
        let error = compile_custom_type(spec(name, schema))
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

fn taxonomy_events() -> impl Strategy<Value = Event> {
    let names: Vec<String> = Catalog::builtin()
        .iter()
        .map(|definition| definition.name().to_owned())
        .collect();
    (
        proptest::sample::select(names),
        "[a-z0-9-]{1,36}",
        0i64..1_000_000,
        0i64..4_000_000_000,
        proptest::option::of("[a-zA-Z0-9._-]{1,20}"),
        proptest::bool::ANY,
    )
        .prop_map(
            |(event_type, id, seq, seconds, context_user, with_context)| {
                let mut event = stored_event(&event_type);
                event.id = id;
                event.seq = seq;
                event.occurred_at = OffsetDateTime::from_unix_timestamp(seconds).expect("in range");
                if with_context && event.taxonomy == Taxonomy::Authgear {
                    event.context.insert("timestamp".to_owned(), json!(seconds));
                    event
                        .context
                        .insert("triggered_by".to_owned(), json!("user"));
                    if let Some(user) = context_user {
                        event.context.insert("user_id".to_owned(), json!(user));
                        // As parsing does: the payload's user wins, the context's fills in.
                        event.subject = event.subject.or(Some(user));
                    }
                }
                event
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Rendering is a fixed point of parse-then-render, in every format: whatever Herald sends
    /// can be published again and comes out byte for byte the same.
    #[test]
    fn render_after_parse_is_the_identity(event in taxonomy_events(), canonical in proptest::bool::ANY) {
        let format = if canonical { RenderFormat::Canonical } else { RenderFormat::Native };
        let rendered = render_bytes(&event, format, &OPTIONS);
        let parsed: ParsedEvent = parse_envelope_bytes(Catalog::builtin(), &rendered)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(parsed.id.as_deref(), Some(event.id.as_str()));
        prop_assert_eq!(parsed.occurred_at, Some(event.occurred_at));
        prop_assert_eq!(&parsed.event_type, &event.event_type);
        let again = render_bytes(&parsed.into_event("unused".to_owned(), OffsetDateTime::UNIX_EPOCH, event.seq), format, &OPTIONS);
        prop_assert_eq!(String::from_utf8_lossy(&again), String::from_utf8_lossy(&rendered));
    }
}

/// Validates `payload` as `event_type`: valid when `expected_paths` is empty, otherwise refused
/// with problems at exactly those JSON paths.
fn check(event_type: &str, payload: &Value, expected_paths: &[&str]) {
    let definition = Catalog::builtin()
        .get(event_type)
        .unwrap_or_else(|| panic!("unknown type {event_type}"));
    let found: BTreeSet<String> = match definition.validate_payload(payload) {
        Ok(()) => BTreeSet::new(),
        Err(problems) => problems.into_iter().map(|problem| problem.path).collect(),
    };
    let expected: BTreeSet<String> = expected_paths
        .iter()
        .map(|path| (*path).to_owned())
        .collect();
    assert_eq!(found, expected, "{event_type}: {payload}");
}

/// The catalog's example payload of `event_type` with one top-level member replaced.
fn example_with(event_type: &str, member: &str, value: Value) -> Value {
    let mut payload = Catalog::builtin()
        .get(event_type)
        .and_then(|definition| definition.example())
        .unwrap_or_else(|| panic!("{event_type} has an example"))
        .clone();
    payload[member] = value;
    payload
}

#[test]
fn asgardeo_action_and_initiator_type_take_the_values_their_section_names() {
    let asgardeo = |path: &str| format!("https://schemas.identity.wso2.org/events/{path}");
    let registration_success = asgardeo("registration/event-type/registrationSuccess");
    let registration_failed = asgardeo("registration/event-type/registrationFailed");
    let credential_updated = asgardeo("credential/event-type/credentialUpdated");
    let user_created = asgardeo("user/event-type/userCreated");
    let profile_updated = asgardeo("user/event-type/userProfileUpdated");
    let user_disabled = asgardeo("user/event-type/userDisabled");
    let user_enabled = asgardeo("user/event-type/userEnabled");
    let user_deleted = asgardeo("user/event-type/userDeleted");
    let cases: [(&str, &str, &str, &[&str]); 36] = [
        // Registration: the flows table names REGISTER and INVITE only.
        (&registration_success, "action", "REGISTER", &[]),
        (&registration_success, "action", "INVITE", &[]),
        (&registration_success, "action", "UPDATE", &["/action"]),
        (&registration_success, "action", "RESET", &["/action"]),
        (&registration_failed, "action", "INVITE", &[]),
        (&registration_failed, "action", "UPDATE", &["/action"]),
        (&registration_success, "initiatorType", "USER", &[]),
        (&registration_success, "initiatorType", "APPLICATION", &[]),
        // Credential update: UPDATE, RESET or INVITE, by an admin, a user or an application.
        (&credential_updated, "action", "UPDATE", &[]),
        (&credential_updated, "action", "RESET", &[]),
        (&credential_updated, "action", "INVITE", &[]),
        (&credential_updated, "action", "REGISTER", &["/action"]),
        (&credential_updated, "initiatorType", "USER", &[]),
        (&credential_updated, "initiatorType", "APPLICATION", &[]),
        // User created: direct registration, invitation or provisioning — never an update or reset.
        (&user_created, "action", "REGISTER", &[]),
        (&user_created, "action", "INVITE", &[]),
        (&user_created, "action", "UPDATE", &["/action"]),
        (&user_created, "action", "RESET", &["/action"]),
        (&user_created, "initiatorType", "USER", &[]),
        // Profile update: UPDATE only, started by anyone.
        (&profile_updated, "action", "UPDATE", &[]),
        (&profile_updated, "action", "REGISTER", &["/action"]),
        (&profile_updated, "action", "INVITE", &["/action"]),
        (&profile_updated, "action", "RESET", &["/action"]),
        (&profile_updated, "initiatorType", "USER", &[]),
        // Disabled, enabled, deleted: an administrator or an application, never the user.
        (&user_disabled, "initiatorType", "ADMIN", &[]),
        (&user_disabled, "initiatorType", "APPLICATION", &[]),
        (&user_disabled, "initiatorType", "USER", &["/initiatorType"]),
        (&user_enabled, "initiatorType", "ADMIN", &[]),
        (&user_enabled, "initiatorType", "APPLICATION", &[]),
        (&user_enabled, "initiatorType", "USER", &["/initiatorType"]),
        (&user_deleted, "initiatorType", "ADMIN", &[]),
        (&user_deleted, "initiatorType", "APPLICATION", &[]),
        (&user_deleted, "initiatorType", "USER", &["/initiatorType"]),
        // The spelling is the seed's: upper case, and "ADMIN", not "ADMINISTRATOR".
        (&user_deleted, "initiatorType", "admin", &["/initiatorType"]),
        (
            &user_deleted,
            "initiatorType",
            "ADMINISTRATOR",
            &["/initiatorType"],
        ),
        (
            &credential_updated,
            "credentialType",
            "TOTP",
            &["/credentialType"],
        ),
    ];
    for (event_type, member, value, expected_paths) in cases {
        check(
            event_type,
            &example_with(event_type, member, json!(value)),
            expected_paths,
        );
    }
}

#[test]
fn onewelcome_requires_only_what_the_seed_or_the_model_requires() {
    let group = "70db71c4-a6d5-469e-a2c5-32cf9756a036";
    let user = "5c2d8f3e-7a41-4b6e-9d0c-2f1a6b8e4c37";
    let machine_principal = json!({"authMode": "MachineToMachine", "clientId": "billing-batch"});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        // A root authorization group has no parent.
        (
            "AuthorizationGroupCreatedEvent",
            json!({"authorizationGroupId": group, "name": "Everyone", "parentId": null}),
            &[],
        ),
        (
            "AuthorizationGroupCreatedEvent",
            json!({"authorizationGroupId": group, "name": "Everyone"}),
            &[],
        ),
        // Nullable is not untyped: a parent that is there is still a UUID string.
        (
            "AuthorizationGroupCreatedEvent",
            json!({"authorizationGroupId": group, "parentId": 42}),
            &["/parentId"],
        ),
        (
            "AuthorizationGroupCreatedEvent",
            json!({"authorizationGroupId": group, "parentId": "finance"}),
            &["/parentId"],
        ),
        // The group the event is about is required, and not null.
        (
            "AuthorizationGroupCreatedEvent",
            json!({"name": "Everyone", "parentId": null}),
            &[""],
        ),
        (
            "AuthorizationGroupCreatedEvent",
            json!({"authorizationGroupId": null, "name": "Everyone"}),
            &["/authorizationGroupId"],
        ),
        // A machine-to-machine principal acts for no user.
        (
            "ConsentReceiptCreatedEvent",
            example_with("ConsentReceiptCreatedEvent", "principal", machine_principal),
            &[],
        ),
        (
            "ConsentReceiptCreatedEvent",
            example_with(
                "ConsentReceiptCreatedEvent",
                "principal",
                json!({"authMode": "MachineToMachine", "clientId": "billing-batch", "userId": null, "actingUserId": null}),
            ),
            &[],
        ),
        // The principal's kind decides how it is read, so it is required.
        (
            "ConsentReceiptCreatedEvent",
            example_with(
                "ConsentReceiptCreatedEvent",
                "principal",
                json!({"clientId": "billing-batch"}),
            ),
            &["/principal"],
        ),
        (
            "ConsentReceiptCreatedEvent",
            example_with(
                "ConsentReceiptCreatedEvent",
                "principal",
                json!({"authMode": "MachineToMachine", "userId": 7}),
            ),
            &["/principal/userId"],
        ),
        // A direct opt-in sends no confirmation message.
        (
            "ConsentReceiptCreatedEvent",
            json!({"consentReceiptId": "8d0e5a52-3c7b-4f0e-a1d9-6b4f2c9e7a10", "status": "agreed", "confirmationMessage": null}),
            &[],
        ),
        // An open-ended validity has no end date, at the top level and inside related roles.
        (
            "DelegationRoleCreatedEvent",
            example_with("DelegationRoleCreatedEvent", "endDate", Value::Null),
            &[],
        ),
        (
            "DelegationRoleCreatedEvent",
            example_with("DelegationRoleCreatedEvent", "endDate", json!("31/12/2025")),
            &["/endDate"],
        ),
        (
            "UserDelegationRolesAddedEvent",
            json!({"userId": user, "organizationId": "8687b18d-8ce1-4c8b-aedd-3a249018775a",
                "roles": [{"roleId": "2d38de7c-3bec-4519-8b67-4d999253f6b7", "startDate": "2024-06-01T00:00:00Z", "endDate": null}]}),
            &[],
        ),
        (
            "UserDelegationRolesAddedEvent",
            json!({"userId": user, "organizationId": "8687b18d-8ce1-4c8b-aedd-3a249018775a",
                "roles": [{"startDate": "2024-06-01T00:00:00Z", "endDate": null}]}),
            &["/roles/0"],
        ),
        // A root organization has no parents.
        (
            "DelegationOrganizationCreatedEvent",
            example_with(
                "DelegationOrganizationCreatedEvent",
                "parentOrganizationIds",
                Value::Null,
            ),
            &[],
        ),
        // An attribute set for the first time had no old value.
        (
            "IdentityModifiedEvent",
            json!({"userId": user, "attributes": [{"id": "f78a2b51-7d52-4eaf-8df0-3e1122d5189b", "name": "loyaltyTier", "oldValue": null, "newValue": "gold"}]}),
            &[],
        ),
        // A device registration carries the client; the rest of what the seed lists may be missing.
        (
            "DeviceRegisteredEvent",
            json!({"clientId": "mobile-banking-ios-7f3a9c", "platform": "ios"}),
            &[],
        ),
        ("DeviceRegisteredEvent", json!({"platform": "ios"}), &[""]),
        // Truly required ids are still refused when missing, with their path.
        ("UserCreatedEvent", json!({}), &[""]),
        ("UserCreatedEvent", json!({"userId": null}), &["/userId"]),
        (
            "AuthorizationGroupMemberAddedEvent",
            json!({"authorizationGroupId": group}),
            &[""],
        ),
        // Unknown members stay accepted.
        (
            "UserCreatedEvent",
            json!({"userId": user, "region": "eu-west"}),
            &[],
        ),
    ];
    for (event_type, payload, expected_paths) in cases {
        check(event_type, &payload, expected_paths);
    }
}

/// Email-like strings in examples use the domains RFC 2606 reserves for documentation.
fn uses_an_example_domain(address: &str) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return true;
    };
    ["example.com", "example.net", "example.org"].contains(&domain)
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|suffix| domain.ends_with(suffix))
}

fn strings_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_in(item, found)),
        Value::Object(members) => members
            .values()
            .for_each(|member| strings_in(member, found)),
        _ => {}
    }
}

#[test]
fn examples_carry_real_example_addresses_not_page_scrape_debris() {
    for definition in Catalog::builtin().iter() {
        let name = definition.name();
        let example = definition.example().expect("every type has an example");
        let text = example.to_string();
        for debris in ["[email", "email protected"] {
            assert!(!text.contains(debris), "{name}: {debris:?} in {text}");
        }
        let mut strings = Vec::new();
        strings_in(example, &mut strings);
        for address in strings
            .iter()
            .filter(|text| !text.contains(' ') && text.contains('@'))
        {
            assert!(
                uses_an_example_domain(address),
                "{name}: {address} is not at an RFC 2606 example domain"
            );
        }
    }
}

#[test]
fn every_example_envelope_is_a_native_envelope_of_its_example() {
    for definition in Catalog::builtin().iter() {
        let name = definition.name();
        let envelope = example_envelope(definition).expect("every type has an example");
        let parsed = parse_envelope(Catalog::builtin(), envelope.clone())
            .unwrap_or_else(|error| panic!("{name}: {error}\n{envelope}"));
        assert_eq!(parsed.event_type, name);
        assert_eq!(Some(&parsed.payload), definition.example(), "{name}");
        assert_eq!(parsed.taxonomy, definition.taxonomy(), "{name}");
        let native_member = match definition.taxonomy() {
            Taxonomy::Asgardeo => "/events",
            Taxonomy::Onewelcome => "/metadata/eventId",
            Taxonomy::Authgear => "/context/triggered_by",
            Taxonomy::Herald | Taxonomy::Custom => "/taxonomy",
        };
        assert!(
            envelope.pointer(native_member).is_some(),
            "{name}: {envelope}"
        );
    }
    let login = Catalog::builtin()
        .get("https://schemas.identity.wso2.org/events/login/event-type/loginSuccess")
        .expect("known");
    let envelope = example_envelope(login).expect("example");
    assert_eq!(envelope["iss"], EXAMPLE_RENDER_OPTIONS.issuer);
    // The same text every time.
    assert_eq!(example_envelope(login), Some(envelope));
}

#[test]
fn shown_schemas_keep_every_definition_their_type_uses() {
    let mut n_pruned = 0;
    for definition in Catalog::builtin().iter() {
        let name = definition.name();
        let shown = definition.schema_with_used_definitions();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&shown)
            .unwrap_or_else(|error| panic!("{name}: the shown schema does not compile: {error}"));
        let example = definition.example().expect("example");
        assert!(validator.is_valid(example), "{name}");
        let count = |schema: &Value| {
            schema
                .get("$defs")
                .and_then(Value::as_object)
                .map_or(0, |defs| defs.len())
        };
        if count(&shown) < count(definition.schema()) {
            n_pruned += 1;
        }
    }
    assert!(
        n_pruned > 100,
        "only {n_pruned} types shed unused definitions"
    );
}

#[test]
fn only_authgear_has_a_context_schema() {
    let catalog = Catalog::builtin();
    let context = catalog
        .context_schema(Taxonomy::Authgear)
        .expect("Authgear's context");
    assert_eq!(
        context["properties"]["triggered_by"]["enum"],
        json!(["user", "admin_api", "system", "portal"])
    );
    for taxonomy in [
        Taxonomy::Asgardeo,
        Taxonomy::Onewelcome,
        Taxonomy::Herald,
        Taxonomy::Custom,
    ] {
        assert_eq!(catalog.context_schema(taxonomy), None, "{taxonomy}");
    }
}
