//! The outbound seam: how a signed request is built, for deliveries and blocking hooks alike.
//!
//! Both sign the same way (Standard Webhooks headers, plus a vendor's native header when the
//! body is in that vendor's format), so both go through [`signed_request`]; what differs between
//! them (which secrets, which keys, which native header, which timeout) is decided by the caller,
//! the native header by [`crate::native::native_signature`] for deliveries.

use std::time::Duration;

use bytes::Bytes;
use herald_core::asymmetric::Ed25519SigningKey;
use herald_core::secret::SigningSecret;
use herald_core::signing::{NativeSignature, SignatureScheme, SignedHeaders, SigningError};

use crate::http_client::OutboundRequest;

/// Everything one signed request is made of.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    pub url: &'a str,
    /// Headers of the endpoint's own, sent before the signature headers.
    pub extra_headers: &'a [(String, String)],
    pub body: Bytes,
    /// Newest first: all sign `webhook-signature`, the newest alone the native header.
    pub secrets: &'a [&'a SigningSecret],
    /// Newest first; needed only when `scheme` signs `v1a`.
    pub ed25519_keys: &'a [&'a Ed25519SigningKey],
    pub scheme: SignatureScheme,
    pub native: NativeSignature,
    /// `webhook-id`: the event's id.
    pub msg_id: &'a str,
    /// `webhook-timestamp`, in Unix seconds.
    pub timestamp_s: i64,
    pub timeout: Duration,
}

/// The request with its signature headers, or why it cannot be signed (no secret, no Ed25519
/// key for `v1a`, a message id that cannot travel as a header).
pub fn signed_request(outbound: Outbound<'_>) -> Result<OutboundRequest, SigningError> {
    let signed = SignedHeaders::with_scheme(
        outbound.scheme,
        outbound.secrets,
        outbound.ed25519_keys,
        outbound.msg_id,
        outbound.timestamp_s,
        &outbound.body,
        outbound.native,
    )?;
    let mut headers = outbound.extra_headers.to_vec();
    headers.extend(
        signed
            .into_pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    Ok(OutboundRequest {
        url: outbound.url.to_owned(),
        headers,
        body: outbound.body,
        timeout: outbound.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_come_before_the_signatures() {
        let secret = SigningSecret::parse("whsec_AQID").unwrap();
        let extra = [("x-team".to_owned(), "billing".to_owned())];
        let request = signed_request(Outbound {
            url: "https://example.com/hook",
            extra_headers: &extra,
            body: Bytes::from_static(b"{}"),
            secrets: &[&secret],
            ed25519_keys: &[],
            scheme: SignatureScheme::V1,
            native: NativeSignature::AuthgearBodyHex,
            msg_id: "msg_1",
            timestamp_s: 1_700_000_000,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let names: Vec<&str> = request
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "x-team",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-authgear-body-signature"
            ]
        );
        assert_eq!(request.url, "https://example.com/hook");
        assert_eq!(request.timeout, Duration::from_secs(5));
    }

    #[test]
    fn no_secret_is_a_signing_error() {
        let refused = signed_request(Outbound {
            url: "https://example.com/hook",
            extra_headers: &[],
            body: Bytes::new(),
            secrets: &[],
            ed25519_keys: &[],
            scheme: SignatureScheme::V1,
            native: NativeSignature::None,
            msg_id: "msg_1",
            timestamp_s: 0,
            timeout: Duration::from_secs(1),
        });
        assert_eq!(refused.err(), Some(SigningError::NoSecrets));
    }
}
