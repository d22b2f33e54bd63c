//! Relay: the queue manager and outbound SMTP delivery for mail that leaves by hop-by-hop relay
//! (DESIGN.md "Relay queue and DSN").
//!
//! - [`queue`]: the manager and its due index;
//! - [`attempt`]: one delivery attempt for one message (local, relay, expiry, delay warning);
//! - [`fast`]: fast-path recipients in an attempt, falling back to relay;
//! - [`hop`]: the next hop for a domain (transport map, smarthosts, MX) and connecting to it;
//! - [`pool`]: connection limits and reuse per destination;
//! - [`outbound`]: the SMTP client transaction, shared with the fast path;
//! - [`report`]: queuing DSNs;
//! - [`resolve`]: MX and address resolution;
//! - [`tracking`]: matching DSNs that come back to the messages we relayed.

pub mod attempt;
pub mod fast;
pub mod hop;
pub mod outbound;
pub mod pool;
pub mod queue;
pub mod report;
pub mod resolve;
pub mod tracking;

#[cfg(test)]
mod tests;
