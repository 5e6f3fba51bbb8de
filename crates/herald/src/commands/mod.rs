//! One module per `herald` subcommand.

pub mod bench;
pub mod bench_callgrind;
pub mod catalog;
pub mod client;
pub mod endpoints;
pub mod hooks;
pub mod keys;
pub mod listen;
pub mod migrate;
pub mod receive;
pub mod serve;
pub mod sources;
pub mod ssf;
pub mod validate;
pub mod verify;
