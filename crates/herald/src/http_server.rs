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

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use herald_api::body::BodyReadTimeout;
use herald_api::error::ApiError;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ConnectionSettings;

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

/// The socket, seen by hyper through this wrapper: the first byte of a request moves the
/// connection from idle to reading a head, and a head carrying a control character is answered
/// here with a problem (hyper would answer a bare 400 with an empty body).
#[derive(Debug)]
struct WatchedStream {
    stream: TcpStream,
    states: Arc<watch::Sender<ConnectionState>>,
    head: HeadScan,
    /// hyper has written bytes it has not yet flushed; only between answers, with nothing of
    /// hyper's pending, may this wrapper write an answer of its own.
    has_unflushed_writes: bool,
    refusal: Option<Refusal>,
}

impl WatchedStream {
    fn new(stream: TcpStream, states: Arc<watch::Sender<ConnectionState>>) -> Self {
        WatchedStream {
            stream,
            states,
            head: HeadScan::default(),
            has_unflushed_writes: false,
            refusal: None,
        }
    }

    /// Looks at bytes just read while a head is expected; returns the control character found
    /// in the head, if any.
    fn screen(&mut self, received: &[u8]) -> Option<u8> {
        let mut control = None;
        self.states.send_if_modified(|state| {
            if !state.is_reading_a_head() {
                // Body bytes: the handler reads and judges those.
                return false;
            }
            if self.head.request_idx != state.n_started {
                self.head = HeadScan {
                    request_idx: state.n_started,
                    ..HeadScan::default()
                };
            }
            control = self.head.scan(received);
            match state.phase {
                Phase::Idle { since, is_first } => {
                    state.phase = Phase::ReadingHead {
                        // A new connection's head is timed from connecting.
                        since: if is_first { since } else { Instant::now() },
                    };
                    true
                }
                _ => false,
            }
        });
        control
    }

