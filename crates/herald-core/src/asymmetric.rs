//! Standard Webhooks asymmetric signatures: `v1a`, Ed25519 (RFC 8032) over the same
//! `{msg_id}.{timestamp}.{body}` content as the HMAC `v1` signature.
//!
//! The Standard Webhooks specification ("Signature scheme") serialises the key pair with prefixes
//! so each is recognised on sight: `whsk_` + base64 for the secret key and `whpk_` + base64 of the
//! 32-byte public key for the public key; a signature travels in `webhook-signature` as
//! `v1a,<base64 of the 64-byte signature>`, space-separated from any other signature. Consumers
//! keep a trust list of `whpk_` keys and never take a key from the request itself.
//!
//! Herald keeps the private key as the base64url of its 32-byte seed (the stored form of the
//! tenant key store); it is never shown. Signing uses `ring`; tests verify with an independent
//! implementation.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::{CryptoRng, RngCore};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use time::OffsetDateTime;

use crate::signing::{ReceivedStandardHeaders, VerifyError, check_timestamp, parse_timestamp};

/// The version tag of an asymmetric (Ed25519) Standard Webhooks signature.
pub const ASYMMETRIC_SIGNATURE_VERSION: &str = "v1a";
/// The JWS `alg` of these keys in the tenant key store (RFC 8037 §3.1).
pub const JWS_ALGORITHM: &str = "EdDSA";
/// The prefix of a serialised public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

const SEED_LEN: usize = 32;
const PUBLIC_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the stored Ed25519 private key is not the base64url of a 32-byte seed")]
    InvalidPrivateKey,
    #[error("a public key must be `whpk_` followed by the standard base64 of 32 bytes")]
    InvalidPublicKey,
}

/// An Ed25519 private key that signs `v1a` signatures (and EdDSA JWS, RFC 8037).
#[derive(Clone)]
pub struct Ed25519SigningKey {
    seed: [u8; SEED_LEN],
    public_key: Ed25519PublicKey,
}

// The seed must never reach a log line: Debug shows only the public key.
impl fmt::Debug for Ed25519SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Ed25519SigningKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl Ed25519SigningKey {
    /// A fresh key; the seed is 32 bytes from `rng` (RFC 8032 §5.1.5: the private key is 32
    /// random bytes).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = [0_u8; SEED_LEN];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    fn from_seed(seed: [u8; SEED_LEN]) -> Self {
        let mut public_key = [0_u8; PUBLIC_KEY_LEN];
        public_key.copy_from_slice(Self::key_pair_of(&seed).public_key().as_ref());
        Self {
            seed,
            public_key: Ed25519PublicKey(public_key),
        }
    }

    fn key_pair_of(seed: &[u8; SEED_LEN]) -> Ed25519KeyPair {
        // Any 32 bytes are a valid Ed25519 seed, so this cannot fail for an array of that length;
        // `ring` only refuses other lengths.
        match Ed25519KeyPair::from_seed_unchecked(seed) {
            Ok(key_pair) => key_pair,
            Err(_) => unreachable!("ring accepts every 32-byte seed"),
        }
    }

    /// Loads a key stored by [`Self::private_key_text`].
    pub fn from_private_key_text(text: &str) -> Result<Self, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        let seed: [u8; SEED_LEN] = bytes.try_into().map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(Self::from_seed(seed))
    }

    /// The stored form: base64url (no padding) of the seed, like the tenant's other keys.
    pub fn private_key_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.seed)
    }

    pub fn public_key(&self) -> &Ed25519PublicKey {
        &self.public_key
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut signature = [0_u8; SIGNATURE_LEN];
        signature.copy_from_slice(Self::key_pair_of(&self.seed).sign(message).as_ref());
        signature
    }

    /// The `v1a,<base64 signature>` entry of `webhook-signature`.
    pub fn standard_signature(&self, msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
        let signature = self.sign_bytes(&signed_content(msg_id, timestamp_s, body));
        format!(
            "{ASYMMETRIC_SIGNATURE_VERSION},{}",
            STANDARD.encode(signature)
        )
    }
}

/// An Ed25519 public key, the one consumers put in their trust list.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519PublicKey([u8; PUBLIC_KEY_LEN]);

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_whpk())
    }
}

