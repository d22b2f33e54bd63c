//! Relay: the queue manager and outbound SMTP delivery for mail that leaves by hop-by-hop relay.

pub mod outbound;
pub mod resolve;
