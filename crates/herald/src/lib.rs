//! The `herald` binary's library half: configuration, server wiring and the command-line client,
//! kept in a library so integration tests can start a real server in-process.

pub mod admin_key;
pub mod config;
pub mod http_server;
pub mod server;

/// Makes ring the process's TLS provider, for the HTTP clients of the CLI (the delivery client
/// brings its own). Safe to call more than once.
pub fn install_tls_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
