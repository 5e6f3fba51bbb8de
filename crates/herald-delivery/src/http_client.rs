//! The one outbound HTTP client: every webhook delivery and blocking-hook call goes through it.
//!
//! It wraps a single shared `reqwest::Client`, so connections to an endpoint are pooled and kept
//! alive across deliveries, and it enforces the SSRF guard where it cannot be fooled: a custom
//! resolver judges every address a hostname resolves to, just before connecting, and drops the
//! refused ones (a name that passed at endpoint creation and later points at `127.0.0.1` is
//! refused then). reqwest does not ask the resolver about IP-literal URLs, so [`HttpClient::send`]
//! judges those itself before sending.
//!
//! Redirects are never followed (a redirect is the endpoint's answer, and following it would
//! reach an address nobody checked), proxies from the environment are ignored, and the answer is
//! reduced to what the delivery bookkeeping needs: the status, `Retry-After`, `Location`, and an
//! excerpt of at most [`EXCERPT_LIMIT`] bytes of the body, read without buffering the rest.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::time::Instant;

use crate::ssrf::{NetworkPolicy, UrlRefused};

/// How many bytes of a response body are kept for the attempt log.
pub const EXCERPT_LIMIT: usize = 4096;

/// The TCP (and TLS) connect budget. The request's own timeout still bounds the whole exchange;
/// this only stops one unreachable address from eating all of it when a name has several.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections are kept this long. Endpoints that receive a steady stream of deliveries
/// keep their connection; most servers close idle ones after 60 to 120 seconds anyway.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per host: generous, because one busy endpoint with high
/// `max_concurrency` would otherwise reconnect (and redo TLS) on every burst.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// Errors that stop the client from being built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// One outbound call: always a POST.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub url: String,
    /// Sent in order; `content-type: application/json` is added unless one is given.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Bounds the whole exchange: connecting, sending, and reading the body excerpt.
    pub timeout: Duration,
}

/// What came of an [`OutboundRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundResult {
    /// The endpoint answered with a status, whatever it was (redirects included).
    Responded {
        status: u16,
        retry_after: Option<String>,
        location: Option<String>,
        /// The first [`EXCERPT_LIMIT`] bytes of the body, as lossy UTF-8. If the body stalls or
        /// breaks after the status arrived, whatever was read by then.
        body_excerpt: String,
        /// From the call to `send` until the excerpt was read.
        latency: Duration,
    },
    /// No status came back.
    Failed {
        error: OutboundError,
        latency: Duration,
    },
}

impl OutboundResult {
    pub fn latency(&self) -> Duration {
        match self {
            OutboundResult::Responded { latency, .. } | OutboundResult::Failed { latency, .. } => {
                *latency
            }
        }
    }
}

/// Why no status came back. Messages never contain the URL (its query may hold a token) nor
/// header values (they hold signatures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The SSRF guard refused the URL or every address its host resolved to.
    #[error("refused: {0}")]
    Refused(UrlRefused),
    /// The request's timeout expired before the status arrived.
    #[error("timed out")]
    Timeout,
    /// No connection could be made (DNS failure, connection refused, TLS handshake failure).
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// The outbound HTTP client. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
}

impl HttpClient {
    pub fn new(policy: NetworkPolicy) -> Result<Self, ClientError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver {
                policy: Arc::clone(&policy),
            })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
            .tls_backend_preconfigured(tls_config()?)
            .build()
            .map_err(ClientError::Build)?;
        Ok(HttpClient { client, policy })
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// POSTs the request and reports the answer or the failure; never returns early with an
    /// error, because every outcome is something the caller records.
    pub async fn send(&self, request: OutboundRequest) -> OutboundResult {
        self.send_reading(request, EXCERPT_LIMIT).await
    }

    /// [`HttpClient::send`], keeping up to `body_limit` bytes of the answer instead of the
    /// excerpt: for callers that act on the body (blocking hooks), not just record it.
    pub async fn send_reading(
        &self,
        request: OutboundRequest,
        body_limit: usize,
    ) -> OutboundResult {
        let started = Instant::now();
        // `Duration::MAX` cannot be added to an instant; a year stands in for "no limit".
        let deadline = started
            .checked_add(request.timeout)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 60 * 60));
        match self.exchange(request, deadline, body_limit).await {
            Ok(answer) => OutboundResult::Responded {
                status: answer.status,
                retry_after: answer.retry_after,
                location: answer.location,
                body_excerpt: answer.body_excerpt,
                latency: started.elapsed(),
            },
            Err(error) => OutboundResult::Failed {
                error,
                latency: started.elapsed(),
            },
        }
    }

    async fn exchange(
        &self,
        request: OutboundRequest,
        deadline: Instant,
        body_limit: usize,
    ) -> Result<Answer, OutboundError> {
        // IP literals never reach the resolver, so they are judged here; names are judged by
        // the resolver on the addresses they resolve to.
        let url = self
            .policy
            .check_url_except_names(&request.url)
            .map_err(OutboundError::Refused)?;
        let headers = header_map(request.headers)?;
        let sending = self
            .client
            .post(url)
            .headers(headers)
            .body(request.body)
            .send();
        let mut response = match tokio::time::timeout_at(deadline, sending).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(classify(error)),
            Err(_elapsed) => return Err(OutboundError::Timeout),
        };
        let status = response.status().as_u16();
        let retry_after = header_text(response.headers(), &RETRY_AFTER);
        let location = header_text(response.headers(), &LOCATION);
        let body_excerpt = read_excerpt(&mut response, deadline, body_limit).await;
        Ok(Answer {
            status,
            retry_after,
            location,
            body_excerpt,
        })
    }
}

