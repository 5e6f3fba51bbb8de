//! Herald's integration tests, as one test binary with one module per area: one link instead of
//! fourteen, and one place ([`support`]) for the harness they share.
//!
//! The tests run side by side on the threads of this one process. Most are independent (each on
//! its own port, temporary directory or database). Every test on PostgreSQL gets its database
//! from [`support::postgres::FreshPostgres`], which holds a lock until the database is removed:
//! the cluster tests (one of which stops the server, while others measure it under load) make
//! theirs with `create_alone` and so run alone among the tests on PostgreSQL, the others with
//! `create`, side by side.

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
