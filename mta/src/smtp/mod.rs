//! Inbound SMTP (RFC 5321 and the ESMTP extensions of DESIGN.md "Message flow").
//!
//! - [`data`], [`reply`]: sans-IO pieces (the DATA decoder, reply values);
//! - [`conn`]: the byte layer (buffering, timeouts, pipelining flushes);
//! - [`session`]: the session state machine and the connection driver (STARTTLS, implicit TLS);
//! - one module per verb with non-trivial handling: [`ehlo`], [`mail`], [`rcpt`], [`message`]
//!   (DATA and spooling), [`auth`]; the small verbs live in [`misc`].

pub mod auth;
pub mod conn;
pub mod data;
pub mod ehlo;
pub mod guard;
pub mod mail;
pub mod message;
pub mod misc;
pub mod rcpt;
pub mod reply;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sipmta_store::{QueueId, Store};
use tokio::sync::{mpsc, watch};

use crate::config::Config;

pub use session::{Outcome, Session, SessionState, serve_connection};

/// Which listener a session came in on; it decides AUTH and relay rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MX-facing SMTP (port 25): no AUTH, local domains only unless trusted.
    Smtp,
    /// Message submission (RFC 6409, port 587): AUTH required.
    Submission,
    /// Submission over implicit TLS (RFC 8314, port 465).
    Submissions,
    /// A fast-path stream (DESIGN.md "Receiver (UAS)"): like `Smtp`, but it never relays,
    /// whoever the peer is.
    FastPath,
}

impl Kind {
    /// The listener's name in config and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Smtp => "smtp",
            Kind::Submission => "submission",
            Kind::Submissions => "submissions",
            Kind::FastPath => "fastpath",
        }
    }

    /// Submission listeners offer AUTH and require it before MAIL.
    pub fn is_submission(self) -> bool {
        matches!(self, Kind::Submission | Kind::Submissions)
    }
}

/// What every session shares.
pub struct Ctx {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The spool.
    pub store: Store,
    /// STARTTLS and implicit TLS; `None` turns STARTTLS off.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Told the id of every message accepted, for delivery.
    pub accepted: mpsc::UnboundedSender<QueueId>,
    /// Becomes `true` when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Routing tables, for the route decision at reception.
    pub routing: Arc<crate::routing::Routing>,
    /// The delivery side, for inline fast-path attempts (`None`: always answer "queued").
    pub relay: Option<Arc<crate::relay::attempt::RelayCtx>>,
    /// Failed AUTH attempts per client address.
    pub auth_guard: Arc<guard::AuthGuard>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("hostname", &self.config.hostname).field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

/// Loopback clients may use AUTH without TLS: nothing crosses a network.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Whether a client is in `trusted_networks`.
pub fn is_trusted(config: &Config, peer: SocketAddr) -> bool {
    config.trusted_networks.iter().any(|net| net.contains(peer.ip()))
}

#[cfg(test)]
mod tests;
