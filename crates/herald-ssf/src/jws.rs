//! JWS compact serialization (RFC 7515) of SETs, signed with a key Herald generated, and the public
//! keys as a JWK Set (RFC 7517) so receivers verify without a shared secret.
//!
//! ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4; the private key stored as the base64url of its
//! 32-byte scalar) and RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3, 2048-bit keys; the
//! private key stored as the base64url of its PKCS#8 DER).
//!
//! EdDSA (Ed25519, RFC 8037 §3.1; the private key stored as the base64url of its 32-byte seed) is
//! the tenant's key for Standard Webhooks `v1a` endpoint signatures: the same key store, the same
//! rotation, and published in the same JWK Set as an OKP key (RFC 8037 §2). It signs SETs only
//! when a tenant asks for it; the SET key is ES256 or RS256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::asymmetric::Ed25519SigningKey;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

/// RFC 7518 §3.3: a key of size 2048 bits or larger MUST be used with RS256.
const RSA_KEY_BITS: usize = 2048;

/// The JWS algorithms Herald signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    Es256,
    Rs256,
    /// Ed25519 (RFC 8037): the key of Standard Webhooks `v1a` signatures.
    EdDsa,
}

impl JwsAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => herald_core::asymmetric::JWS_ALGORITHM,
        }
    }

    /// Whether keys of this algorithm sign `v1a` webhook signatures rather than SETs. Each of
    /// the two kinds has its own current key and rotates on its own.
    pub fn signs_webhooks(self) -> bool {
        matches!(self, Self::EdDsa)
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// The private key itself.
#[derive(Clone)]
enum KeyMaterial {
    Es256(SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
    EdDsa(Box<Ed25519SigningKey>),
}

/// Why a key could not be loaded or a token not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("the stored private key is not a valid {0} key")]
    InvalidPrivateKey(&'static str),
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("a key could not be generated")]
    KeyGeneration,
}

/// A tenant's private signing key with its key id.
#[derive(Clone)]
pub struct TenantSigningKey {
    pub kid: String,
    pub algorithm: JwsAlgorithm,
    key: KeyMaterial,
}

// The private key must never reach a log line, so Debug shows only its id and algorithm.
impl std::fmt::Debug for TenantSigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TenantSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TenantSigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate(kid: String, algorithm: JwsAlgorithm) -> Result<Self, JwsError> {
        let key = match algorithm {
            JwsAlgorithm::Es256 => KeyMaterial::Es256(SigningKey::random(&mut rand_core::OsRng)),
            JwsAlgorithm::Rs256 => KeyMaterial::Rs256(Box::new(
                rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_KEY_BITS)
                    .map_err(|_| JwsError::KeyGeneration)?,
            )),
            JwsAlgorithm::EdDsa => {
                KeyMaterial::EdDsa(Box::new(Ed25519SigningKey::generate(&mut rand_core::OsRng)))
            }
        };
        Ok(Self {
            kid,
            algorithm,
            key,
        })
    }

    /// The private key as stored: base64url of the P-256 scalar, or of the RSA key's PKCS#8 DER.
    pub fn private_key_text(&self) -> Result<String, JwsError> {
        match &self.key {
            KeyMaterial::Es256(key) => Ok(URL_SAFE_NO_PAD.encode(key.to_bytes())),
            KeyMaterial::Rs256(key) => {
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| JwsError::InvalidPrivateKey("RS256"))?;
                Ok(URL_SAFE_NO_PAD.encode(der.as_bytes()))
            }
            KeyMaterial::EdDsa(key) => Ok(key.private_key_text()),
        }
    }

    /// Load a key stored by [`Self::private_key_text`].
    pub fn from_private_key_text(
        kid: String,
        algorithm: JwsAlgorithm,
        text: &str,
    ) -> Result<Self, JwsError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| JwsError::InvalidPrivateKey(algorithm.name()))?;
        let key = match algorithm {
            JwsAlgorithm::Es256 => KeyMaterial::Es256(
                SigningKey::from_slice(&bytes).map_err(|_| JwsError::InvalidPrivateKey("ES256"))?,
            ),
            JwsAlgorithm::Rs256 => KeyMaterial::Rs256(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(&bytes)
                    .map_err(|_| JwsError::InvalidPrivateKey("RS256"))?,
            )),
            JwsAlgorithm::EdDsa => KeyMaterial::EdDsa(Box::new(
                Ed25519SigningKey::from_private_key_text(text)
                    .map_err(|_| JwsError::InvalidPrivateKey("EdDSA"))?,
            )),
        };
        Ok(Self {
            kid,
            algorithm,
            key,
        })
    }

    /// The Ed25519 key, when this is an EdDSA key: it signs `v1a` webhook signatures.
    pub fn ed25519(&self) -> Option<&Ed25519SigningKey> {
        match &self.key {
            KeyMaterial::EdDsa(key) => Some(key),
            KeyMaterial::Es256(_) | KeyMaterial::Rs256(_) => None,
        }
    }

    /// The public key as a JWK: RFC 7518 §6.2.1 (kty EC, crv P-256, x, y), §6.3.1 (kty RSA, n, e)
    /// or RFC 8037 §2 (kty OKP, crv Ed25519, x).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.key {
            KeyMaterial::Es256(key) => {
                let point = VerifyingKey::from(key).to_encoded_point(false);
                let coordinate = |bytes: Option<&p256::FieldBytes>| {
                    bytes
                        .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
                        .unwrap_or_default()
                };
                json!({"kty": "EC", "crv": "P-256", "x": coordinate(point.x()), "y": coordinate(point.y())})
            }
            KeyMaterial::Rs256(key) => json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            }),
            // RFC 8037 §2: an Ed25519 public key is kty "OKP", crv "Ed25519" and x, the base64url
            // of the public key's bytes; the JWK MUST NOT carry the private "d" here.
            KeyMaterial::EdDsa(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.public_key().as_bytes()),
            }),
        };
        if let Some(object) = jwk.as_object_mut() {
            object.insert("kid".to_owned(), self.kid.clone().into());
            object.insert("alg".to_owned(), self.algorithm.name().into());
            object.insert("use".to_owned(), "sig".into());
        }
        jwk
    }

    /// Sign a SET's claims as a JWS compact serialization.
    pub fn sign_set(&self, claims: &Value) -> String {
        // RFC 8417 §2.3: explicit typing, typ "secevent+jwt", so a SET cannot be mistaken for
        // another kind of JWT (an ID token) by a receiver that checks typ.
        let header = json!({"alg": self.algorithm.name(), "typ": "secevent+jwt", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.key {
            KeyMaterial::Es256(key) => {
                // RFC 7518 §3.4: the ES256 signature is R || S, 32 bytes each, not DER.
                let signature: Signature = key.sign(signing_input.as_bytes());
                signature.to_bytes().to_vec()
            }
            KeyMaterial::Rs256(key) => {
                // RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with SHA-256.
                let signer =
                    rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.as_ref().clone());
                let signature: rsa::pkcs1v15::Signature = signer.sign(signing_input.as_bytes());
                rsa::signature::SignatureEncoding::to_vec(&signature)
            }
            // RFC 8037 §3.1: the JWS signature is the 64-byte Ed25519 signature of the input.
            KeyMaterial::EdDsa(key) => key.sign_bytes(signing_input.as_bytes()).to_vec(),
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Verify an ES256 compact JWS against a JWK Set and return its claims, for Herald's own checks;
/// receivers and Herald's tests verify (ES256 and RS256) with an independent JOSE implementation.
pub fn verify_compact(token: &str, jwks: &Value) -> Result<Value, JwsError> {
    let mut parts = token.split('.');
    let (Some(header_text), Some(claims_text), Some(signature_text), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("a compact JWS has three parts"));
    };
    let decode = |text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| JwsError::Malformed("not base64url"))
    };
    let header: Value = serde_json::from_slice(&decode(header_text)?)
        .map_err(|_| JwsError::Malformed("header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(JwsError::Malformed("unsupported alg"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let jwk = jwks
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| {
            keys.iter()
                .find(|key| key.get("kid").and_then(Value::as_str) == Some(kid))
        })
        .ok_or_else(|| JwsError::UnknownKey(kid.to_owned()))?;
    let coordinate = |name: &str| -> Result<Vec<u8>, JwsError> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(JwsError::Malformed("JWK lacks a coordinate"))?;
        decode(text)
    };
    let mut sec1 = vec![0x04];
    sec1.extend(coordinate("x")?);
    sec1.extend(coordinate("y")?);
    let verifying_key = VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| JwsError::Malformed("JWK is not a P-256 point"))?;
    let signature =
        Signature::from_slice(&decode(signature_text)?).map_err(|_| JwsError::BadSignature)?;
    let signing_input = format!("{header_text}.{claims_text}");
    verifying_key
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    serde_json::from_slice(&decode(claims_text)?)
        .map_err(|_| JwsError::Malformed("claims are not JSON"))
}

