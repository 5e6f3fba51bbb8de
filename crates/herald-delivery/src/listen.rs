//! The `listen` transport: deliveries handed to a `herald listen` stream held open by a
//! developer's CLI instead of sent over a new HTTP connection.
//!
//! A listen endpoint is an ordinary endpoint row whose URL is `listen:<endpoint id>` (see
//! [`LISTEN_URL_SCHEME`]); its transport is read from that URL, so retries, ordering, attempts and
//! metrics treat it like any endpoint. The [`ListenHub`] is node-local: it knows which streams
//! are connected to this node, hands each delivery to its stream, and waits for the CLI to report
//! the local answer. A delivery for a stream that is not connected here fails at once as a
//! transport error and is retried by the endpoint's schedule, so nothing is lost across a
//! reconnect or a restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::http_client::{EXCERPT_LIMIT, OutboundError, OutboundResult};

/// The URL scheme that marks a listen endpoint: `listen:ep_...`. The API's URL check accepts only
/// `http` and `https`, so no tenant can create or patch an endpoint into this transport; only the
/// listen route makes such rows.
pub const LISTEN_URL_SCHEME: &str = "listen:";

/// The URL stored for the listen endpoint `endpoint_id`.
pub fn listen_url(endpoint_id: &str) -> String {
    format!("{LISTEN_URL_SCHEME}{endpoint_id}")
}

/// Whether an endpoint URL names the listen transport.
pub fn is_listen_url(url: &str) -> bool {
    url.starts_with(LISTEN_URL_SCHEME)
}

/// One delivery as the stream carries it: what the HTTP transport would have sent.
#[derive(Debug, Clone)]
pub struct ListenDelivery {
    pub delivery_id: String,
    pub event_type: String,
    pub attempt_number: u32,
    /// Every header Herald would send: the endpoint's own, then the signatures.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the CLI reports about one forwarded delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAnswer {
    /// The local receiver's status, or `None` when it could not be reached.
    pub status: Option<u16>,
    pub latency: Duration,
    pub response_excerpt: String,
    /// Why no status came back (connection refused, timed out locally).
    pub error: Option<String>,
}

/// Why a reported answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenReportError {
    /// No stream of this tenant with this session is connected here, or the delivery is not
    /// waiting for an answer (answered already, or its wait ran out).
    #[error("no delivery {0:?} is waiting for an answer on this session")]
    NotWaiting(String),
}

#[derive(Debug)]
struct ConnectedStream {
    tenant_id: String,
    connection_id: u64,
    deliveries: mpsc::UnboundedSender<ListenDelivery>,
    waiting: HashMap<String, oneshot::Sender<ListenAnswer>>,
}

/// The listen streams connected to this node, by session (the listen endpoint's id).
#[derive(Debug, Default)]
pub struct ListenHub {
    streams: Mutex<HashMap<String, ConnectedStream>>,
    next_connection_id: AtomicU64,
    /// Set at shutdown: every stream is ended and no new one is taken, so the HTTP server's
    /// graceful shutdown is not held up by streams that would otherwise never end.
    closed: AtomicBool,
}

/// A stream's handle on the hub: its deliveries arrive on `deliveries`.
#[derive(Debug)]
pub struct ListenConnection {
    pub session_id: String,
    pub connection_id: u64,
    pub deliveries: mpsc::UnboundedReceiver<ListenDelivery>,
}

impl ListenHub {
    pub fn new() -> Self {
        ListenHub::default()
    }

