//! The sipmta daemon and admin CLI as a library, so tests can drive sessions and servers
//! in-process. The binary in `main.rs` only parses the command line and calls in here.

pub mod admin;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod dkim;
pub mod dsn;
pub mod fastpath;
pub mod learn;
pub mod logging;
pub mod malloc;
pub mod metrics;
pub mod queue_control;
pub mod registrar;
pub mod relay;
pub mod routing;
pub mod server;
pub mod smtp;
pub mod tables;

#[cfg(test)]
pub(crate) mod testutil;