/// The parts of a response that outlive it.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    location: Option<String>,
    body_excerpt: String,
}

/// TLS with rustls and the ring provider. reqwest's `rustls-no-provider` feature leaves the
/// provider to us; passing a finished `ClientConfig` avoids installing a process-wide default.
/// Certificates are checked against the system's roots (so a corporate CA installed on the host
/// is trusted) plus the bundled Mozilla roots (so a container without a CA bundle still works).
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned(),
        Arc::clone(&provider),
    )?;
    // `dangerous()` is only the door to a custom verifier; the platform verifier does full
    // WebPKI chain and hostname verification.
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest only sets ALPN on configurations it builds itself; without it every https
    // endpoint would be spoken to in HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows, so
/// the connection is made to a checked address and nothing else (this is what stops DNS
/// rebinding: there is no second lookup between the check and the connect).
#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

type ResolveError = Box<dyn StdError + Send + Sync>;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) on the addresses we return.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut first_refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|address| match policy.check_ip(address.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        tracing::debug!(%host, %refused, "dropped a resolved address");
                        first_refused.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let error: ResolveError = match first_refused {
                    Some(first) => Box::new(UrlRefused::AllAddressesRefused { host, first }),
                    None => format!("{host} resolved to no address").into(),
                };
                return Err(error);
            }
            Ok::<Addrs, ResolveError>(Box::new(allowed.into_iter()))
        })
    }
}

fn header_map(headers: Vec<(String, String)>) -> Result<HeaderMap, OutboundError> {
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| OutboundError::Other(format!("invalid header name {name:?}")))?;
        // The value is never echoed: it may be a signature or a token.
        let value = HeaderValue::from_str(&value)
            .map_err(|_| OutboundError::Other(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    if !map.contains_key(CONTENT_TYPE) {
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(map)
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Reads the body until `limit` bytes are in hand, the body ends, or the deadline
/// passes, holding at most one chunk beyond the limit: a huge or endless body costs nothing.
/// The rest is never read; dropping the response closes that connection instead of returning
/// it to the pool, which is the right trade for an endpoint that talks too much.
async fn read_excerpt(response: &mut reqwest::Response, deadline: Instant, limit: usize) -> String {
    let mut excerpt = Vec::with_capacity(limit.min(64 * 1024));
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = limit - excerpt.len();
                if chunk.len() >= room {
                    excerpt.extend_from_slice(&chunk[..room]);
                    break;
                }
                excerpt.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            // The status already arrived and decides the outcome; a body that breaks or stalls
            // afterwards only shortens the excerpt.
            Ok(Err(error)) => {
                tracing::debug!(error = %error.without_url(), "response body broke off");
                break;
            }
            Err(_elapsed) => {
                tracing::debug!("response body still coming at the deadline");
                break;
            }
        }
    }
    lossy_excerpt(&excerpt, limit)
}

/// A cut in the middle of a multi-byte character is ours, not the body's, so a full excerpt
/// drops that partial character instead of ending in a replacement mark.
fn lossy_excerpt(bytes: &[u8], limit: usize) -> String {
    let full = bytes.len() >= limit;
    let bytes = match std::str::from_utf8(bytes) {
        Err(error) if full && error.error_len().is_none() => &bytes[..error.valid_up_to()],
        _ => bytes,
    };
    String::from_utf8_lossy(bytes).into_owned()
}

fn classify(error: reqwest::Error) -> OutboundError {
    // The resolver's refusal comes back wrapped several layers deep (hyper's connect error,
    // reqwest's DNS error); find it so a refusal is reported as one, not as a connect failure.
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<UrlRefused>() {
            return OutboundError::Refused(refused.clone());
        }
        source = current.source();
    }
    if error.is_timeout() {
        return OutboundError::Timeout;
    }
    let is_connect = error.is_connect();
    // reqwest puts the URL in its message; the URL's query may hold a token.
    let message = describe_chain(&error.without_url());
    if is_connect {
        OutboundError::Connect(message)
    } else {
        OutboundError::Other(message)
    }
}

/// The error and its causes in one line ("error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)"), skipping repeats.
fn describe_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(current) = source {
        let text = current.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = current.source();
    }
    parts.join(": ")
}
