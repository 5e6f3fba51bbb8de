//! The text of API keys: how new keys are spelled, and the part of a key that may be shown.
//!
//! A new key reads `herald_tk_<64 hex><8 hex>` (a tenant key) or `herald_ak_<64 hex><8 hex>` (an
//! admin key): 256 random bits, then a checksum of everything before it. The fixed prefix and
//! length let secret scanners match Herald keys without false positives on other ids (hook ids
//! are `hk_...`, which is what keys used to start with), and the checksum lets a scanner confirm a
//! match offline. Keys of the older `hk_...` form stay valid: a key is found by its hash, whatever
//! its spelling.

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::secret::GENERATED_KEY_LEN;

/// Who a key is for; its spelling says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyKind {
    /// Reaches one tenant's resources.
    Tenant,
    /// Manages tenants and keys, and reaches every tenant.
    Admin,
}

impl ApiKeyKind {
    /// The fixed start of every new key of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            ApiKeyKind::Tenant => "herald_tk_",
            ApiKeyKind::Admin => "herald_ak_",
        }
    }
}

/// Hex digits of the checksum at the end of a key.
const CHECKSUM_HEX_LEN: usize = 8;

/// Characters of a key kept for display: the prefix and four random hex digits (16 bits), enough
/// to tell keys apart in a list and far too few to guess the rest.
const DISPLAY_RANDOM_LEN: usize = 4;

/// A new random key of `kind`.
pub fn generate_api_key(kind: ApiKeyKind) -> String {
    generate_api_key_with_rng(kind, &mut rand::thread_rng())
}

/// Like [`generate_api_key`], drawing from `rng`.
pub fn generate_api_key_with_rng<R: RngCore + CryptoRng + ?Sized>(
    kind: ApiKeyKind,
    rng: &mut R,
) -> String {
    let mut random_bytes = [0_u8; GENERATED_KEY_LEN];
    rng.fill_bytes(&mut random_bytes);
    let body = format!("{}{}", kind.prefix(), hex::encode(random_bytes));
    let checksum = checksum_of(&body);
    format!("{body}{checksum}")
}

fn checksum_of(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    hex::encode(&digest[..CHECKSUM_HEX_LEN / 2])
}

/// Whether `text` is spelled as a key Herald generates today, checksum included. Keys of older
/// spellings are not, and still work: this is for scanners and error messages, never for
/// authentication.
pub fn is_well_formed_api_key(text: &str) -> bool {
    let Some(rest) = [ApiKeyKind::Tenant, ApiKeyKind::Admin]
        .iter()
        .find_map(|kind| text.strip_prefix(kind.prefix()))
    else {
        return false;
    };
    let expected_len = GENERATED_KEY_LEN * 2 + CHECKSUM_HEX_LEN;
    if rest.len() != expected_len || !rest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return false;
    }
    let (body, checksum) = text.split_at(text.len() - CHECKSUM_HEX_LEN);
    checksum_of(body) == checksum
}

/// The start of a key that may be shown in lists: the kind's prefix and a few random characters.
/// A key of an older spelling shows its first characters up to the same length.
pub fn display_prefix(key: &str) -> String {
    let shown_len = ApiKeyKind::Tenant.prefix().len() + DISPLAY_RANDOM_LEN;
    key.chars().take(shown_len.min(key.len() / 4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_keys_have_their_kind_prefix_a_fixed_length_and_a_valid_checksum() {
        let mut rng = StdRng::seed_from_u64(7);
        for kind in [ApiKeyKind::Tenant, ApiKeyKind::Admin] {
            let key = generate_api_key_with_rng(kind, &mut rng);
            assert!(key.starts_with(kind.prefix()), "{key}");
            assert_eq!(key.len(), 10 + 64 + 8, "{key}");
            assert!(is_well_formed_api_key(&key), "{key}");
            assert_eq!(display_prefix(&key), key[..14], "{key}");
        }
        assert_ne!(
            generate_api_key(ApiKeyKind::Tenant),
            generate_api_key(ApiKeyKind::Tenant)
        );
    }

    #[test]
    fn a_changed_character_or_another_spelling_is_not_well_formed() {
        let key = generate_api_key_with_rng(ApiKeyKind::Tenant, &mut StdRng::seed_from_u64(1));
        let mut altered = key.clone().into_bytes();
        let position = 20;
        altered[position] = if altered[position] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let altered = String::from_utf8(altered).expect("ascii");
        for text in [
            altered.as_str(),
            &key[..key.len() - 1],
            "hk_c2VjcmV0LWtleS1vZi10aGUtb2xkLWZvcm0",
            "herald_xk_00",
            "",
        ] {
            assert!(!is_well_formed_api_key(text), "{text}");
        }
    }

    #[test]
    fn display_prefixes_never_show_most_of_a_key() {
        for key in ["hk_c2VjcmV0LWtleS1vZi10aGUtb2xkLWZvcm0", "short", ""] {
            let shown = display_prefix(key);
            assert!(key.starts_with(&shown));
            assert!(shown.len() <= key.len() / 4, "{key:?} shows {shown:?}");
        }
    }
}
