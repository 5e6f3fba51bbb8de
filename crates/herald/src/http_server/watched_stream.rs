//! The socket as hyper sees it: the first byte of a request starts the head's timer, and a head
//! carrying a control character is answered here, in problem+json, instead of by hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use herald_api::error::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{ConnectionState, Phase};

/// The socket, seen by hyper through this wrapper: the first byte of a request moves the
/// connection from idle to reading a head, and a head carrying a control character is answered
/// here with a problem (hyper would answer a bare 400 with an empty body).
#[derive(Debug)]
pub(super) struct WatchedStream {
    stream: TcpStream,
    states: Arc<watch::Sender<ConnectionState>>,
    head: HeadScan,
    /// hyper has written bytes it has not yet flushed; only between answers, with nothing of
    /// hyper's pending, may this wrapper write an answer of its own.
    has_unflushed_writes: bool,
    refusal: Option<Refusal>,
}

impl WatchedStream {
    pub(super) fn new(stream: TcpStream, states: Arc<watch::Sender<ConnectionState>>) -> Self {
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
