//! The SIP user agent of the fast path: the only place that knows the SIP stack.
//!
//! Everything outside this module talks to SIP through [`SipAgent`], [`Call`] and [`Incoming`]:
//! plain Rust types, the SDP of calls as opaque strings, errors as [`SipError`], [`CallError`]
//! and [`ProbeError`]. The one SDP the agent writes and reads itself is the capability
//! description of OPTIONS ([`crate::sdp::capability`]). No rsipstack type crosses this boundary, so the stack (rsipstack `=0.7.14` today) can be
//! swapped by rewriting the `ua/` submodules alone.
//!
//! What the agent does (RFC 3261 section numbers in the submodules):
//!
//! - binds one UDP socket and one TCP listener on the same address ([`SipConfig::bind`]) and
//!   sends its own requests over [`SipConfig::transport`] to the outbound proxy, if any
//!   (RFC 3261 §8.1.2), with the Request-URI in [`SipConfig::domain`];
//! - REGISTERs each of [`SipConfig::numbers`] (digest authentication, RFC 3261 §22.2 / RFC 2617,
//!   when a password is set), refreshes each binding at half the lifetime the registrar granted
//!   (§10.2.4), and removes the bindings with `Expires: 0` on [`SipAgent::shutdown`] (§10.2.2);
//! - places calls ([`SipAgent::call`]): INVITE `sip:<number>@<domain>;user=phone` with the SDP
//!   offer; 1xx are followed, a 2xx is ACKed and its answer returned, 3xx-6xx become
//!   [`CallError::Rejected`], and when the answer budget runs out a CANCEL is sent (§9.1) and
//!   [`CallError::Timeout`] returned;
//! - receives calls: INVITEs whose Request-URI user is one of our numbers are handed out on the
//!   [`Incoming`] channel; INVITEs for anything else are answered `404` by the agent itself;
//! - answers OPTIONS as an INVITE would be answered (§11.2): `404` for a number not ours, else
//!   `200` describing [`SipConfig::protocols`] in SDP (`m=application 0 TCP smtp http`), and
//!   asks another number the same ([`SipAgent::probe`]) before a first call to it;
//! - ends calls with BYE from either side (§15) and, on TCP towards the proxy, keeps the flow
//!   open with RFC 5626 §4.4.1 double-CRLF pings every [`SipConfig::keepalive`].
//!
//! Logging: one `info` line per call (number, outcome, elapsed time); every SIP message sent or
//! received at `trace` under the `sipfast::ua::wire` target. rsipstack itself logs raw messages
//! at `info`; a daemon should filter it down (`rsipstack=warn`).

mod call;
mod incoming;
mod invite;
mod keepalive;
mod options;
mod register;
mod stack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use call::Call;
pub use incoming::Incoming;

/// Transport for the requests the agent sends. The agent always listens on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// SIP over UDP (RFC 3261 §18.1.1); retransmissions are the stack's.
    #[default]
    Udp,
    /// SIP over TCP; the flow to the proxy is kept open with CRLF keep-alives.
    Tcp,
}

/// One of our own numbers, REGISTERed with the registrar at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The user part of the address of record, e.g. `+815012345678`; also the digest user name.
    pub user: String,
    /// Digest password (RFC 2617 MD5); `None` when the registrar does not challenge.
    pub password: Option<String>,
    /// Lifetime asked for in `Expires`; the binding is refreshed at half of what is granted.
    pub expires: Duration,
}

impl Registration {
    /// A registration for `user` with no password and a 600 s lifetime.
    pub fn new(user: impl Into<String>) -> Self {
        Self { user: user.into(), password: None, expires: Duration::from_secs(600) }
    }
}

