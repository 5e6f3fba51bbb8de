//! Herald's integration tests, as one test binary with one module per area: one link instead of
//! fourteen, and one place ([`support`]) for the harness they share.
//!
//! The tests run side by side on the threads of this one process. Most are independent (each on
//! its own port, temporary directory or database); the few that stop PostgreSQL or measure a
//! cluster under load take [`support::postgres::alone`], and every test on PostgreSQL holds
//! [`support::postgres::beside_others`] through its [`support::FreshPostgres`], so the server is
//! never stopped under a test that uses it.

mod support;

mod cli;
mod cluster;
mod console;
mod crash;
mod hooks;
mod hostile;
mod hub;
mod listen;
mod quickstart;
mod receiver_faults;
mod security;
mod sources;
mod ssf;
mod v1a;
