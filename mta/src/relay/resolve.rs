//! Destination resolution for the relay queue: which hosts to try for a recipient domain, in
//! which order, at which addresses (RFC 5321 §5.1).
//!
//! - MX records are sorted by preference; hosts of equal preference are shuffled on every call so
//!   load spreads across them (RFC 5321 §5.1: "the sender-SMTP MUST randomize them").
//! - Each MX host's A and AAAA records are both looked up; a host without addresses is skipped.
//!   Only when no host has an address does resolution fail: transiently if any lookup failed
//!   transiently, otherwise permanently with `5.4.4`.
//! - No MX records at all means an implicit MX: the domain's own A/AAAA at preference 0.
//! - A lone MX whose exchange is the root `.` is a null MX (RFC 7505): the domain takes no mail.
//! - Address literals (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321 §4.1.3) need no DNS.
//!
//! Errors carry their RFC 3463 status and say whether the message should wait and be retried
//! ([`ResolveError::is_transient`]). Names are always queried as fully qualified: a mail domain is
//! never completed with the resolv.conf search list (RFC 5321 §2.3.5), and `/etc/hosts` is not
//! consulted, as in Postfix's default `smtp_host_lookup = dns`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::task::JoinSet;
use tracing::debug;

#[cfg(test)]
pub(crate) mod dnsmasq;
#[cfg(test)]
mod tests;

/// Where the system's name servers are listed when [`ResolverSettings::nameservers`] is empty.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// At most this many MX hosts are looked up and returned, lowest preference first, so that a
/// hostile domain with hundreds of MX records cannot make us send hundreds of queries.
pub const MAX_MX_HOSTS: usize = 16;

/// How destinations are resolved. The `[relay]` config section maps onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSettings {
    /// DNS servers to ask (UDP, with TCP for truncated answers), in order. Empty means the
    /// `nameserver` lines of `/etc/resolv.conf` (port 53).
    pub nameservers: Vec<SocketAddr>,
    /// How long one query waits for an answer before it counts as failed.
    pub timeout: Duration,
    /// How many times a query is sent before giving up (like resolv.conf `attempts:`); 0 counts as 1.
    pub attempts: usize,
    /// The port every resolved host address gets: 25 in production, a test port in tests.
    pub mx_port: u16,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings { nameservers: Vec::new(), timeout: Duration::from_secs(5), attempts: 2, mx_port: 25 }
    }
}

/// The hosts to try for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// In the order to try them: by MX preference, equal preferences shuffled. Never empty.
    pub hosts: Vec<Host>,
    /// True when the domain had no MX records and its own addresses are used (RFC 5321 §5.1
    /// implicit MX), and for address literals, which name their host directly.
    pub implicit: bool,
}

/// One host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The MX exchange (lower case, A-labels, no trailing dot), the domain itself for an implicit
    /// MX, or the literal as written (`[192.0.2.1]`).
    pub name: String,
    /// The MX preference; 0 for an implicit MX or an address literal.
    pub preference: u16,
    /// IPv4 addresses first, then IPv6, each with port [`ResolverSettings::mx_port`]. Never empty.
    pub addrs: Vec<SocketAddr>,
}