    /// Writes the refusal, shuts the write side, then reads and discards what the client still
    /// sends until it closes (closing with unread input would reset the connection and could
    /// destroy the answer before the client reads it); the phase's deadline bounds the wait.
    /// Returns end of file to hyper when done.
    fn poll_refuse(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(refusal) = self.refusal.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while refusal.n_written < refusal.answer.len() {
            let n_written = ready!(
                Pin::new(&mut self.stream)
                    .poll_write(context, &refusal.answer[refusal.n_written..])
            )?;
            if n_written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            refusal.n_written += n_written;
        }
        if !refusal.is_shut_down {
            ready!(Pin::new(&mut self.stream).poll_shutdown(context))?;
            refusal.is_shut_down = true;
        }
        let mut discarded = [0_u8; 4096];
        loop {
            let mut discard = ReadBuf::new(&mut discarded);
            ready!(Pin::new(&mut self.stream).poll_read(context, &mut discard))?;
            if discard.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// The answer this wrapper is writing in place of hyper's, and how far it got.
#[derive(Debug)]
struct Refusal {
    answer: Vec<u8>,
    n_written: usize,
    is_shut_down: bool,
}

impl Refusal {
    fn for_control_character(byte: u8) -> Self {
        let problem = ApiError::BadRequest(format!(
            "the request head contains the control character 0x{byte:02x}; CR, LF and NUL are \
             refused in header fields (RFC 9110 §5.5), and so are the other control characters \
             except tab"
        ));
        let (status, document) = problem.problem_document();
        let mut answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n",
            document.len(),
            http_date(),
        )
        .into_bytes();
        answer.extend_from_slice(&document);
        Refusal {
            answer,
            n_written: 0,
            is_shut_down: false,
        }
    }
}

/// Now as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7); an origin server with a clock sends one
/// with every 4xx answer (§6.6.1).
fn http_date() -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_default()
}

/// What the screening has seen of the current request's head.
#[derive(Debug, Default)]
struct HeadScan {
    /// The request (by count of requests started on the connection) this head belongs to.
    request_idx: u64,
    /// Bytes on the current line, not counting CR.
    n_line_bytes: usize,
    /// A non-empty line has been seen (empty lines before the request line are allowed).
    has_content: bool,
    /// The empty line ending the head has been seen: what follows is body.
    is_complete: bool,
}

impl HeadScan {
    /// Scans `received`, a continuation of the head; returns the first forbidden control
    /// character. RFC 9110 §5.5: "a recipient of CR, LF, or NUL within a field value MUST either
    /// reject the message or replace each of those characters with SP"; Herald rejects. CR and
    /// LF inside a value cannot be seen here (they end the line, and hyper refuses a bare CR);
    /// NUL and the other control characters but tab can, in the request line too, where hyper
    /// refuses them as well. Refusing here changes only the answer's form, not what is refused.
    fn scan(&mut self, received: &[u8]) -> Option<u8> {
        for &byte in received {
            if self.is_complete {
                return None;
            }
            match byte {
                b'\n' => {
                    if self.n_line_bytes == 0 && self.has_content {
                        self.is_complete = true;
                    }
                    self.n_line_bytes = 0;
                }
                b'\r' => {}
                _ => {
                    if is_forbidden_control(byte) {
                        return Some(byte);
                    }
                    self.n_line_bytes += 1;
                    self.has_content = true;
                }
            }
        }
        None
    }
}

fn is_forbidden_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return this.poll_refuse(context);
        }
        let n_before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(context, buf))?;
        if buf.filled().len() == n_before {
            return Poll::Ready(Ok(()));
        }
        let Some(control) = this.screen(&buf.filled()[n_before..]) else {
            return Poll::Ready(Ok(()));
        };
        if this.has_unflushed_writes {
            // Part of an earlier answer is still in hyper's buffer (pipelined requests); an
            // answer written now would land inside it. hyper refuses the head too, in its form.
            return Poll::Ready(Ok(()));
        }
        tracing::debug!(control, "refused a request head with a control character");
        // hyper never sees the offending bytes.
        buf.set_filled(n_before);
        this.refusal = Some(Refusal::for_control_character(control));
        this.poll_refuse(context)
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.has_unflushed_writes = true;
        Pin::new(&mut this.stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.has_unflushed_writes = true;
        Pin::new(&mut this.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_flush(context))?;
        // hyper flushes the socket only after handing it all of its buffer.
        this.has_unflushed_writes = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `chunks` in order as one head; the control character found, if any.
    fn check(chunks: &[&[u8]], expected: Option<u8>) {
        let mut scan = HeadScan::default();
        let found = chunks.iter().find_map(|chunk| scan.scan(chunk));
        assert_eq!(found, expected, "{chunks:?}");
    }

    #[test]
    fn heads_are_screened_for_control_characters_up_to_their_end() {
        check(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"], None);
        check(&[b"GET / HTTP/1.1\r\nX-A: a\tb\r\n\r\n"], None);
        check(&[b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n"], Some(0));
        check(&[b"GET /\x01 HTTP/1.1\r\n\r\n"], Some(1));
        check(&[b"GET / HTTP/1.1\r\nX-A: \x7f\r\n\r\n"], Some(0x7f));
        // Split anywhere, even inside the blank line that ends the head.
        check(&[b"GET / HTTP/1.1\r\nX-A: a", b"\x00\r\n\r\n"], Some(0));
        check(&[b"GET / HTTP/1.1\r\n\r", b"\n\x00\x01 body"], None);
        // Empty lines before the request line do not end the head.
        check(&[b"\r\n\r\nGET / HTTP/1.1\r\nX-A: \x00\r\n\r\n"], Some(0));
        // What follows the head is body, and the handler judges it.
        check(
            &[b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n\x00\x00"],
            None,
        );
        check(&[b"GET / HTTP/1.1\nX-A: b\n\n\x00"], None);
    }
}