/// Configuration of a [`SipAgent`].
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Local address for both the UDP socket and the TCP listener. Port 0 picks a free port
    /// (the same one for both); read it back with [`SipAgent::local_addr`].
    pub bind: SocketAddr,
    /// Transport of the requests we send (REGISTER, INVITE, CANCEL, BYE).
    pub transport: Transport,
    /// Outbound proxy every request is sent to (the registrar/proxy, e.g. Kamailio). Without
    /// one, requests go to the host in the Request-URI, i.e. [`SipConfig::domain`].
    pub proxy: Option<SocketAddr>,
    /// SIP domain of our addresses of record and of the numbers we call, e.g. `sip.example`.
    pub domain: String,
    /// Our own numbers, REGISTERed at start. The first one is also the caller (`From`) of the
    /// calls we place, and its password answers challenges to our INVITEs.
    pub numbers: Vec<Registration>,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// Interval of the RFC 5626 §4.4.1 CRLF keep-alive on the TCP flow to the proxy;
    /// `Duration::ZERO` disables it. Only used with [`Transport::Tcp`] and a proxy.
    pub keepalive: Duration,
    /// The fast-path protocols we accept, in preference order, described in our `200` to
    /// OPTIONS (`m=application 0 TCP smtp http`, RFC 3261 §11.2). Empty: OPTIONS are answered
    /// without SDP.
    pub protocols: Vec<String>,
}

impl SipConfig {
    /// A configuration with the defaults: UDP, no proxy, no numbers, 30 s keep-alive, no
    /// protocols described.
    pub fn new(bind: SocketAddr, domain: impl Into<String>) -> Self {
        Self {
            bind,
            transport: Transport::Udp,
            proxy: None,
            domain: domain.into(),
            numbers: Vec::new(),
            user_agent: concat!("sipmta/", env!("CARGO_PKG_VERSION")).to_string(),
            keepalive: Duration::from_secs(30),
            protocols: Vec::new(),
        }
    }
}

/// Errors of the agent itself (start, registration, an established call).
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// The UDP socket or the TCP listener could not be bound.
    #[error("cannot bind SIP listeners on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The registrar refused to REGISTER one of our numbers (e.g. `403`, or `401` after the
    /// challenge was answered: a wrong password).
    #[error("REGISTER of {number} refused: {code} {reason}")]
    Register {
        /// The number.
        number: String,
        /// The final status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A request could not be sent or got no answer (network, timeout).
    #[error("SIP transport error: {0}")]
    Transport(String),
    /// The peer or the stack did something the agent cannot go on with.
    #[error("SIP protocol error: {0}")]
    Protocol(String),
}

/// Why [`SipAgent::call`] did not return an established call. Every variant is a reason to
/// fall back to relay; the text is meant for the message's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// A final 3xx-6xx answer (RFC 3261 §21), e.g. 404, 480, 486, 488, or 401/407 when our
    /// credentials were refused.
    #[error("call rejected: {code} {reason}")]
    Rejected {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// No final answer within the budget; a CANCEL was sent (RFC 3261 §9.1).
    #[error("no answer within the budget (CANCEL sent)")]
    Timeout,
    /// The INVITE could not be sent or its transaction failed.
    #[error("SIP transport error: {0}")]
    Transport(String),
    /// Anything else the stack reported.
    #[error("SIP protocol error: {0}")]
    Protocol(String),
}