/// Why a domain has no destination. `Display` is the human message for logs and DSNs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain does not exist (NXDOMAIN for its MX, A or AAAA query).
    #[error("domain {domain} does not exist (NXDOMAIN)")]
    NoSuchDomain {
        /// The recipient domain.
        domain: String,
    },
    /// The domain exists but has neither MX nor A/AAAA records, so nothing can take its mail.
    #[error("domain {domain} has no MX, A or AAAA records")]
    NoMailHost {
        /// The recipient domain.
        domain: String,
    },
    /// The domain publishes a null MX (RFC 7505 §3): it accepts no mail at all.
    #[error("domain {domain} does not accept mail (null MX, RFC 7505)")]
    NullMx {
        /// The recipient domain.
        domain: String,
    },
    /// The domain has MX records but none of their hosts has an address.
    #[error("no MX host of {domain} has an address ({})", hosts.join(", "))]
    Unroutable {
        /// The recipient domain.
        domain: String,
        /// The MX hosts tried, each with why it was skipped.
        hosts: Vec<String>,
    },
    /// A query failed in a way that may pass: SERVFAIL, REFUSED, a timeout, no connection.
    #[error("temporary DNS failure for {domain}: {reason}")]
    Temporary {
        /// The recipient domain.
        domain: String,
        /// Which query failed and how.
        reason: String,
    },
    /// The domain is not a valid domain name or address literal.
    #[error("{domain:?} is not a valid domain or address literal: {reason}")]
    BadSyntax {
        /// The recipient domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The resolver could not be set up (for example no usable name server).
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
}

impl ResolveError {
    /// True when the message should stay queued and be retried later; false when it should
    /// bounce now.
    pub fn is_transient(&self) -> bool {
        matches!(self, ResolveError::Temporary { .. } | ResolveError::Setup(_))
    }

    /// The RFC 3463 enhanced status code for the DSN and the log.
    pub fn status(&self) -> &'static str {
        match self {
            // X.1.2 "Bad destination system address": does not exist or cannot accept mail.
            ResolveError::NoSuchDomain { .. } | ResolveError::NoMailHost { .. } => "5.1.2",
            // RFC 7505 §4.1: "Recipient address has null MX".
            ResolveError::NullMx { .. } => "5.1.10",
            // X.4.4 "Unable to route": the routing information names no reachable host.
            ResolveError::Unroutable { .. } => "5.4.4",
            // X.4.3 "Directory server failure".
            ResolveError::Temporary { .. } => "4.4.3",
            // X.1.3 "Bad destination mailbox address syntax".
            ResolveError::BadSyntax { .. } => "5.1.3",
            // X.3.5 "System incorrectly configured": our side, so the mail waits for a fix.
            ResolveError::Setup(_) => "4.3.5",
        }
    }
}

/// One NAPTR record (RFC 3403 §4.1), its strings as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Lower first.
    pub order: u16,
    /// Lower first among equal orders.
    pub preference: u16,
    /// `u` for a terminal rule yielding a URI.
    pub flags: String,
    /// `E2U+sip` for ENUM SIP records (RFC 6116 §3.4.3).
    pub services: String,
    /// `!ere!replacement!flags`.
    pub regexp: String,
}

/// Resolves recipient domains to the hosts to deliver to. Cheap to clone; clones share one cache
/// (hickory's, honouring record TTLs and SOA negative TTLs).
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: TokioResolver,
    mx_port: u16,
}

impl Resolver {
    /// A resolver asking `settings.nameservers`, or the system's when that list is empty.
    pub fn new(settings: &ResolverSettings) -> Result<Resolver, ResolveError> {
        let servers = if settings.nameservers.is_empty() {
            // A missing resolv.conf means the local host, as for the C library (resolv.conf(5)).
            let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            system_nameservers(&text)
        } else {
            settings.nameservers.clone()
        };
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        let mut builder =
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = settings.timeout;
        // hickory counts retries after the first query; the setting counts queries.
        options.attempts = settings.attempts.saturating_sub(1);
        options.use_hosts_file = ResolveHosts::Never;
        // Ask servers in the configured order, as resolv.conf does, so an operator can predict
        // which one is used.
        options.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        let inner = builder.build().map_err(|e| ResolveError::Setup(e.to_string()))?;
        Ok(Resolver { inner, mx_port: settings.mx_port })
    }

    /// The underlying hickory resolver (same nameservers, same cache), for DKIM and SPF.
    pub fn tokio(&self) -> TokioResolver {
        self.inner.clone()
    }

