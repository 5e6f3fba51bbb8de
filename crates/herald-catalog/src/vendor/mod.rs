//! Vendors: everything that differs from one identity system to the next, behind one trait.
//!
//! A vendor is one module here implementing [`Vendor`] (its taxonomy, its embedded catalog file,
//! how its envelope is recognised, split and rendered, which signature header its consumers
//! expect) and one line in [`VENDORS`]. The taxonomy names, the catalog loader and the envelope
//! code iterate the registry, so none of them names a vendor.
//!
//! Herald's own taxonomies are not vendors: `herald` (operational events: a catalog file, no
//! envelope of its own) and `custom` (types a tenant registers at run time) travel in Herald's
//! canonical form, which every event can also be rendered in.

mod asgardeo;
mod authgear;
mod onewelcome;

use serde_json::{Map, Value};

use crate::envelope::{Event, RawEnvelope, RenderFormat, RenderOptions};
use crate::taxonomy::Taxonomy;
use crate::validation::Problem;

/// Every vendor, in detection order: an envelope is the first vendor's whose mark it carries,
/// so vendors marked by a member of their own come before flat ones (see [`EnvelopeMark`]).
/// Adding a vendor is adding its module and one line here (and its `Taxonomy` variant).
pub const VENDORS: &[&dyn Vendor] = &[
    &asgardeo::Asgardeo,
    &onewelcome::Onewelcome,
    &authgear::Authgear,
];

/// What differs per vendor. The implementations live in this module's children; the trait is
/// public so callers can ask a taxonomy's vendor for its facts, and sealed in practice because
/// only this crate can build a [`RawEnvelope`].
pub trait Vendor: Sync {
    /// The taxonomy of this vendor's event types.
    fn taxonomy(&self) -> Taxonomy;

    /// The embedded catalog data file of this vendor's types: `(file name, JSON text)`.
    fn catalog_file(&self) -> (&'static str, &'static str);

    /// How a document is recognised as this vendor's envelope.
    fn envelope_mark(&self) -> EnvelopeMark;

    /// The event type a document in this vendor's envelope says it carries, without validating
    /// anything. Flat envelopes keep it in `type`, as Herald's canonical form does.
    fn declared_type<'document>(
        &self,
        document: &'document Map<String, Value>,
    ) -> Option<&'document str> {
        document.get("type")?.as_str()
    }

    /// The JSON pointer of the type name in this vendor's envelope, for problems about the type.
    fn type_pointer(&self, _event_type: &str) -> String {
        "/type".to_owned()
    }

    /// Takes an envelope apart before the catalog is consulted, with every problem of its own
    /// members (the payload is checked later, against the type's schema).
    fn split(&self, document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>);

    /// The event in this vendor's envelope, filling what the producer left out deterministically.
    fn render(&self, event: &Event, options: &RenderOptions<'_>) -> Value;

    /// The signature header this vendor's consumers check, besides Standard Webhooks' own.
    fn native_signature(&self) -> NativeSignatureKind;
}

/// How an envelope is told apart from the other vendors' and from Herald's canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeMark {
    /// A top-level member no other envelope has (Asgardeo's `events`), and how the envelope is
    /// described to a producer whose document is no envelope at all.
    Member {
        member: &'static str,
        described: &'static str,
    },
    /// Flat like the canonical form (`{type, payload, ...}`): the envelope is this vendor's when
    /// its `type` is one of this vendor's types.
    FlatWithOwnType,
}

/// Which vendor signature header a delivery carries besides Standard Webhooks' own. The catalog
/// only names it: `herald-core` computes and checks it, and `herald-delivery` maps one to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeSignatureKind {
    /// No vendor header.
    None,
    /// `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>` (WebSub; Asgardeo).
    HubSignatureSha256,
    /// `x-authgear-body-signature: <hex HMAC-SHA256 of the body>`.
    AuthgearBodyHex,
}

/// The vendor whose types are in `taxonomy`; `None` for Herald's own taxonomies.
pub fn of(taxonomy: Taxonomy) -> Option<&'static dyn Vendor> {
    VENDORS
        .iter()
        .copied()
        .find(|vendor| vendor.taxonomy() == taxonomy)
}

/// The native signature header of an event of `taxonomy` rendered in `format`: its vendor's when
/// it travels in that vendor's envelope, none in the canonical form or for Herald's own taxonomies.
pub fn native_signature_kind(format: RenderFormat, taxonomy: Taxonomy) -> NativeSignatureKind {
    match (format, of(taxonomy)) {
        (RenderFormat::Native, Some(vendor)) => vendor.native_signature(),
        (RenderFormat::Native, None) | (RenderFormat::Canonical, _) => NativeSignatureKind::None,
    }
}

#[cfg(test)]
mod tests;