/// A JWK Set of public keys.
pub fn jwk_set<'a>(keys: impl IntoIterator<Item = &'a TenantSigningKey>) -> Value {
    json!({"keys": keys.into_iter().map(TenantSigningKey::public_jwk).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::{JwsAlgorithm, JwsError, TenantSigningKey, jwk_set, verify_compact};

    #[test]
    fn a_signed_set_verifies_with_the_published_jwks_and_survives_a_reload() {
        let key = TenantSigningKey::generate("key_1".into(), JwsAlgorithm::Es256).expect("key");
        let text = key.private_key_text().expect("text");
        let reloaded =
            TenantSigningKey::from_private_key_text("key_1".into(), JwsAlgorithm::Es256, &text)
                .expect("reload");
        let claims = json!({"iss": "https://i", "jti": "1", "iat": 1, "events": {}});
        let token = reloaded.sign_set(&claims);
        assert_eq!(verify_compact(&token, &jwk_set([&key])), Ok(claims.clone()));

        let other = TenantSigningKey::generate("key_1".into(), JwsAlgorithm::Es256).expect("key");
        assert_eq!(
            verify_compact(&token, &jwk_set([&other])),
            Err(JwsError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(verify_compact(&tampered, &jwk_set([&key])).is_err());
        assert!(!format!("{key:?}").contains(&text));
    }

    #[test]
    fn an_independent_jose_implementation_verifies_es256_rs256_and_eddsa_sets() {
        for (algorithm, jose_algorithm) in [
            (JwsAlgorithm::Es256, jsonwebtoken::Algorithm::ES256),
            (JwsAlgorithm::Rs256, jsonwebtoken::Algorithm::RS256),
            (JwsAlgorithm::EdDsa, jsonwebtoken::Algorithm::EdDSA),
        ] {
            let generated = TenantSigningKey::generate("key_2".into(), algorithm).expect("key");
            // Signed by a key reloaded from its stored form, checked against the original's JWK.
            let key = TenantSigningKey::from_private_key_text(
                "key_2".into(),
                algorithm,
                &generated.private_key_text().expect("text"),
            )
            .expect("reload");
            let claims = json!({"iss": "https://i", "aud": "https://rp", "jti": "1", "iat": 1, "events": {}});
            let token = key.sign_set(&claims);
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(generated.public_jwk()).expect("jwk");
            let decoding_key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
            let mut validation = jsonwebtoken::Validation::new(jose_algorithm);
            validation.set_audience(&["https://rp"]);
            validation.set_required_spec_claims(&["iss", "aud"]);
            let decoded =
                jsonwebtoken::decode::<serde_json::Value>(&token, &decoding_key, &validation)
                    .expect("verifies");
            assert_eq!(decoded.claims, claims, "{algorithm:?}");
            assert_eq!(decoded.header.typ.as_deref(), Some("secevent+jwt"));
            assert_eq!(decoded.header.kid.as_deref(), Some("key_2"));
            assert_eq!(decoded.header.alg, jose_algorithm);
        }
    }

    #[test]
    fn an_eddsa_key_is_published_as_an_rfc_8037_okp_jwk_with_its_whpk_bytes() {
        let key = TenantSigningKey::generate("key_3".into(), JwsAlgorithm::EdDsa).expect("key");
        let jwk = key.public_jwk();
        let members: Vec<&str> = jwk
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(members, ["kty", "crv", "x", "kid", "alg", "use"]);
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert_eq!(jwk["alg"], "EdDSA");
        let ed25519 = key.ed25519().expect("an Ed25519 key");
        assert_eq!(
            jwk["x"].as_str(),
            Some(
                URL_SAFE_NO_PAD
                    .encode(ed25519.public_key().as_bytes())
                    .as_str()
            )
        );
        let text = key.private_key_text().expect("text");
        assert!(!jwk.to_string().contains(&text), "no private part");
        let reloaded =
            TenantSigningKey::from_private_key_text("key_3".into(), JwsAlgorithm::EdDsa, &text)
                .expect("reload");
        assert_eq!(reloaded.public_jwk(), jwk);
        assert!(JwsAlgorithm::EdDsa.signs_webhooks() && !JwsAlgorithm::Es256.signs_webhooks());
        assert!(
            TenantSigningKey::generate("key_4".into(), JwsAlgorithm::Es256)
                .expect("key")
                .ed25519()
                .is_none()
        );
    }
}
