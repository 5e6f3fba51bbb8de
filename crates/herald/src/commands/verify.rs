//! `herald verify`: check the signatures of a delivery you received, as a subscriber would: the
//! HMAC ones with the endpoint's secret, the Standard Webhooks `v1a` (Ed25519) ones with the
//! tenant's `whpk_` public keys.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use herald_core::asymmetric::{Ed25519PublicKey, verify_asymmetric};
use herald_core::secret::SigningSecret;
use herald_core::signing::{
    NativeSignature, ReceivedStandardHeaders, verify_native, verify_standard,
};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The endpoint's signing secret (`whsec_...` or a plain vendor secret).
    #[arg(
        long,
        env = "HERALD_SECRET",
        hide_env_values = true,
        required_unless_present = "public_keys"
    )]
    secret: Option<String>,
    /// A `whpk_` public key to trust for `v1a` signatures (repeatable; the endpoint shows them).
    #[arg(long = "public-key", value_name = "whpk_...")]
    public_keys: Vec<String>,
    /// The request's headers, one `Name: value` a line.
    #[arg(long, value_name = "FILE")]
    headers: PathBuf,
    /// The raw request body, exactly as received.
    #[arg(long, value_name = "FILE")]
    body: PathBuf,
    /// How old (or new) `webhook-timestamp` may be, in seconds; 0 skips the check (for old captures).
    #[arg(long, default_value_t = 300)]
    tolerance_s: u64,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let secret = args
        .secret
        .as_deref()
        .map(SigningSecret::parse)
        .transpose()
        .context("the secret is not usable")?;
    let public_keys = args
        .public_keys
        .iter()
        .map(|text| Ed25519PublicKey::parse_whpk(text))
        .collect::<Result<Vec<_>, _>>()
        .context("a --public-key is not usable")?;
    let headers_text = std::fs::read_to_string(&args.headers)
        .with_context(|| format!("failed to read {}", args.headers.display()))?;
    let body = std::fs::read(&args.body)
        .with_context(|| format!("failed to read {}", args.body.display()))?;
    let headers: Vec<(String, String)> = headers_text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut n_checked = 0;
    let mut failures = Vec::new();
    if let (Some(id), Some(timestamp), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) {
        n_checked += 1;
        let received = ReceivedStandardHeaders {
            webhook_id: id,
            webhook_timestamp: timestamp,
            webhook_signature: signature,
        };
        let now = if args.tolerance_s == 0 {
            // Checking at the delivery's own time turns the window check off.
            timestamp
                .parse::<i64>()
                .ok()
                .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
                .unwrap_or_else(time::OffsetDateTime::now_utc)
        } else {
            time::OffsetDateTime::now_utc()
        };
        let tolerance = Duration::from_secs(args.tolerance_s.max(1));
        if let Some(secret) = &secret {
            match verify_standard(&[secret], &received, &body, now, tolerance) {
                Ok(()) => println!("webhook-signature: valid"),
                Err(error) => failures.push(format!("webhook-signature: {error}")),
            }
        }
        if !public_keys.is_empty() {
            match verify_asymmetric(&public_keys, &received, &body, now, tolerance) {
                Ok(()) => println!("webhook-signature v1a: valid"),
                Err(error) => failures.push(format!("webhook-signature v1a: {error}")),
            }
        }
    }
    for kind in [
        NativeSignature::AuthgearBodyHex,
        NativeSignature::HubSignatureSha256,
    ] {
        let Some(name) = kind.header_name() else {
            continue;
        };
        if let (Some(value), Some(secret)) = (header(&name.to_ascii_lowercase()), &secret) {
            n_checked += 1;
            match verify_native(kind, &[secret], value, &body) {
                Ok(()) => println!("{name}: valid"),
                Err(error) => failures.push(format!("{name}: {error}")),
            }
        }
    }
    if n_checked == 0 {
        bail!(
            "no signature headers found (webhook-id/-timestamp/-signature, x-authgear-body-signature, x-hub-signature)"
        );
    }
    for failure in &failures {
        println!("{failure}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
