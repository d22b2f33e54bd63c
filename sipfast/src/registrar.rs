//! The built-in SIP registrar and proxy that `sipmta serve` runs (127.0.0.1:5060 by default),
//! so that two sipmta sites find each other on one machine with no other software. It stands
//! in for Kamailio with the reference configuration (`tests/kamailio/kamailio-test.cfg`:
//! registrar + usrloc + stateful proxy, E.164 normalisation, optional digest auth) and
//! behaves like it towards user agents:
//!
//! - UDP and TCP on one address; CRLFCRLF keep-alives on TCP answered with CRLF (RFC 5626
//!   §4.4.1);
//! - REGISTER (RFC 3261 §10.3) with digest authentication (MD5, `qop=auth`) against
//!   [`RegistrarConfig::users`], or open registration when that list is empty; lifetimes
//!   within [`RegistrarConfig::min_expires`] and [`RegistrarConfig::max_expires`]; bindings
//!   kept behind the [`Locations`] trait ([`MemoryLocations`] here, the daemon's store there);
//! - a transaction-stateful proxy (RFC 3261 §16) for everything else: INVITE and the other
//!   requests to a registered number (OPTIONS too: a capability query reaches the number's
//!   agent, RFC 3261 §11) go to its contact, INVITE (and SUBSCRIBE) with our Record-Route; in-dialog
//!   requests follow their Route set through us, CANCEL follows its INVITE, `404` for unknown
//!   numbers, `480` for configured ones that are not registered, OPTIONS to the registrar
//!   itself answered `200`.
//!
//! Numbers are normalised with [`normalize_number`]: `050-1234-5678`, `05012345678` and
//! `+815012345678` are one address of record. Calls to registered users are allowed from
//! anyone, as in the reference configuration.
//!
//! Shape (STYLE.md): `core` is sans-IO (bytes and source in, transmissions out, time passed
//! in) and carries the protocol; `shell` is the tokio part (sockets, connections, the timer);
//! `register` and `proxy` hold the handlers; `message`, `digest`, `framing` and `number` are
//! the small pure pieces. No rsip type appears in this public API.
//!
//! Not provided: forking to several contacts (the most recent binding wins, like usrloc's
//! lookup), DNS (targets must be IP addresses), TLS, strict routing, and authentication of
//! anything but REGISTER.

mod core;
mod digest;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod locations;
mod message;
mod number;
mod proxy;
mod register;
mod shell;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::platform::CancellationToken;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tracing::info;

pub use locations::{Binding, Locations, LocationsError, MemoryLocations};
pub use number::normalize_number;

/// A user allowed to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarUser {
    /// The number, e.g. `+815012345678` (national forms are normalised); also the digest
    /// user name.
    pub number: String,
    /// Digest password; `None` registers this number without a challenge.
    pub password: Option<String>,
}

impl RegistrarUser {
    /// A user with a password.
    pub fn new(number: impl Into<String>, password: impl Into<String>) -> Self {
        RegistrarUser { number: number.into(), password: Some(password.into()) }
    }

    /// A user registered without authentication.
    pub fn without_auth(number: impl Into<String>) -> Self {
        RegistrarUser { number: number.into(), password: None }
    }
}

/// Configuration of the registrar/proxy. [`RegistrarConfig::new`] holds the defaults.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Address of the UDP socket and the TCP listener, also advertised in Via and
    /// Record-Route, so it must be a specific address (not 0.0.0.0). Port 0 picks a free port
    /// (the same for both); read it back with [`RegistrarHandle::local_addr`].
    pub listen: SocketAddr,
    /// The SIP domain served (`sip.example`): digest realm, and a name for this proxy.
    pub domain: String,
    /// Who may register. Empty: anyone, without authentication (the reference config without
    /// `WITH_AUTH`).
    pub users: Vec<RegistrarUser>,
    /// Country code used to turn national numbers into E.164, digits only (`81`).
    pub country_code: String,
    /// Shortest lifetime granted; shorter requests get `423` (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longest lifetime granted; longer requests are lowered to it.
    pub max_expires: u32,
    /// Lifetime when the REGISTER names none.
    pub default_expires: u32,
    /// How long a digest nonce is good for; older ones are re-challenged with `stale=true`.
    pub nonce_lifetime: Duration,
    /// How long a forwarded INVITE may ring without a final answer before the proxy cancels
    /// it and answers `408` (RFC 3261 §16.6 step 11, Timer C).
    pub invite_timeout: Duration,
    /// `Server` header of the registrar's own responses.
    pub server: String,
}

