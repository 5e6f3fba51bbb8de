//! Which native signature header a delivery carries: the catalog says which kind the event's
//! vendor expects, `herald-core` knows how to compute it. This is the one place the two meet,
//! because the catalog and core do not depend on each other.

use herald_catalog::envelope::RenderFormat;
use herald_catalog::taxonomy::Taxonomy;
use herald_catalog::vendor::{NativeSignatureKind, native_signature_kind};
use herald_core::signing::NativeSignature;

/// The native signature of an event of `taxonomy` rendered in `format`: its vendor's header in
/// its vendor's envelope, none in the canonical form or for Herald's own taxonomies.
pub fn native_signature(format: RenderFormat, taxonomy: Taxonomy) -> NativeSignature {
    match native_signature_kind(format, taxonomy) {
        NativeSignatureKind::None => NativeSignature::None,
        NativeSignatureKind::HubSignatureSha256 => NativeSignature::HubSignatureSha256,
        NativeSignatureKind::AuthgearBodyHex => NativeSignature::AuthgearBodyHex,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(format: RenderFormat, taxonomy: Taxonomy, expected: NativeSignature) {
        assert_eq!(
            native_signature(format, taxonomy),
            expected,
            "{format:?} {taxonomy}"
        );
    }

    /// The table the dispatcher used to hold as a `match (format, taxonomy)`.
    #[test]
    fn each_vendor_envelope_carries_its_vendors_header() {
        check(
            RenderFormat::Native,
            Taxonomy::Authgear,
            NativeSignature::AuthgearBodyHex,
        );
        check(
            RenderFormat::Native,
            Taxonomy::Asgardeo,
            NativeSignature::HubSignatureSha256,
        );
        check(
            RenderFormat::Native,
            Taxonomy::Onewelcome,
            NativeSignature::None,
        );
        check(
            RenderFormat::Native,
            Taxonomy::Herald,
            NativeSignature::None,
        );
        check(
            RenderFormat::Native,
            Taxonomy::Custom,
            NativeSignature::None,
        );
        for taxonomy in Taxonomy::all() {
            check(RenderFormat::Canonical, taxonomy, NativeSignature::None);
        }
    }

    #[test]
    fn the_header_names_are_the_vendors() {
        assert_eq!(
            native_signature(RenderFormat::Native, Taxonomy::Authgear).header_name(),
            Some("x-authgear-body-signature")
        );
        assert_eq!(
            native_signature(RenderFormat::Native, Taxonomy::Asgardeo).header_name(),
            Some("x-hub-signature")
        );
    }
}
