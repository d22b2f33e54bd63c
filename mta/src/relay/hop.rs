//! Where a domain's mail goes next (transport map, smarthosts, MX) and getting a connection
//! to it: hosts in order, each of their addresses, opportunistic TLS falling back to plain.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tracing::{debug, info};

use super::outbound::{Answer, Connection, Failure, OpenOptions, Timeouts, TlsPolicy};
use super::resolve::{ResolveError, Resolver, is_loop};
use crate::config::{Config, Smarthost, Transport};

/// One place to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name (for TLS, logs and `Remote-MTA`).
    pub name: String,
    /// Its addresses, in order.
    pub addrs: Vec<SocketAddr>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// Verify the certificate (smarthosts).
    pub verify: bool,
    /// AUTH user and password.
    pub credentials: Option<(String, String)>,
}

/// The next hop for a domain: targets in the order to try them.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Groups connections, limits and reuse: the MX set, the fixed host, or the smarthosts.
    pub key: String,
    /// In order.
    pub targets: Vec<Target>,
    /// Smarthosts: a 4xx to the transaction moves on to the next one.
    pub smarthost: bool,
}

/// Why there is no hop: the answer every recipient of the domain gets.
pub fn resolve_failure(e: &ResolveError) -> Answer {
    let code = if e.is_transient() { 451 } else { 550 };
    Answer::local(code, e.status(), e.to_string())
}

/// Find the next hop for `domain`.
pub async fn next_hop(config: &Config, resolver: &Resolver, domain: &str) -> Result<Hop, Answer> {
    let relay = &config.relay;
    match relay.transport_for(domain) {
        Transport::Mx => {
            let mut dest = resolver.destination(domain).await.map_err(|e| resolve_failure(&e))?;
            // RFC 5321 §5.1: if we are one of the MX hosts, only hosts more preferred than
            // ourselves may be tried; with none left the mail would loop.
            let own = own_addresses(config);
            let is_us =
                |h: &super::resolve::Host| is_loop(&super::resolve::Destination { hosts: vec![h.clone()], implicit: dest.implicit }, &own);
            if let Some(ours) = dest.hosts.iter().filter(|h| is_us(h)).map(|h| h.preference).min() {
                dest.hosts.retain(|h| h.preference < ours && !is_us(h));
                if dest.hosts.is_empty() {
                    return Err(Answer::local(554, "5.4.6", format!("mail for {domain} loops back to myself (I am its best MX host)")));
                }
            }
            let mut names: Vec<&str> = dest.hosts.iter().map(|h| h.name.as_str()).collect();
            names.sort_unstable();
            let targets = dest
                .hosts
                .iter()
                .map(|h| Target {
                    name: h.name.clone(),
                    addrs: h.addrs.clone(),
                    tls: relay.tls_for(domain),
                    verify: false,
                    credentials: None,
                })
                .collect();
            Ok(Hop { key: format!("mx:{}", names.join(",")), targets, smarthost: false })
        }
        Transport::Host(host, port) => {
            let addrs = lookup(&host, port).await?;
            let target = Target { name: host.clone(), addrs, tls: relay.tls_for(domain), verify: false, credentials: None };
            Ok(Hop { key: format!("host:{host}:{port}"), targets: vec![target], smarthost: false })
        }
        Transport::Smarthost(name) => {
            let mut hosts: Vec<&Smarthost> = relay.smarthosts.iter().filter(|s| name.is_empty() || s.name == name).collect();
            hosts.sort_by_key(|s| s.priority);
            let mut targets = Vec::new();
            let mut last = None;
            for s in hosts {
                match lookup(&s.host, s.port).await {
                    Ok(addrs) => targets.push(Target {
                        name: s.host.clone(),
                        addrs,
                        tls: s.starttls,
                        verify: s.verify_certificate,
                        credentials: credentials(s),
                    }),
                    Err(answer) => last = Some(answer),
                }
            }
            if targets.is_empty() {
                return Err(last.unwrap_or_else(|| Answer::local(451, "4.3.5", "no smarthost configured")));
            }
            let key = if name.is_empty() { "smarthosts".to_owned() } else { format!("smarthost:{name}") };
            Ok(Hop { key, targets, smarthost: true })
        }
    }
}

