//! The body of the `envelope` fuzz target, shared with the corpus replay test of herald-catalog
//! (`crates/herald-catalog/tests/fuzz_corpus.rs`): any bytes, as a request body would bring them,
//! through envelope detection, strict JSON parsing, validation against the built-in catalog, and
//! rendering.
//!
//! Besides "never panics", it checks the round trip: an accepted event, rendered natively, is
//! itself an acceptable envelope of the same type, with the same id and payload.

use herald_catalog::catalog::Catalog;
use herald_catalog::envelope::{RenderFormat, RenderOptions, parse_envelope_bytes, render_bytes};
use time::OffsetDateTime;

pub fn run(data: &[u8]) {
    let catalog = Catalog::builtin();
    let Ok(parsed) = parse_envelope_bytes(catalog, data) else {
        return;
    };
    let event = parsed.into_event("generated-id".to_owned(), OffsetDateTime::UNIX_EPOCH, 7);
    let options = RenderOptions {
        tenant_id: "acme",
        issuer: "https://acme.example/",
    };
    let canonical = render_bytes(&event, RenderFormat::Canonical, &options);
    assert!(!canonical.is_empty(), "the canonical rendering is empty");
    let native = render_bytes(&event, RenderFormat::Native, &options);
    let again = match parse_envelope_bytes(catalog, &native) {
        Ok(again) => again,
        Err(error) => panic!(
            "a rendered event does not parse back: {error}\nrendered: {}",
            String::from_utf8_lossy(&native)
        ),
    };
    assert_eq!(again.event_type, event.event_type, "the type changed");
    assert_eq!(
        again.id.as_deref(),
        Some(event.id.as_str()),
        "the id changed"
    );
    assert_eq!(again.payload, event.payload, "the payload changed");
}
