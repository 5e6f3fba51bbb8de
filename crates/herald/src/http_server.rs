//! Herald's HTTP/1.1 accept loop: hyper connections under a cap, each watched for slow and idle
//! clients, with request heads screened for control characters so that even those are answered
//! in problem+json, and a graceful shutdown that lets requests in progress finish.
//!
//! Why not `axum::serve`: it has no connection cap and no timeouts, so a client that sends a
//! header line every few seconds, or nothing at all, holds a connection (and a file descriptor)
//! for as long as it likes. hyper's own `header_read_timeout` is not enough either: its timer
//! starts when hyper begins waiting for a head, which includes the idle time of a kept-alive
//! connection (hyper 1.x `proto/h1/conn.rs`, `poll_read_head`), so it cannot tell a slow head
//! from a quiet keep-alive connection. Each connection here keeps its own [`Phase`] instead:
//!
//! - waiting for a head: from connecting (first request) or from the first byte of the request,
//!   the whole head must arrive within the header read timeout;
//! - idle between requests: the next request must start within the keep-alive timeout;
//! - busy: a request is being handled; reading its body is bounded where the body is read
//!   (`herald_api::body`, which answers 408), and the handlers bound their own work.
//!
//! When a phase's deadline passes, the connection is closed.

mod watched_stream;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use herald_api::body::BodyReadTimeout;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ConnectionSettings;
use watched_stream::WatchedStream;

/// How long the loop pauses after an accept error that is not about one connection (out of file
/// descriptors, say): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets every
/// request in progress finish, closes idle connections, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // Timing is this module's (see the module doc); hyper's timer would close kept-alive
    // connections after the header read timeout.
    builder.header_read_timeout(None).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // At the cap, stop accepting: the kernel's backlog holds new connections until a slot
        // frees, rather than Herald taking them and holding them unanswered.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::error!(%error, "accepting a connection failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            settings,
            builder.clone(),
            graceful.watcher(),
            slot,
        ));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern one connection (it was reset before it was accepted), not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until the client or hyper ends it, or a phase outlasts its timeout.
/// `_slot` is the connection's place under the cap, freed when this returns.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    settings: ConnectionSettings,
    builder: http1::Builder,
    watcher: Watcher,
    _slot: OwnedSemaphorePermit,
) {
    let (states, state_changes) = watch::channel(ConnectionState::new(Instant::now()));
    let states = Arc::new(states);
    let stream = WatchedStream::new(stream, Arc::clone(&states));
    let handler = RequestHandler {
        router,
        states,
        body_read_timeout: settings.body_read_timeout,
    };
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), handler));
    tokio::select! {
        served = connection => {
            if let Err(error) = served {
                tracing::debug!(%error, "a connection ended with an error");
            }
        }
        phase = expiry(state_changes, settings) => {
            // Dropping the connection closes the socket.
            tracing::debug!(?phase, "closed a connection that outlasted its timeout");
        }
    }
}

/// Where a connection is in its request cycle, which decides how long it may stay there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing of the next request has arrived since `since`. For a new connection (`is_first`)
    /// that counts as reading the head, from the moment it connected.
    Idle { since: Instant, is_first: bool },
    /// Part of a head has arrived; the whole of it must have arrived within the header read
    /// timeout of `since`.
    ReadingHead { since: Instant },
    /// A request is being handled or answered.
    Busy,
}

/// A connection's phase, with how many requests were started and answered: an answer can be
/// finished (its body dropped) after the next request started, and only the last one makes the
/// connection idle.
#[derive(Debug, Clone, Copy)]
struct ConnectionState {
    phase: Phase,
    n_started: u64,
    n_answered: u64,
}

impl ConnectionState {
    fn new(connected_at: Instant) -> Self {
        ConnectionState {
            phase: Phase::Idle {
                since: connected_at,
                is_first: true,
            },
            n_started: 0,
            n_answered: 0,
        }
    }

    fn deadline(&self, settings: &ConnectionSettings) -> Option<Instant> {
        match self.phase {
            Phase::Idle {
                since,
                is_first: true,
            }
            | Phase::ReadingHead { since } => Some(since + settings.header_read_timeout),
            Phase::Idle {
                since,
                is_first: false,
            } => Some(since + settings.keep_alive_timeout),
            Phase::Busy => None,
        }
    }

    fn is_reading_a_head(&self) -> bool {
        !matches!(self.phase, Phase::Busy)
    }
}

/// Completes when the connection has stayed in one phase past that phase's deadline; returns
/// that phase. Never completes while the connection keeps moving (or once it has ended).
async fn expiry(
    mut state_changes: watch::Receiver<ConnectionState>,
    settings: ConnectionSettings,
) -> Phase {
    let timer = tokio::time::sleep(settings.header_read_timeout);
    tokio::pin!(timer);
    loop {
        let state = *state_changes.borrow_and_update();
        let Some(deadline) = state.deadline(&settings) else {
            if state_changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        };
        timer.as_mut().reset(deadline);
        tokio::select! {
            () = timer.as_mut() => {
                if !state_changes.has_changed().unwrap_or(false) {
                    return state.phase;
                }
            }
            changed = state_changes.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The router as a hyper service for one connection: marks the connection busy while a request
/// is handled and answered, and tells the body reader its time limit.
#[derive(Debug, Clone)]
struct RequestHandler {
    router: Router,
    states: Arc<watch::Sender<ConnectionState>>,
    body_read_timeout: Duration,
}

type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Response<WatchedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for RequestHandler {
    type Response = Response<WatchedBody>;
    type Error = Infallible;
    type Future = HandlerFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.states.send_modify(|state| {
            state.n_started += 1;
            state.phase = Phase::Busy;
        });
        let answered = AnswerGuard(Arc::clone(&self.states));
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(BodyReadTimeout(self.body_read_timeout));
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| WatchedBody {
                body,
                _answered: answered,
            }))
        })
    }
}

/// Marks a request answered when dropped: hyper drops a response body once it has written all
/// of it, and the handler's future (with this guard) if the connection ends first.
#[derive(Debug)]
struct AnswerGuard(Arc<watch::Sender<ConnectionState>>);

impl Drop for AnswerGuard {
    fn drop(&mut self) {
        self.0.send_modify(|state| {
            state.n_answered += 1;
            if state.n_answered >= state.n_started {
                state.phase = Phase::Idle {
                    since: Instant::now(),
                    is_first: false,
                };
            }
        });
    }
}

/// A response body that marks its request answered when hyper is done with it.
#[derive(Debug)]
struct WatchedBody {
    body: Body,
    _answered: AnswerGuard,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
