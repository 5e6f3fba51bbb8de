//! Secrets: webhook signing secrets parsed from what the user typed, and API key helpers.
//!
//! A [`SigningSecret`] can only be built by parsing (or generating), so code past the API edge
//! never sees an empty or half-decoded key. It cannot be printed by accident: `Debug` is redacted
//! and there is no `Display`; the text is reachable only through the explicit
//! [`SigningSecret::expose_text`], for the one response that shows it to its owner.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Hmac;
use hmac::digest::KeyInit;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix that marks a Standard Webhooks secret whose key is base64-encoded.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";

/// How many random bytes a generated signing secret or API key holds (256 bits).
pub const GENERATED_KEY_LEN: usize = 32;

/// Why a signing secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the signing secret is empty")]
    Empty,
    #[error("the signing secret has nothing after `whsec_`")]
    EmptyKeyAfterPrefix,
    #[error(
        "the signing secret starts with `whsec_` but the rest is not valid standard base64: {0}"
    )]
    InvalidBase64(base64::DecodeError),
}

/// The key that signs deliveries and hook requests for one endpoint or hook.
#[derive(Clone)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
    // HMAC keyed once at parse time; each signature starts from a clone of this state instead of
    // redoing the key schedule.
    keyed_mac: Hmac<Sha256>,
}

impl SigningSecret {
    /// Parses a secret in the Standard Webhooks form: `whsec_<base64>` is the base64-decoded key
    /// (the standard alphabet with padding, exactly as the official `standardwebhooks` libraries read
    /// it); any other non-empty string is used as its UTF-8 bytes, so a consumer configured with a
    /// vendor's plain secret keeps working.
    ///
    /// Nothing is trimmed: surrounding whitespace is part of a plain secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = match text.strip_prefix(STANDARD_SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(SecretError::InvalidBase64)?,
            None => text.as_bytes().to_vec(),
        };
        // Only a bare `whsec_` decodes to no bytes; an empty key would sign with no secret at all.
        if key.is_empty() {
            return Err(SecretError::EmptyKeyAfterPrefix);
        }
        Ok(Self::from_parts(text.to_owned(), key))
    }

    /// A secret used as its UTF-8 bytes whatever it starts with, as vendors use the secret typed
    /// into their consoles (a source's secret is the vendor's, so `whsec_` means nothing there).
    pub fn parse_plain(text: &str) -> Result<Self, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self::from_parts(text.to_owned(), text.as_bytes().to_vec()))
    }

    /// A new random secret, `whsec_` followed by the base64 of 32 bytes from the thread's
    /// cryptographically secure generator.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut rand::thread_rng())
    }

    /// Like [`SigningSecret::generate`], drawing from `rng` (tests pass a seeded generator).
    pub fn generate_with_rng<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = vec![0_u8; GENERATED_KEY_LEN];
        rng.fill_bytes(&mut key);
        let text = format!("{STANDARD_SECRET_PREFIX}{}", STANDARD.encode(&key));
        Self::from_parts(text, key)
    }

    /// The secret exactly as the user gave it (or as generated). Show it once, to its owner.
    pub fn expose_text(&self) -> &str {
        &self.text
    }

    /// The HMAC key bytes.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// A fresh HMAC-SHA256 state keyed with this secret.
    pub(crate) fn keyed_mac(&self) -> Hmac<Sha256> {
        self.keyed_mac.clone()
    }

    fn from_parts(text: String, key: Vec<u8>) -> Self {
        let keyed_mac = Hmac::<Sha256>::new(&hmac_block_key(&key));
        Self {
            text,
            key,
            keyed_mac,
        }
    }
}

/// The key as HMAC uses it (RFC 2104 "K0"): hashed first when longer than one SHA-256 block,
/// then zero-padded to a block.
///
/// The `hmac` crate does the same inside `new_from_slice`, but that function returns a `Result`
/// whose error cannot occur for HMAC; building the block key here keeps signing infallible
/// without an `unwrap`. Tests pin this against `new_from_slice` and the RFC 4231 vectors.
fn hmac_block_key(key: &[u8]) -> hmac::digest::Key<Hmac<Sha256>> {
    let mut block_key = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block_key.len() {
        let hashed_key = Sha256::digest(key);
        block_key[..hashed_key.len()].copy_from_slice(&hashed_key);
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    block_key
}

impl FromStr for SigningSecret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Two secrets are equal when their texts are (the key follows from the text), compared in
/// constant time so the comparison reveals nothing about either.
impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.text.as_bytes(), other.text.as_bytes())
    }
}

impl Eq for SigningSecret {}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SigningSecret(<redacted>)")
    }
}

