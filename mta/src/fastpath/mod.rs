//! The SIP fast path in the daemon (DESIGN.md "Fast path"; seed 004, fourth embodiment):
//! recipients routed to a number get SMTP straight to the destination's final server over a
//! TCP stream that a SIP session negotiated, and calls for our own numbers are answered with
//! our SMTP server on the stream.
//!
//! - [`streams`]: the one listener every fast-path stream arrives on, matched by FP/1 token;
//! - [`send`]: the sending side, used by the relay queue for `Fast` recipients; any failure
//!   before the final `250` is reported so the queue can fall back to relay;
//! - [`locate`]: where a number's INVITE goes (proxy, ENUM, static map);
//! - [`probe`]: OPTIONS before the first INVITE to a number, to learn its protocols;
//! - [`sessions`]: open sessions per number, reused for the next message until idle;
//! - [`inline`]: the SMTP session's own attempt, whose verdict becomes its DATA reply;
//! - [`receive`]: the receiving side.

pub mod inline;
pub mod locate;
pub mod probe;
pub mod receive;
pub mod send;
pub mod sessions;
pub mod streams;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{Context, Result};
use sipfast::ua::{Incoming, Registration, SipAgent, SipConfig, Transport};
use sipmta_store::Store;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::config::{Config, SipTransport};
use crate::relay::hop::Connectors;
use crate::relay::resolve::{Resolver, ResolverSettings};
use streams::Streams;

/// What both sides of the fast path share.
#[derive(Debug)]
pub struct FastPath {
    /// The SIP user agent.
    pub agent: SipAgent,
    /// The stream listener's registry.
    pub streams: Streams,
    /// The configuration.
    pub config: Arc<Config>,
    /// The store (protocol table).
    pub store: Store,
    /// The address written in our SDP `c=` lines.
    pub advertise: IpAddr,
    /// STARTTLS over the stream (encryption only: peers' certificates are rarely public).
    pub connectors: Connectors,
    /// Open sessions per number, for reuse.
    pub sessions: sessions::Sessions,
    /// Messages an SMTP session is delivering inline.
    pub inline: inline::Leases,
    /// DNS for ENUM and SIP hosts (the relay's name servers).
    pub resolver: Resolver,
    /// `fastpath.static_map` with its numbers in E.164.
    pub static_map: HashMap<String, String>,
}

/// Everything `start` opened that the server runs.
#[derive(Debug)]
pub struct Started {
    /// The shared fast-path state.
    pub fast: Arc<FastPath>,
    /// Calls for our numbers.
    pub incoming: mpsc::Receiver<Incoming>,
    /// The stream listener.
    pub listener: TcpListener,
}

/// Register our numbers and open the stream listener, when the fast path is enabled.
pub async fn start(config: &Arc<Config>, store: &Store) -> Result<Option<Started>> {
    let fp = &config.fastpath;
    if !fp.enabled {
        return Ok(None);
    }
    let plan = store.number_plan(&config.routing.country_code).context("reading the number plan")?;
    let mut numbers = Vec::new();
    for n in &fp.numbers {
        let e164 = plan.normalise(&n.number).with_context(|| format!("fastpath.numbers: {}", n.number))?;
        let password = match (&n.password, &n.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        numbers.push(Registration { user: e164.0, password, expires: n.expires.0 });
    }
    let mut sip = SipConfig::new(fp.sip_listen, fp.domain.clone());
    sip.transport = match fp.transport {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
    };
    sip.proxy = Some(fp.proxy);
    sip.numbers = numbers;
    // Our answer to OPTIONS describes what receive.rs accepts (RFC 3261 §11.2).
    sip.protocols = fp.protocols.clone();
    sip.user_agent = format!("sipmta/{}", env!("CARGO_PKG_VERSION"));
    let registered: Vec<String> = sip.numbers.iter().map(|n| n.user.clone()).collect();
    let (agent, incoming) = SipAgent::start(sip).await.context("starting the SIP user agent")?;
    info!(addr = %agent.local_addr(), numbers = ?registered, proxy = %fp.proxy, "sip user agent on {}", agent.local_addr());
    let (streams, listener) =
        Streams::bind(fp.stream_listen).await.with_context(|| format!("binding fastpath.stream_listen {}", fp.stream_listen))?;
    let local = streams.local_addr();
    info!(addr = %local, "fast-path stream listener on {local}");
    let advertise = fp.advertise.unwrap_or(if local.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { local.ip() });
    let connectors = Connectors::new().map_err(|e| anyhow::anyhow!("setting up fast-path TLS: {e}"))?;
    let sessions = sessions::Sessions::new(fp.max_sessions_per_number, fp.session_idle.0);
    let mut static_map = HashMap::new();
    for (number, uri) in &fp.static_map {
        let e164 = plan.normalise(number).with_context(|| format!("fastpath.static_map: {number}"))?;
        static_map.insert(e164.0, uri.clone());
    }
    let r = &config.relay;
    let resolver =
        Resolver::new(&ResolverSettings { nameservers: r.nameservers.clone(), timeout: r.dns_timeout.0, attempts: 2, mx_port: 25 })
            .context("setting up DNS for the fast path")?;
    let fast = Arc::new(FastPath {
        agent,
        streams,
        config: config.clone(),
        store: store.clone(),
        advertise,
        connectors,
        sessions,
        inline: inline::Leases::default(),
        resolver,
        static_map,
    });
    Ok(Some(Started { fast, incoming, listener }))
}