    /// The hosts to try for a domain, in order, with their addresses.
    ///
    /// Takes at most about two rounds of `timeout × attempts`: the MX query, then the address
    /// queries of all MX hosts at once.
    pub async fn destination(&self, domain: &str) -> Result<Destination, ResolveError> {
        if domain.starts_with('[') {
            let ip = parse_literal(domain).map_err(|reason| bad_syntax(domain, reason))?;
            let host = Host { name: domain.to_string(), preference: 0, addrs: vec![SocketAddr::new(ip, self.mx_port)] };
            return Ok(Destination { hosts: vec![host], implicit: true });
        }
        let name = parse_domain(domain).map_err(|reason| bad_syntax(domain, reason))?;
        let shown = display_name(&name);
        let mxs = match query(&self.inner, &name, RecordType::MX).await {
            Ok(Answer::Found(records)) => records.into_iter().filter_map(mx_of).collect(),
            // NODATA: the domain exists without MX records.
            Ok(Answer::NoData) => Vec::new(),
            Ok(Answer::NxDomain) => return Err(ResolveError::NoSuchDomain { domain: shown }),
            Err(reason) => return Err(ResolveError::Temporary { domain: shown, reason }),
        };
        if mxs.is_empty() {
            return self.implicit(name, shown).await;
        }
        // RFC 7505 §3: a null MX is the domain's only MX record. A root exchange mixed with real
        // ones breaks that rule; it cannot be connected to, so it is dropped and the rest used.
        if mxs.iter().all(|(_, exchange)| exchange.is_root()) {
            return Err(ResolveError::NullMx { domain: shown });
        }
        let ordered = order_mx(mxs.into_iter().filter(|(_, exchange)| !exchange.is_root()).collect());
        self.mx_hosts(ordered, shown).await
    }

    /// NAPTR records of `name` (RFC 3403), for ENUM (RFC 6116); none when the name does not
    /// exist or has none. `Err` is a transient failure, described.
    pub async fn naptr(&self, name: &str) -> Result<Vec<Naptr>, String> {
        let name = parse_domain(name)?;
        match query(&self.inner, &name, RecordType::NAPTR).await? {
            Answer::Found(records) => Ok(records
                .into_iter()
                .filter_map(|data| match data {
                    RData::NAPTR(n) => Some(Naptr {
                        order: n.order,
                        preference: n.preference,
                        flags: String::from_utf8_lossy(&n.flags).into_owned(),
                        services: String::from_utf8_lossy(&n.services).into_owned(),
                        regexp: String::from_utf8_lossy(&n.regexp).into_owned(),
                    }),
                    _ => None,
                })
                .collect()),
            Answer::NoData | Answer::NxDomain => Ok(Vec::new()),
        }
    }