/// The stored form of an API key: the lowercase hex SHA-256 of its text.
///
/// A fast unsalted hash is the right tool here, unlike for passwords: generated keys carry 256
/// bits of entropy, so a stolen hash cannot be reversed by guessing, and a fast hash lets every
/// request be authenticated by one indexed lookup.
pub fn hash_api_key(api_key: &str) -> String {
    hex::encode(Sha256::digest(api_key.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash` (from [`hash_api_key`]), compared in constant time.
pub fn api_key_matches_hash(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_api_key(presented).as_bytes(), stored_hash.as_bytes())
}

/// Byte-slice equality whose running time does not depend on where the slices differ, for
/// comparing signatures and key hashes. Slices of different lengths are unequal; lengths are not
/// secret.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.ct_eq(right).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn check(text: &str, expected: Result<&[u8], SecretError>) {
        let parsed = SigningSecret::parse(text);
        match (&parsed, &expected) {
            (Ok(secret), Ok(expected_key)) => {
                assert_eq!(secret.key_bytes(), *expected_key, "{text:?}");
                assert_eq!(secret.expose_text(), text);
            }
            (Err(error), Err(expected_error)) => assert_eq!(error, expected_error, "{text:?}"),
            _ => panic!("{text:?}: got {parsed:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parses_secrets_as_the_design_says() {
        check("whsec_AQID", Ok(&[1, 2, 3]));
        check("whsec_aGVsbG8=", Ok(b"hello"));
        check("vendor-plain-secret", Ok(b"vendor-plain-secret"));
        check(" spaced ", Ok(b" spaced "));
        check("WHSEC_aGVsbG8=", Ok(b"WHSEC_aGVsbG8="));
        check("sécret", Ok("sécret".as_bytes()));
        check("", Err(SecretError::Empty));
        check("whsec_", Err(SecretError::EmptyKeyAfterPrefix));
        check(
            "whsec_not base64!",
            Err(SecretError::InvalidBase64(
                base64::DecodeError::InvalidByte(3, b' '),
            )),
        );
        // Unpadded input is refused, as by the official library, so a secret Herald accepts is
        // one every Standard Webhooks consumer accepts too.
        check(
            "whsec_aGVsbG8",
            Err(SecretError::InvalidBase64(
                base64::DecodeError::InvalidPadding,
            )),
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SigningSecret::parse("whsec_aGVsbG8=").unwrap();
        assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
        assert_eq!(format!("{secret:#?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn generated_secrets_parse_back_to_their_key() {
        let mut rng = StdRng::seed_from_u64(7);
        let generated = SigningSecret::generate_with_rng(&mut rng);
        let text = generated.expose_text();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(generated.key_bytes().len(), GENERATED_KEY_LEN);
        let reparsed = SigningSecret::parse(text).unwrap();
        assert_eq!(reparsed.key_bytes(), generated.key_bytes());
        assert_ne!(
            SigningSecret::generate().key_bytes(),
            SigningSecret::generate().key_bytes()
        );
    }

    #[test]
    fn api_keys_hash_to_hex() {
        let api_key = "hk_live_c2VjcmV0LWtleS1vZi10aGUtb2xkLWZvcm0";

        let stored_hash = hash_api_key(api_key);
        assert_eq!(stored_hash.len(), 64);
        assert!(api_key_matches_hash(api_key, &stored_hash));
        assert!(!api_key_matches_hash("hk_live_guess", &stored_hash));
        // The SHA-256 of the empty string, a fixed published value.
        assert_eq!(
            hash_api_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"a", false),
        ];
        for (left, right, expected) in cases {
            assert_eq!(
                constant_time_eq(left, right),
                *expected,
                "{left:?} {right:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".*") {
            let _ = SigningSecret::parse(&text);
        }

        #[test]
        fn standard_secrets_round_trip(key in proptest::collection::vec(any::<u8>(), 1..100)) {
            let text = format!("whsec_{}", STANDARD.encode(&key));
            let secret = SigningSecret::parse(&text).unwrap();
            prop_assert_eq!(secret.key_bytes(), &key[..]);
        }

        #[test]
        fn block_key_matches_the_hmac_crate(key in proptest::collection::vec(any::<u8>(), 0..200), message in proptest::collection::vec(any::<u8>(), 0..100)) {
            use hmac::Mac;
            let mut ours = <Hmac<Sha256> as KeyInit>::new(&hmac_block_key(&key));
            let mut theirs = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            ours.update(&message);
            theirs.update(&message);
            prop_assert_eq!(ours.finalize().into_bytes(), theirs.finalize().into_bytes());
        }

        #[test]
        fn plain_secrets_are_their_bytes(text in "[^w].*") {
            let secret = SigningSecret::parse(&text).unwrap();
            prop_assert_eq!(secret.key_bytes(), text.as_bytes());
        }
    }
}
