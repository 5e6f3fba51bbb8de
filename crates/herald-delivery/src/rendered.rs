//! The bodies rendered last, so that an event going to several endpoints in the same format is
//! rendered once (issue 16: a fan-out to ten endpoints rendered each event ten times).
//!
//! A body depends on the event, the format and the tenant's render options only (never on the
//! endpoint or the time: those go into headers), so one rendering serves every delivery of the
//! event in that format. Bounded: the oldest body is dropped first, and an event whose
//! deliveries are claimed far apart is simply rendered again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use herald_catalog::envelope::{Event, RenderFormat, RenderOptions, render_bytes};

/// What a body is rendered from: the tenant, the event's `seq` within it (never given to another
/// event, retention included), the format and the issuer the rendering may fill in.
type Key = (String, i64, RenderFormat, String);

#[derive(Debug)]
pub(crate) struct RenderedBodies {
    capacity: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    bodies: HashMap<Key, Bytes>,
    oldest_first: VecDeque<Key>,
}

impl RenderedBodies {
    pub(crate) fn new(capacity: usize) -> Self {
        RenderedBodies {
            capacity,
            held: Mutex::default(),
        }
    }

    /// The event's body in `format`, rendered now unless it was lately.
    pub(crate) fn body(
        &self,
        event: &Event,
        format: RenderFormat,
        options: &RenderOptions<'_>,
    ) -> Bytes {
        let key: Key = (
            options.tenant_id.to_owned(),
            event.seq,
            format,
            options.issuer.to_owned(),
        );
        if let Some(body) = self.lock().bodies.get(&key) {
            return body.clone();
        }
        // Rendered outside the lock: two tasks may both render the same body, never wait.
        let body = Bytes::from(render_bytes(event, format, options));
        let mut held = self.lock();
        if held.bodies.insert(key.clone(), body.clone()).is_none() {
            held.oldest_first.push_back(key);
        }
        while held.oldest_first.len() > self.capacity {
            if let Some(oldest) = held.oldest_first.pop_front() {
                held.bodies.remove(&oldest);
            }
        }
        body
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Each change is a whole insert or removal, so a poisoned map is still consistent.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_catalog::envelope::EXAMPLE_RENDER_OPTIONS;

    fn event(seq: i64) -> Event {
        Event {
            id: format!("evt-{seq}"),
            seq,
            taxonomy: herald_catalog::taxonomy::Taxonomy::Authgear,
            event_type: "user.created".to_owned(),
            subject: Some("u1".to_owned()),
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            payload: serde_json::json!({"user": {"id": "u1"}}),
            context: serde_json::Map::new(),
            producer: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_body_is_rendered_once_per_event_and_format_and_kept_within_bounds() {
        let rendered = RenderedBodies::new(2);
        let first = event(1);
        let native = rendered.body(&first, RenderFormat::Native, &EXAMPLE_RENDER_OPTIONS);
        let again = rendered.body(&first, RenderFormat::Native, &EXAMPLE_RENDER_OPTIONS);
        assert_eq!(
            native.as_ptr(),
            again.as_ptr(),
            "the same bytes, not a new rendering"
        );
        assert_eq!(
            native,
            Bytes::from(render_bytes(
                &first,
                RenderFormat::Native,
                &EXAMPLE_RENDER_OPTIONS
            ))
        );
        let canonical = rendered.body(&first, RenderFormat::Canonical, &EXAMPLE_RENDER_OPTIONS);
        assert_ne!(
            native.as_ptr(),
            canonical.as_ptr(),
            "another format, another body"
        );

        // A third body drops the oldest (the native one), so it is rendered anew.
        rendered.body(&event(2), RenderFormat::Native, &EXAMPLE_RENDER_OPTIONS);
        let renewed = rendered.body(&first, RenderFormat::Native, &EXAMPLE_RENDER_OPTIONS);
        assert_ne!(native.as_ptr(), renewed.as_ptr());
        assert_eq!(native, renewed);
        assert!(rendered.lock().bodies.len() <= 2);
    }
}