    /// The addresses of `host` (a name, or an IP literal) at `port`; empty when it has none.
    pub async fn host_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = parse_domain(host)?;
        match addresses(&self.inner, &name, port).await? {
            Answer::Found(addrs) => Ok(addrs),
            Answer::NoData | Answer::NxDomain => Ok(Vec::new()),
        }
    }

    /// RFC 5321 §5.1: no MX records, so the domain itself is the host, at preference 0.
    async fn implicit(&self, name: Name, shown: String) -> Result<Destination, ResolveError> {
        match addresses(&self.inner, &name, self.mx_port).await {
            Ok(Answer::Found(addrs)) => Ok(Destination { hosts: vec![Host { name: shown, preference: 0, addrs }], implicit: true }),
            Ok(Answer::NoData) => Err(ResolveError::NoMailHost { domain: shown }),
            Ok(Answer::NxDomain) => Err(ResolveError::NoSuchDomain { domain: shown }),
            Err(reason) => Err(ResolveError::Temporary { domain: shown, reason }),
        }
    }

    /// Looks up every MX host's addresses at once, keeping the given order, and skips hosts
    /// without any.
    async fn mx_hosts(&self, ordered: Vec<(u16, Name)>, domain: String) -> Result<Destination, ResolveError> {
        let mut lookups = JoinSet::new();
        for (index, (_, exchange)) in ordered.iter().enumerate() {
            let (inner, exchange, port) = (self.inner.clone(), exchange.clone(), self.mx_port);
            lookups.spawn(async move { (index, addresses(&inner, &exchange, port).await) });
        }
        let mut results: Vec<Option<Result<Answer<SocketAddr>, String>>> = vec![None; ordered.len()];
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok((index, result)) => results[index] = Some(result),
                // A lookup task only ends this way if it panicked; count it as a failed lookup.
                Err(e) => debug!(error = %e, "MX host lookup task failed"),
            }
        }
        let mut hosts = Vec::new();
        let mut skipped = Vec::new();
        let mut transient = false;
        for ((preference, exchange), result) in ordered.into_iter().zip(results) {
            let name = display_name(&exchange);
            match result {
                Some(Ok(Answer::Found(addrs))) => hosts.push(Host { name, preference, addrs }),
                Some(Ok(Answer::NoData)) => skipped.push(format!("{name}: no A or AAAA records")),
                Some(Ok(Answer::NxDomain)) => skipped.push(format!("{name}: does not exist")),
                Some(Err(reason)) => {
                    transient = true;
                    skipped.push(reason);
                }
                None => {
                    transient = true;
                    skipped.push(format!("{name}: lookup failed"));
                }
            }
        }
        if !skipped.is_empty() {
            debug!(domain = %domain, skipped = ?skipped, "MX hosts without addresses skipped");
        }
        match (hosts.is_empty(), transient) {
            (false, _) => Ok(Destination { hosts, implicit: false }),
            (true, true) => Err(ResolveError::Temporary { domain, reason: skipped.join("; ") }),
            (true, false) => Err(ResolveError::Unroutable { domain, hosts: skipped }),
        }
    }
}

/// Whether any address of `dest` is one of our own listeners, so that delivering there would
/// send the mail back to us (the caller fails it with `5.4.6`, RFC 3463 "Routing loop detected").
///
/// Ports must be equal. An own address listening on the unspecified address (`0.0.0.0:25`,
/// `[::]:25`) matches loopback and unspecified host addresses of either family (a `[::]` socket
/// also takes IPv4 on Linux), and connecting to an unspecified host address reaches the local host,
/// so it is treated as loopback. Other interface addresses of this machine are not known here:
/// callers that listen on the unspecified address add them to `own`.
pub fn is_loop(dest: &Destination, own: &[SocketAddr]) -> bool {
    dest.hosts.iter().flat_map(|host| &host.addrs).any(|addr| own.iter().any(|own| same_listener(*addr, *own)))
}

fn same_listener(addr: SocketAddr, own: SocketAddr) -> bool {
    if addr.port() != own.port() {
        return false;
    }
    let (host, own) = (addr.ip().to_canonical(), own.ip().to_canonical());
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    host == own || (own.is_unspecified() && local(host)) || (host.is_unspecified() && local(own))
}

/// The result of one query, with the two negative answers as values: NODATA (the name exists,
/// no records of the type) and NXDOMAIN. `Err` is a transient failure, described.
#[derive(Debug, Clone)]
enum Answer<T> {
    Found(Vec<T>),
    NoData,
    NxDomain,
}

/// Record data of one query's answer, only of the asked type (CNAMEs followed are left out).
async fn query(resolver: &TokioResolver, name: &Name, rtype: RecordType) -> Result<Answer<RData>, String> {
    match resolver.lookup(name.clone(), rtype).await {
        Ok(lookup) => {
            let found: Vec<RData> =
                lookup.answers().iter().filter(|record| record.record_type() == rtype).map(|record| record.data.clone()).collect();
            Ok(if found.is_empty() { Answer::NoData } else { Answer::Found(found) })
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code: ResponseCode::NXDomain, .. }))) => Ok(Answer::NxDomain),
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Ok(Answer::NoData),
        // Everything else (SERVFAIL, REFUSED, timeouts, I/O errors, malformed answers) may pass.
        Err(e) => Err(format!("{rtype} lookup of {} failed: {e}", display_name(name))),
    }
}

