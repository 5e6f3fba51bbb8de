//! Herald's OpenID Shared Signals core: what an SSF transmitter says and how it signs it, with no I/O.
//!
//! - [`events`]: the CAEP 1.0, RISC 1.0 and SSF 1.0 event type URIs.
//! - [`subject`]: RFC 9493 subject identifiers, parsed at the edge into a type that cannot hold an
//!   invalid one, and the matching rule a stream uses to decide whether an event is for it.
//! - [`mapping`]: the table from Herald's catalog types (Asgardeo, OneWelcome, Authgear) to SSF events,
//!   and how each event's members and subject are built from the payload.
//! - [`set`]: Security Event Token claims (RFC 8417), one event per SET.
//! - [`jws`]: JWS compact signing (ES256) over a key Herald generates, and the public JWK/JWKS.
//! - [`stream`]: a stream's stored settings, and which SET one logged event becomes on a stream.
//!
//! Architecture invariant: this crate knows nothing of HTTP, storage or time sources; callers pass
//! the clock reading and the randomness source's output (ids) in, so every function is a pure
//! function of its arguments (key generation is the one exception and takes the RNG explicitly).

#![forbid(unsafe_code)]

pub mod events;
pub mod jws;
pub mod mapping;
pub mod set;
pub mod stream;
pub mod subject;
