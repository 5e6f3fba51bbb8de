//! One module per `herald` subcommand.

pub mod catalog;
pub mod serve;
pub mod validate;
