//! Unit tests of envelope parsing and rendering.

use serde_json::{Value, json};

use super::{declared_type, declared_type_pointer, parse_envelope};
use crate::catalog::Catalog;
use crate::taxonomy::Taxonomy;

const ASGARDEO_LOGIN: &str =
    "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess";

/// Where a document declares its type: `(type, pointer)`, or `None` for no envelope.
fn check_declared(document: Value, expected: Option<(&str, &str)>) {
    let found = declared_type(&document).zip(declared_type_pointer(&document));
    assert_eq!(
        found
            .as_ref()
            .map(|(event_type, pointer)| (*event_type, pointer.as_str())),
        expected,
        "{document}"
    );
}

#[test]
fn the_declared_type_is_found_where_each_envelope_keeps_it() {
    check_declared(
        json!({"jti": "a", "events": {ASGARDEO_LOGIN: {}}}),
        Some((
            ASGARDEO_LOGIN,
            "/events/https:~1~1schemas.identity.wso2.org~1events~1login~1event-type~1loginSuccess",
        )),
    );
    check_declared(
        json!({"metadata": {"type": "UserCreatedEvent"}, "payload": {}}),
        Some(("UserCreatedEvent", "/metadata/type")),
    );
    check_declared(
        json!({"type": "user.created", "payload": {}}),
        Some(("user.created", "/type")),
    );
    check_declared(
        json!({"type": "acme.thing.happened", "payload": {}}),
        Some(("acme.thing.happened", "/type")),
    );
    // Members are tried in the registry's order, and the first mark decides the shape even when
    // the type is not where that envelope keeps it.
    check_declared(
        json!({"events": {ASGARDEO_LOGIN: {}}, "metadata": {"type": "UserCreatedEvent"}}),
        Some((
            ASGARDEO_LOGIN,
            "/events/https:~1~1schemas.identity.wso2.org~1events~1login~1event-type~1loginSuccess",
        )),
    );
    check_declared(json!({"events": 5, "type": "user.created"}), None);
    check_declared(json!({"payload": {}}), None);
    check_declared(json!(["type"]), None);
}

#[test]
fn a_document_of_no_shape_is_told_which_envelopes_there_are() {
    let error =
        parse_envelope(Catalog::builtin(), json!({"payload": {}})).expect_err("no envelope");
    let problems = error.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "");
    assert_eq!(
        problems[0].message,
        "not an event envelope: expected an Asgardeo envelope (with \"events\"), a OneWelcome \
         envelope (with \"metadata\" and \"payload\"), or an object with \"type\" and \"payload\""
    );
}

#[test]
fn a_flat_document_is_authgears_only_when_its_type_is() {
    // Authgear's envelope keeps members it does not know as the producer's; the canonical form
    // refuses them, so `extra` tells which of the two read the document.
    let authgear = parse_envelope(
        Catalog::builtin(),
        json!({"type": "user.created", "payload": {"user": {}, "identities": []}, "extra": 1}),
    )
    .expect("an Authgear envelope");
    assert_eq!(authgear.taxonomy, Taxonomy::Authgear);
    assert_eq!(authgear.producer.get("extra"), Some(&json!(1)));
    let canonical = parse_envelope(
        Catalog::builtin(),
        json!({"type": "UserCreatedEvent", "payload": {}, "extra": 1}),
    )
    .expect_err("the canonical form has no member `extra`");
    assert_eq!(canonical.problems()[0].path, "/extra");
}

#[test]
fn an_unknown_taxonomy_names_the_known_ones() {
    let error = "nope".parse::<Taxonomy>().expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "unknown taxonomy \"nope\": expected one of asgardeo, onewelcome, authgear, herald, custom"
    );
    let names: Vec<&str> = Taxonomy::all().map(Taxonomy::as_str).collect();
    assert_eq!(
        names,
        ["asgardeo", "onewelcome", "authgear", "herald", "custom"]
    );
    for taxonomy in Taxonomy::all() {
        assert_eq!(taxonomy.as_str().parse(), Ok(taxonomy));
    }
}
