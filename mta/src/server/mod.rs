//! The daemon's network side: binding listeners, the accept loops with their session limits,
//! and graceful shutdown.

pub mod tls;
