//! The registry's own consistency: every vendor taxonomy registered once, each with its own file.

use serde_json::Value;

use super::{NativeSignatureKind, VENDORS, native_signature_kind, of};
use crate::envelope::RenderFormat;
use crate::taxonomy::Taxonomy;

#[test]
fn every_taxonomy_but_heralds_own_has_exactly_one_vendor() {
    for taxonomy in Taxonomy::all() {
        let n_vendors = VENDORS
            .iter()
            .filter(|vendor| vendor.taxonomy() == taxonomy)
            .count();
        let expected = usize::from(!matches!(taxonomy, Taxonomy::Herald | Taxonomy::Custom));
        assert_eq!(n_vendors, expected, "{taxonomy}");
    }
}

#[test]
fn each_catalog_file_is_its_vendors() {
    for vendor in VENDORS {
        let (file_name, text) = vendor.catalog_file();
        let file: Value = serde_json::from_str(text).expect("the embedded file is JSON");
        assert_eq!(
            file["taxonomy"].as_str(),
            Some(vendor.taxonomy().as_str()),
            "{file_name}"
        );
        assert_eq!(file_name, format!("{}.json", vendor.taxonomy()));
    }
}

#[test]
fn native_signatures_follow_the_envelope() {
    fn check(format: RenderFormat, taxonomy: Taxonomy, expected: NativeSignatureKind) {
        assert_eq!(
            native_signature_kind(format, taxonomy),
            expected,
            "{format:?} {taxonomy}"
        );
    }
    use NativeSignatureKind::{AuthgearBodyHex, HubSignatureSha256};
    check(RenderFormat::Native, Taxonomy::Asgardeo, HubSignatureSha256);
    check(RenderFormat::Native, Taxonomy::Authgear, AuthgearBodyHex);
    check(
        RenderFormat::Native,
        Taxonomy::Onewelcome,
        NativeSignatureKind::None,
    );
    check(
        RenderFormat::Native,
        Taxonomy::Herald,
        NativeSignatureKind::None,
    );
    check(
        RenderFormat::Native,
        Taxonomy::Custom,
        NativeSignatureKind::None,
    );
    for taxonomy in Taxonomy::all() {
        check(RenderFormat::Canonical, taxonomy, NativeSignatureKind::None);
    }
}

#[test]
fn herald_own_taxonomies_have_no_vendor() {
    assert!(of(Taxonomy::Herald).is_none());
    assert!(of(Taxonomy::Custom).is_none());
}