impl RegistrarConfig {
    /// The defaults (as the reference config): open registration, country code 81, lifetimes
    /// 60 s to 3600 s with 600 s by default, nonces good for 300 s, 60 s of ringing.
    pub fn new(listen: SocketAddr, domain: impl Into<String>) -> Self {
        RegistrarConfig {
            listen,
            domain: domain.into(),
            users: Vec::new(),
            country_code: "81".to_string(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            nonce_lifetime: Duration::from_secs(300),
            invite_timeout: Duration::from_secs(60),
            server: concat!("sipmta-registrar/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Every problem with this configuration, all at once.
    pub fn validate(&self) -> Result<(), RegistrarError> {
        let mut problems = Vec::new();
        if self.listen.ip().is_unspecified() {
            problems.push(format!("listen address {} is unspecified; it is advertised in Via and Record-Route", self.listen));
        }
        if self.domain.trim().is_empty() {
            problems.push("domain is empty".to_string());
        }
        if self.country_code.is_empty() || !self.country_code.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!("country code {:?} is not digits", self.country_code));
        }
        if self.min_expires > self.max_expires {
            problems.push(format!("min_expires {} is above max_expires {}", self.min_expires, self.max_expires));
        }
        if !(self.min_expires..=self.max_expires).contains(&self.default_expires) {
            problems.push(format!("default_expires {} is outside {}..={}", self.default_expires, self.min_expires, self.max_expires));
        }
        let mut seen = HashMap::new();
        for user in &self.users {
            let number = normalize_number(&user.number, &self.country_code);
            if number.is_empty() {
                problems.push("a user has an empty number".to_string());
            } else if seen.insert(number.clone(), ()).is_some() {
                problems.push(format!("user {number} is configured twice"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(RegistrarError::Config(problems)) }
    }
}

/// Why the registrar did not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistrarError {
    /// The configuration is unusable; every problem found is listed.
    #[error("invalid registrar configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The UDP socket or the TCP listener could not be bound.
    #[error("cannot bind SIP registrar on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The system's random source failed (needed for nonces).
    #[error("no randomness for digest nonces")]
    Random,
}

/// How long [`RegistrarHandle::shutdown`] waits for forwarded requests to be answered.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Starts registrars; see the module docs.
#[derive(Debug)]
pub struct Registrar;

impl Registrar {
    /// Validates `config`, binds UDP and TCP on [`RegistrarConfig::listen`], and serves until
    /// [`RegistrarHandle::shutdown`] (or the handle is dropped).
    pub async fn start(config: RegistrarConfig, locations: Arc<dyn Locations>) -> Result<RegistrarHandle, RegistrarError> {
        config.validate()?;
        let (udp, tcp) = bind(config.listen).await?;
        let local = udp.local_addr().map_err(|source| RegistrarError::Bind { addr: config.listen, source })?;
        let users = config.users.iter().map(|u| (normalize_number(&u.number, &config.country_code), u.password.clone())).collect();
        let settings = core::Settings {
            local,
            domain: config.domain.clone(),
            users,
            country_code: config.country_code.clone(),
            min_expires: config.min_expires,
            max_expires: config.max_expires,
            default_expires: config.default_expires,
            invite_timeout: config.invite_timeout,
            server: config.server.clone(),
        };
        let nonces = digest::Nonces::new(config.nonce_lifetime).map_err(|_| RegistrarError::Random)?;
        let core = core::Core::new(settings, locations, nonces);
        // Connections of registered user agents stay open between their 30 s pings; close
        // one only when it has been silent for longer than any binding lives.
        let idle = Duration::from_secs(u64::from(config.max_expires) + 60);
        let (drain, cancel) = (CancellationToken::new(), CancellationToken::new());
        info!(%local, "sip registrar listener on UDP and TCP");
        let task = tokio::spawn(shell::run(core, udp, tcp, idle, drain.clone(), cancel.clone()));
        info!(%local, domain = %config.domain, users = config.users.len(), "sip registrar ready");
        Ok(RegistrarHandle { local, drain, cancel, task: Some(task) })
    }
}

/// A running registrar. Dropping it stops the registrar too.
#[derive(Debug)]
pub struct RegistrarHandle {
    local: SocketAddr,
    drain: CancellationToken,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RegistrarHandle {
    /// The bound address (UDP and TCP share its port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops serving, draining first: new registrations and calls are answered `503`, while
    /// requests already forwarded get their answers routed back, for at most `drain` (then
    /// what is still open is abandoned: user agents retransmit or time out, RFC 3261 §17).
    /// Then the sockets close.
    pub async fn shutdown_within(mut self, drain: Duration) {
        self.drain.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(drain, &mut task).await.is_err()
        {
            info!(local = %self.local, "sip registrar drain timed out");
            self.cancel.cancel();
            task.await.ok();
        }
        self.cancel.cancel();
        info!(local = %self.local, "sip registrar stopped");
    }

    /// [`RegistrarHandle::shutdown_within`] 5 seconds.
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_DRAIN).await;
    }
}

impl Drop for RegistrarHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Binds the UDP socket and the TCP listener on one port; with port 0, retries until a port
/// is free for both.
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), RegistrarError> {
    let error = |source| RegistrarError::Bind { addr, source };
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await.map_err(error)?;
        let port = udp.local_addr().map_err(error)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() != 0 => return Err(error(e)),
            Err(_) => continue,
        }
    }
    Err(error(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no port free for both UDP and TCP")))
}