impl CallError {
    /// The SIP status code of a rejection, if this is one.
    pub fn code(&self) -> Option<u16> {
        match self {
            CallError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Why [`SipAgent::probe`] learned nothing about a number's protocols. None of these says that
/// the number takes no calls: many user agents do not answer OPTIONS, or answer it without SDP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// A final 3xx-6xx answer (RFC 3261 §21): 404 or 480 as an INVITE would get (§11.2), 405 or
    /// 501 from a peer that does not do OPTIONS, 401/407 when our credentials were refused.
    #[error("OPTIONS rejected: {code} {reason}")]
    Rejected {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// No final answer within the budget (a non-INVITE request is not cancelled, §9.1).
    #[error("no answer to OPTIONS within the budget")]
    Timeout,
    /// A 2xx without an SDP body: the peer does not say which protocols it accepts.
    #[error("the answer to OPTIONS has no SDP")]
    NoDescription,
    /// A 2xx whose SDP cannot be read.
    #[error("unreadable SDP in the answer to OPTIONS: {0}")]
    BadDescription(String),
    /// The OPTIONS could not be sent or its transaction failed.
    #[error("SIP transport error: {0}")]
    Transport(String),
    /// Anything else the stack reported.
    #[error("SIP protocol error: {0}")]
    Protocol(String),
}

impl ProbeError {
    /// The SIP status code of a rejection, if this is one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ProbeError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A running SIP user agent. Cheap to clone: clones share one agent.
#[derive(Clone, Debug)]
pub struct SipAgent {
    inner: Arc<stack::Stack>,
}

impl SipAgent {
    /// Binds the listeners, starts the stack, REGISTERs every number once and returns the agent
    /// with the channel of incoming calls for our numbers. Fails if a listener cannot be bound or
    /// a first REGISTER is refused within 3 s (a wrong password or number; the numbers already
    /// registered are removed again). A first REGISTER that fails otherwise (no answer yet,
    /// connection refused, a 5xx) does not stop the start: it is retried with back-off, as are
    /// refreshes.
    pub async fn start(config: SipConfig) -> Result<(SipAgent, mpsc::Receiver<Incoming>), SipError> {
        let (stack, incoming) = stack::Stack::start(config).await?;
        Ok((SipAgent { inner: stack }, incoming))
    }

    /// The bound address (UDP and TCP share its port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Calls `number` (`sip:<number>@<domain>;user=phone`) with `offer_sdp` and waits at most
    /// `budget` for a final answer: see the module docs.
    pub async fn call(&self, number: &str, offer_sdp: &str, budget: Duration) -> Result<Call, CallError> {
        // RFC 3966 style: a telephone number in the user part, marked `user=phone` (RFC 3261 §19.1.1).
        let uri = format!("sip:{number}@{};user=phone", self.inner.shared.config.domain);
        invite::call(&self.inner, number, invite::Target { uri, addr: None }, offer_sdp, budget).await
    }

    /// Calls `number` at a SIP URI found for it elsewhere (ENUM, a static map), sending the
    /// INVITE straight to `addr` rather than through the proxy; otherwise as [`SipAgent::call`].
    /// A `;transport=tcp` URI is called over TCP.
    pub async fn call_uri(&self, number: &str, uri: &str, addr: SocketAddr, offer_sdp: &str, budget: Duration) -> Result<Call, CallError> {
        invite::call(&self.inner, number, invite::Target { uri: uri.to_owned(), addr: Some(addr) }, offer_sdp, budget).await
    }

    /// Asks `number` which fast-path protocols it accepts: OPTIONS
    /// `sip:<number>@<domain>;user=phone` through the proxy, as [`SipAgent::call`] would send
    /// its INVITE, answered within `budget` (RFC 3261 §11). Returns the protocols of the `2xx`'s
    /// SDP in the peer's order, an empty list when that SDP has no `application`/`TCP` line
    /// (the peer takes calls, but none of the fast path). A `2xx` without SDP is
    /// [`ProbeError::NoDescription`], not an empty list: the peer has not said.
    pub async fn probe(&self, number: &str, budget: Duration) -> Result<Vec<String>, ProbeError> {
        let uri = format!("sip:{number}@{};user=phone", self.inner.shared.config.domain);
        options::probe(&self.inner.shared, number, invite::Target { uri, addr: None }, budget).await
    }

    /// [`SipAgent::probe`] at a SIP URI found for `number` elsewhere, sent straight to `addr` as
    /// [`SipAgent::call_uri`] sends its INVITE.
    pub async fn probe_uri(&self, number: &str, uri: &str, addr: SocketAddr, budget: Duration) -> Result<Vec<String>, ProbeError> {
        options::probe(&self.inner.shared, number, invite::Target { uri: uri.to_owned(), addr: Some(addr) }, budget).await
    }

    /// Each of our numbers with the time its registration has left, `None` when it is not
    /// registered (never yet, or its registration lapsed after failed refreshes).
    pub fn registrations(&self) -> Vec<(String, Option<Duration>)> {
        let shared = &self.inner.shared;
        let registered = shared.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        shared
            .config
            .numbers
            .iter()
            .map(|n| (n.user.clone(), registered.get(&n.user).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())))
            .collect()
    }

    /// Un-REGISTERs every number (`Expires: 0`), hangs up the calls still up, and stops the
    /// stack. Clones of this agent stop working too.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}