    /// Takes a new stream for `session_id`; an older stream of the same session (a reconnect the
    /// node has not noticed the end of yet) is ended, and its deliveries waiting for answers fail
    /// and are retried. `None` once the hub is closed.
    pub fn connect(&self, tenant_id: &str, session_id: &str) -> Option<ListenConnection> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let connection_id = self.next_connection_id.fetch_add(1, Ordering::SeqCst);
        let (sender, deliveries) = mpsc::unbounded_channel();
        let mut streams = self.streams.lock().ok()?;
        streams.insert(
            session_id.to_owned(),
            ConnectedStream {
                tenant_id: tenant_id.to_owned(),
                connection_id,
                deliveries: sender,
                waiting: HashMap::new(),
            },
        );
        Some(ListenConnection {
            session_id: session_id.to_owned(),
            connection_id,
            deliveries,
        })
    }

    /// Forgets the stream, unless a newer connection of its session replaced it already.
    pub fn disconnect(&self, session_id: &str, connection_id: u64) {
        if let Ok(mut streams) = self.streams.lock()
            && streams
                .get(session_id)
                .is_some_and(|stream| stream.connection_id == connection_id)
        {
            streams.remove(session_id);
        }
    }

    /// Whether a stream of the session is connected to this node.
    pub fn is_connected(&self, session_id: &str) -> bool {
        self.streams
            .lock()
            .map(|streams| streams.contains_key(session_id))
            .unwrap_or(false)
    }

    /// Ends every stream and refuses new ones (server shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut streams) = self.streams.lock() {
            streams.clear();
        }
    }

    /// Hands the delivery to the session's stream and waits at most `timeout` for the CLI's
    /// answer. No stream here, a stream that ends meanwhile, or no answer in time is a transport
    /// failure, which the dispatcher retries like any other.
    pub async fn deliver(
        &self,
        session_id: &str,
        delivery: ListenDelivery,
        timeout: Duration,
    ) -> OutboundResult {
        let started = tokio::time::Instant::now();
        let delivery_id = delivery.delivery_id.clone();
        let (answer_sender, answer) = oneshot::channel();
        let handed_over = self.streams.lock().ok().and_then(|mut streams| {
            let stream = streams.get_mut(session_id)?;
            stream.deliveries.send(delivery).ok()?;
            stream.waiting.insert(delivery_id.clone(), answer_sender);
            Some(())
        });
        if handed_over.is_none() {
            return OutboundResult::Failed {
                error: OutboundError::Connect(
                    "no `herald listen` stream of this endpoint is connected to this node"
                        .to_owned(),
                ),
                latency: started.elapsed(),
            };
        }
        let outcome = tokio::time::timeout(timeout, answer).await;
        // A late answer must find nothing to complete.
        if let Ok(mut streams) = self.streams.lock()
            && let Some(stream) = streams.get_mut(session_id)
        {
            stream.waiting.remove(&delivery_id);
        }
        match outcome {
            Err(_) => OutboundResult::Failed {
                error: OutboundError::Timeout,
                latency: started.elapsed(),
            },
            Ok(Err(_)) => OutboundResult::Failed {
                error: OutboundError::Connect(
                    "the `herald listen` stream ended before it answered".to_owned(),
                ),
                latency: started.elapsed(),
            },
            Ok(Ok(answer)) => answer_result(answer),
        }
    }

    /// Completes the wait of `delivery_id` with the CLI's answer.
    pub fn report(
        &self,
        tenant_id: &str,
        session_id: &str,
        delivery_id: &str,
        answer: ListenAnswer,
    ) -> Result<(), ListenReportError> {
        let not_waiting = || ListenReportError::NotWaiting(delivery_id.to_owned());
        let waiter = self
            .streams
            .lock()
            .ok()
            .and_then(|mut streams| {
                let stream = streams.get_mut(session_id)?;
                if stream.tenant_id != tenant_id {
                    return None;
                }
                stream.waiting.remove(delivery_id)
            })
            .ok_or_else(not_waiting)?;
        waiter.send(answer).map_err(|_| not_waiting())
    }
}

/// The CLI's answer as the HTTP transport would have reported it; the latency is the local one
/// the CLI measured, which is what a developer wants to see on the attempt.
fn answer_result(answer: ListenAnswer) -> OutboundResult {
    let mut excerpt = answer.response_excerpt;
    if excerpt.len() > EXCERPT_LIMIT {
        let mut end = EXCERPT_LIMIT;
        while !excerpt.is_char_boundary(end) {
            end -= 1;
        }
        excerpt.truncate(end);
    }
    match answer.status {
        Some(status) => OutboundResult::Responded {
            status,
            retry_after: None,
            location: None,
            body_excerpt: excerpt,
            latency: answer.latency,
        },
        None => OutboundResult::Failed {
            error: OutboundError::Other(format!(
                "the local receiver: {}",
                answer.error.unwrap_or_else(|| "no answer".to_owned())
            )),
            latency: answer.latency,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(delivery_id: &str) -> ListenDelivery {
        ListenDelivery {
            delivery_id: delivery_id.to_owned(),
            event_type: "user.created".to_owned(),
            attempt_number: 1,
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn a_delivery_waits_for_the_answer_of_its_own_tenant_stream() {
        let hub = std::sync::Arc::new(ListenHub::new());
        let mut connection = hub.connect("acme", "ep_1").expect("open");
        let delivering = {
            let hub = std::sync::Arc::clone(&hub);
            tokio::spawn(async move {
                hub.deliver("ep_1", delivery("dl_1"), Duration::from_secs(10))
                    .await
            })
        };
        let handed = connection.deliveries.recv().await.expect("delivery");
        assert_eq!(handed.delivery_id, "dl_1");
        let answer = ListenAnswer {
            status: Some(204),
            latency: Duration::from_millis(7),
            response_excerpt: "ok".to_owned(),
            error: None,
        };
        assert!(hub.report("other", "ep_1", "dl_1", answer.clone()).is_err());
        hub.report("acme", "ep_1", "dl_1", answer.clone())
            .expect("taken");
        match delivering.await.expect("joined") {
            OutboundResult::Responded {
                status, latency, ..
            } => {
                assert_eq!(status, 204);
                assert_eq!(latency, Duration::from_millis(7));
            }
            other => panic!("{other:?}"),
        }
        assert!(hub.report("acme", "ep_1", "dl_1", answer).is_err());
    }

    #[tokio::test]
    async fn no_stream_or_no_answer_is_a_transport_failure() {
        let hub = ListenHub::new();
        let result = hub
            .deliver("ep_1", delivery("dl_1"), Duration::from_secs(10))
            .await;
        assert!(matches!(
            result,
            OutboundResult::Failed {
                error: OutboundError::Connect(_),
                ..
            }
        ));
        let _connection = hub.connect("acme", "ep_1").expect("open");
        let result = hub
            .deliver("ep_1", delivery("dl_2"), Duration::from_millis(20))
            .await;
        assert!(matches!(
            result,
            OutboundResult::Failed {
                error: OutboundError::Timeout,
                ..
            }
        ));
        hub.close();
        assert!(!hub.is_connected("ep_1"));
        assert!(hub.connect("acme", "ep_1").is_none());
    }
}