/// A and AAAA of a host, both asked at once. Any address wins; otherwise a transient failure of
/// either query wins over a negative answer, and NXDOMAIN needs both to say so.
async fn addresses(resolver: &TokioResolver, name: &Name, port: u16) -> Result<Answer<SocketAddr>, String> {
    let (v4, v6) = tokio::join!(query(resolver, name, RecordType::A), query(resolver, name, RecordType::AAAA));
    let mut addrs = Vec::new();
    for answer in [&v4, &v6] {
        if let Ok(Answer::Found(records)) = answer {
            addrs.extend(records.iter().filter_map(|data| match data {
                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                RData::AAAA(aaaa) => Some(SocketAddr::new(IpAddr::V6(aaaa.0), port)),
                _ => None,
            }));
        }
    }
    if !addrs.is_empty() {
        return Ok(Answer::Found(addrs));
    }
    match (v4?, v6?) {
        (Answer::NxDomain, Answer::NxDomain) => Ok(Answer::NxDomain),
        _ => Ok(Answer::NoData),
    }
}

fn mx_of(data: RData) -> Option<(u16, Name)> {
    match data {
        RData::MX(mx) => Some((mx.preference, mx.exchange.to_lowercase())),
        _ => None,
    }
}

/// Sorts MX records by preference and shuffles those of equal preference (RFC 5321 §5.1), keeps
/// each exchange once at its best preference, and keeps at most [`MAX_MX_HOSTS`].
fn order_mx(mxs: Vec<(u16, Name)>) -> Vec<(u16, Name)> {
    let mut best: HashMap<Name, u16> = HashMap::new();
    for (preference, exchange) in mxs {
        best.entry(exchange).and_modify(|p| *p = (*p).min(preference)).or_insert(preference);
    }
    let rng = SystemRandom::new();
    let mut keyed: Vec<(u16, u32, Name)> = best
        .into_iter()
        .map(|(exchange, preference)| {
            let mut key = [0u8; 4];
            // A failed read leaves key 0: equal hosts then keep map order, still a valid order.
            let _ = rng.fill(&mut key);
            (preference, u32::from_ne_bytes(key), exchange)
        })
        .collect();
    keyed.sort_by_key(|(preference, key, _)| (*preference, *key));
    keyed.into_iter().take(MAX_MX_HOSTS).map(|(preference, _, exchange)| (preference, exchange)).collect()
}

/// A recipient domain as a fully qualified DNS name; U-labels (SMTPUTF8 domains) become A-labels.
fn parse_domain(domain: &str) -> Result<Name, String> {
    if domain.trim_end_matches('.').is_empty() {
        return Err("empty domain".into());
    }
    let mut name = Name::from_utf8(domain).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// An address literal (RFC 5321 §4.1.3): `[dotted quad]` or `[IPv6:address]`. General literals
/// with other tags name no transport we can use.
fn parse_literal(literal: &str) -> Result<IpAddr, String> {
    let inner = literal.strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or("unterminated address literal")?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| format!("bad IPv6 address {:?}", &inner[5..]))
        }
        _ => inner.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| format!("bad IPv4 address literal {inner:?}")),
    }
}

fn bad_syntax(domain: &str, reason: String) -> ResolveError {
    ResolveError::BadSyntax { domain: domain.to_string(), reason }
}

/// A name as shown to people and used as a host key: A-labels, no trailing dot.
fn display_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_string()
}

/// The `nameserver` lines of a resolv.conf, port 53. With none, the local host (resolv.conf(5)).
/// Scoped IPv6 addresses (`fe80::1%eth0`) are skipped: a socket address cannot carry the scope
/// by name.
fn system_nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)),
                _ => None,
            }
        })
        .collect();
    if servers.is_empty() {
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53)), SocketAddr::from((Ipv6Addr::LOCALHOST, 53))]
    } else {
        servers
    }
}