impl Ed25519PublicKey {
    /// `whpk_` + standard base64 of the 32 bytes, as the Standard Webhooks libraries read it.
    pub fn to_whpk(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(self.0))
    }

    /// Reads a `whpk_` key (surrounding whitespace ignored).
    pub fn parse_whpk(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(KeyError::InvalidPublicKey)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    /// The raw 32 bytes (RFC 8037 §2: the JWK's `x` is their base64url).
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }
}

/// `{msg_id}.{timestamp}.{body}`, the content both `v1` and `v1a` sign.
fn signed_content(msg_id: &str, timestamp_s: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp_s.to_string();
    let mut content = Vec::with_capacity(msg_id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// Checks a received request's `v1a` signatures against a trust list of public keys (any may
/// match), for `herald verify` and Herald's own tests. `v1` entries are skipped, as the
/// official libraries skip versions they were not asked to check.
pub fn verify_asymmetric(
    public_keys: &[Ed25519PublicKey],
    headers: &ReceivedStandardHeaders<'_>,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    if public_keys.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let msg_id = headers.webhook_id.trim();
    if msg_id.is_empty() {
        return Err(VerifyError::EmptyMessageId);
    }
    let timestamp_s = parse_timestamp(headers.webhook_timestamp.trim())?;
    let signature_header = headers.webhook_signature.trim();
    if signature_header.is_empty() {
        return Err(VerifyError::EmptySignatureHeader);
    }
    check_timestamp(timestamp_s, now, tolerance)?;
    let content = signed_content(msg_id, timestamp_s, body);
    let mut any_v1a = false;
    for entry in signature_header
        .split(' ')
        .filter(|entry| !entry.is_empty())
    {
        let Some((ASYMMETRIC_SIGNATURE_VERSION, encoded)) = entry.split_once(',') else {
            continue;
        };
        any_v1a = true;
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        // A public signature needs no constant-time comparison: verification either holds or
        // not, and timing tells nothing about a secret.
        if public_keys.iter().any(|public_key| {
            UnparsedPublicKey::new(&ED25519, public_key.as_bytes())
                .verify(&content, &signature)
                .is_ok()
        }) {
            return Ok(());
        }
    }
    if any_v1a {
        Err(VerifyError::SignatureMismatch)
    } else {
        Err(VerifyError::NoSupportedSignature)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn key(seed: u64) -> Ed25519SigningKey {
        Ed25519SigningKey::generate(&mut StdRng::seed_from_u64(seed))
    }

    // RFC 8032 §7.1, TEST 2: a published seed, public key and signature of the one-byte message
    // 0x72 pin that the seed is read as RFC 8032 reads it.
    #[test]
    fn signs_the_rfc_8032_test_vector() {
        let seed = hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
            .expect("hex");
        let key =
            Ed25519SigningKey::from_private_key_text(&URL_SAFE_NO_PAD.encode(seed)).expect("key");
        assert_eq!(
            hex::encode(key.public_key().as_bytes()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        assert_eq!(
            hex::encode(key.sign_bytes(&[0x72])),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
    }

    #[test]
    fn an_independent_implementation_verifies_v1a_from_the_whpk_key() {
        let key = key(1);
        let body = br#"{"type":"user.created"}"#;
        let entry = key.standard_signature("msg_1", 1_700_000_000, body);
        let encoded = entry.strip_prefix("v1a,").expect("v1a entry");
        let signature =
            Signature::from_slice(&STANDARD.decode(encoded).expect("b64")).expect("sig");
        let whpk = key.public_key().to_whpk();
        let public_bytes: [u8; 32] = STANDARD
            .decode(whpk.strip_prefix("whpk_").expect("prefix"))
            .expect("b64")
            .try_into()
            .expect("32 bytes");
        let verifying_key = VerifyingKey::from_bytes(&public_bytes).expect("point");
        verifying_key
            .verify(br#"msg_1.1700000000.{"type":"user.created"}"#, &signature)
            .expect("verifies");
        assert!(
            verifying_key
                .verify(br#"msg_1.1700000001.{"type":"user.created"}"#, &signature)
                .is_err()
        );
    }

    #[test]
    fn keys_survive_their_stored_and_published_forms_and_never_print_the_seed() {
        let key = key(2);
        let text = key.private_key_text();
        let reloaded = Ed25519SigningKey::from_private_key_text(&text).expect("reload");
        assert_eq!(reloaded.public_key(), key.public_key());
        assert_eq!(
            Ed25519PublicKey::parse_whpk(&key.public_key().to_whpk()),
            Ok(*key.public_key())
        );
        assert!(!format!("{key:?}").contains(&text));
        for bad in ["", "whpk_", "whpk_AAAA", "whsec_AAAA", "whpk_not base64!"] {
            assert_eq!(
                Ed25519PublicKey::parse_whpk(bad),
                Err(KeyError::InvalidPublicKey),
                "{bad:?}"
            );
        }
        assert_eq!(
            Ed25519SigningKey::from_private_key_text("AAAA").map(|_| ()),
            Err(KeyError::InvalidPrivateKey)
        );
    }

    #[test]
    fn verification_takes_any_trusted_key_and_refuses_the_rest() {
        fn check(
            trusted: &[Ed25519PublicKey],
            signature_header: &str,
            expected: Result<(), VerifyError>,
        ) {
            let headers = ReceivedStandardHeaders {
                webhook_id: "msg_1",
                webhook_timestamp: &NOW.unix_timestamp().to_string(),
                webhook_signature: signature_header,
            };
            assert_eq!(
                verify_asymmetric(trusted, &headers, b"{}", NOW, Duration::from_secs(300)),
                expected,
                "{signature_header}"
            );
        }
        let (old, new) = (key(3), key(4));
        let timestamp = NOW.unix_timestamp();
        let by_old = old.standard_signature("msg_1", timestamp, b"{}");
        let by_new = new.standard_signature("msg_1", timestamp, b"{}");
        let both = format!("v1,AAAA {by_new} {by_old}");
        check(&[*old.public_key()], &both, Ok(()));
        check(&[*new.public_key()], &both, Ok(()));
        check(
            &[*new.public_key()],
            &by_old,
            Err(VerifyError::SignatureMismatch),
        );
        check(
            &[*new.public_key()],
            "v1,AAAA",
            Err(VerifyError::NoSupportedSignature),
        );
        check(&[], &by_new, Err(VerifyError::NoSecrets));
        let other_id = new.standard_signature("msg_2", timestamp, b"{}");
        check(
            &[*new.public_key()],
            &other_id,
            Err(VerifyError::SignatureMismatch),
        );
    }

    #[test]
    fn each_scheme_puts_its_signatures_in_webhook_signature() {
        use crate::secret::SigningSecret;
        use crate::signing::{NativeSignature, SignatureScheme, SignedHeaders, SigningError};

        let secret =
            SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let (old, new) = (key(5), key(6));
        let body = br#"{"a":1}"#;
        let header = |scheme, keys: &[&Ed25519SigningKey]| {
            SignedHeaders::with_scheme(
                scheme,
                &[&secret],
                keys,
                "msg_9",
                1_700_000_000,
                body,
                NativeSignature::AuthgearBodyHex,
            )
            .map(|signed| signed.get("webhook-signature").map(str::to_owned))
        };
        let v1 = crate::signing::standard_signature(&secret, "msg_9", 1_700_000_000, body);
        let v1a_new = new.standard_signature("msg_9", 1_700_000_000, body);
        let v1a_old = old.standard_signature("msg_9", 1_700_000_000, body);
        assert_eq!(header(SignatureScheme::V1, &[&new]), Ok(Some(v1.clone())));
        assert_eq!(
            header(SignatureScheme::V1a, &[&new, &old]),
            Ok(Some(format!("{v1a_new} {v1a_old}")))
        );
        assert_eq!(
            header(SignatureScheme::V1aAndV1, &[&new]),
            Ok(Some(format!("{v1} {v1a_new}")))
        );
        assert_eq!(
            header(SignatureScheme::V1a, &[]),
            Err(SigningError::NoAsymmetricKey)
        );
        // The vendor's native header stays the HMAC of the secret whatever the scheme.
        let signed = SignedHeaders::with_scheme(
            SignatureScheme::V1a,
            &[&secret],
            &[&new],
            "msg_9",
            1_700_000_000,
            body,
            NativeSignature::AuthgearBodyHex,
        )
        .expect("signed");
        assert_eq!(
            signed.get("x-authgear-body-signature"),
            NativeSignature::AuthgearBodyHex
                .sign(&secret, body)
                .as_deref()
        );
        for scheme in [
            SignatureScheme::V1,
            SignatureScheme::V1a,
            SignatureScheme::V1aAndV1,
        ] {
            assert_eq!(SignatureScheme::parse(scheme.as_str()), Some(scheme));
        }
        assert_eq!(SignatureScheme::parse("v1+v1a"), None);
    }
}