fn credentials(s: &Smarthost) -> Option<(String, String)> {
    let user = s.username.clone()?;
    let pass = match (&s.password, &s.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => std::fs::read_to_string(file).ok()?.lines().next().unwrap_or_default().to_owned(),
        (None, None) => return None,
    };
    Some((user, pass))
}

/// A fixed host's addresses (A/AAAA through the system resolver; no MX).
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, Answer> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() { Err(Answer::local(451, "4.4.3", format!("{host} has no address"))) } else { Ok(addrs) }
        }
        Err(e) => Err(Answer::local(451, "4.4.3", format!("cannot resolve {host}: {e}"))),
    }
}

/// Our SMTP listeners: an MX pointing at one of them is a loop.
fn own_addresses(config: &Config) -> Vec<SocketAddr> {
    config.smtp.listen.iter().chain(&config.submission.listen).chain(&config.submissions.listen).copied().collect()
}

/// TLS connectors: one that checks certificates against the system roots, one that only
/// encrypts (opportunistic TLS between MTAs, where names rarely match).
#[derive(Clone)]
pub struct Connectors {
    /// Certificates are not checked.
    pub encrypt_only: tokio_rustls::TlsConnector,
    /// Certificates are checked against the platform's roots.
    pub verify: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors").field("verify", &self.verify.is_some()).finish()
    }
}

impl Connectors {
    /// Build both; the verifying one may be missing when the platform has no roots.
    pub fn new() -> Result<Connectors, String> {
        let encrypt_only = mail_send::smtp::tls::build_tls_connector(true)?;
        let verify = mail_send::smtp::tls::build_tls_connector(false).ok();
        Ok(Connectors { encrypt_only, verify })
    }
}

/// Connect to the first target that works. Every failure is returned too, for the history.
pub async fn connect(
    hop: &Hop,
    start_at: usize,
    helo: &str,
    connectors: &Connectors,
    timeouts: Timeouts,
) -> Result<(Connection, usize), Vec<Failure>> {
    let mut failures = Vec::new();
    for (index, target) in hop.targets.iter().enumerate().skip(start_at) {
        for addr in &target.addrs {
            match connect_one(target, *addr, helo, connectors, timeouts).await {
                Ok(conn) => return Ok((conn, index)),
                Err(f) => {
                    debug!(host = %target.name, %addr, error = %f, "connection attempt failed");
                    failures.push(f);
                }
            }
        }
    }
    Err(failures)
}

async fn connect_one(
    target: &Target,
    addr: SocketAddr,
    helo: &str,
    connectors: &Connectors,
    timeouts: Timeouts,
) -> Result<Connection, Failure> {
    let connector = if target.verify { connectors.verify.as_ref() } else { Some(&connectors.encrypt_only) };
    let open = |tls| {
        let credentials = target.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        OpenOptions { helo, tls, connector, tls_name: &target.name, credentials, plain_auth_ok: addr.ip().is_loopback(), timeouts }
    };
    let remote = format!("{}[{}]", target.name, addr.ip());
    let stream = tcp(addr, &remote, timeouts).await?;
    match Connection::open(Box::new(stream), &target.name, &open(target.tls)).await {
        // RFC 3207 §4.1 leaves it to us: opportunistic TLS that fails is retried in the clear,
        // on a fresh connection (the old one is in an unknown state).
        Err(Failure::Tls(reason)) if target.tls == TlsPolicy::Opportunistic => {
            info!(host = %remote, %reason, "STARTTLS failed; retrying without TLS");
            let stream = tcp(addr, &remote, timeouts).await?;
            Connection::open(Box::new(stream), &target.name, &open(TlsPolicy::None)).await
        }
        other => other,
    }
}

async fn tcp(addr: SocketAddr, remote: &str, timeouts: Timeouts) -> Result<TcpStream, Failure> {
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| Failure::Connect { host: remote.to_owned(), reason: "connect timed out".into() })?
        .map_err(|e| Failure::Connect { host: remote.to_owned(), reason: e.to_string() })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
