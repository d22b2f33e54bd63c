//! The `[relay]` section: how mail for other domains leaves (DESIGN.md "Relay queue and DSN").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ByteSize, Files, Span, is_domain};
pub use crate::relay::outbound::TlsPolicy;

/// Relay queue, MX delivery, smarthosts and DSNs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// SMTP port of MX hosts (RFC 5321: 25). Tests point it at a loopback port.
    pub mx_port: u16,
    /// DNS servers for MX and address lookups (`"127.0.0.1:53"`); empty uses /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// How long one DNS query may take.
    pub dns_timeout: Span,
    /// Waits between attempts for a recipient; after the last, the last repeats.
    pub retry: Vec<Span>,
    /// Give up (failed DSN, status 4.4.7) after this long in the queue.
    pub lifetime: Span,
    /// Send one `delayed` DSN when a recipient has waited this long.
    pub delay_warning: Span,
    /// Outbound connections in total.
    pub max_connections: usize,
    /// Outbound connections to one destination (one MX set, host or smarthost list).
    pub max_connections_per_destination: usize,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: usize,
    /// How long an idle connection is kept for the next message to the same destination.
    pub connection_idle: Span,
    /// TCP connect timeout (the SMTP timeouts are those of RFC 5321 §4.5.3.2).
    pub connect_timeout: Span,
    /// When set, no wait for a remote server's reply (or for a write to it) lasts longer,
    /// though RFC 5321 §4.5.3.2 asks for up to 10 minutes: a stalled server then costs a
    /// connection slot this long before the message is deferred.
    pub smtp_timeout: Option<Span>,
    /// STARTTLS to MX hosts and transport-map hosts: `none`, `opportunistic` or `required`.
    pub starttls: TlsPolicy,
    /// Per-domain STARTTLS policy overriding `starttls` (`"bank.example" = "required"`;
    /// `".example.org"` covers its subdomains).
    pub tls_policy: BTreeMap<String, TlsPolicy>,
    /// Above this size, bounces return only the headers of the original.
    pub dsn_max_returned: ByteSize,
    /// Send relayed mail with a return path of ours (`<sipmta bounce address>`) so DSNs from
    /// further down come back here first: the outcome at the destination is then known even when
    /// the sender did not ask for it. They are passed on to the sender as usual.
    pub return_path_rewrite: bool,
    /// How long a relayed message is remembered for matching the DSNs that come back for it
    /// (and for taking mail at its bounce address). Remote servers give up after about five
    /// days (RFC 5321 §4.5.4.1), so a week covers their failure reports.
    pub tracking_retention: Span,
    /// Next hops that take all relay mail (like Postfix's relayhost), tried by priority.
    pub smarthosts: Vec<Smarthost>,
    /// Per-domain override of MX: `"example.net" = "[192.0.2.5]:2525"` (a fixed host),
    /// a smarthost's name, or `"mx"` (normal MX lookup even when smarthosts are set).
    pub transport: BTreeMap<String, String>,
}

/// A smarthost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smarthost {
    /// Name used in the transport map and logs.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// Port (587 for submission to a provider, 25 for a relay).
    #[serde(default = "default_smarthost_port")]
    pub port: u16,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: u32,
    /// STARTTLS policy; credentials are only ever sent over TLS unless the host is loopback.
    #[serde(default = "default_smarthost_tls")]
    pub starttls: TlsPolicy,
    /// Check the smarthost's certificate against the system's trusted roots.
    #[serde(default = "yes")]
    pub verify_certificate: bool,
    /// AUTH user name.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password (prefer `password_file`).
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the AUTH password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_smarthost_port() -> u16 {
    587
}

fn default_smarthost_tls() -> TlsPolicy {
    TlsPolicy::Required
}

fn yes() -> bool {
    true
}

impl Default for Relay {
    fn default() -> Self {
        let m = |n: u64| Span(Duration::from_secs(60 * n));
        Relay {
            mx_port: 25,
            nameservers: Vec::new(),
            dns_timeout: Span(Duration::from_secs(5)),
            retry: vec![m(1), m(5), m(15), m(30), m(60), m(120), m(240)],
            lifetime: Span(Duration::from_secs(5 * 86_400)),
            delay_warning: m(240),
            max_connections: 100,
            max_connections_per_destination: 10,
            max_messages_per_connection: 100,
            connection_idle: Span(Duration::from_secs(5)),
            connect_timeout: Span(Duration::from_secs(30)),
            smtp_timeout: None,
            starttls: TlsPolicy::Opportunistic,
            tls_policy: BTreeMap::new(),
            dsn_max_returned: ByteSize(1 << 20),
            return_path_rewrite: false,
            tracking_retention: Span(Duration::from_secs(7 * 86_400)),
            smarthosts: Vec::new(),
            transport: BTreeMap::new(),
        }
    }
}

/// Where a transport-map entry sends mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// MX lookup.
    Mx,
    /// A fixed host and port.
    Host(String, u16),
    /// The named smarthost.
    Smarthost(String),
}

impl Relay {
    /// The wait before attempt number `attempts + 1` (attempts already made, at least 1).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        self.retry.get(i).map_or(Duration::from_secs(300), |s| s.0)
    }

    /// How mail for `domain` leaves: the transport map (exact domain, then each parent domain
    /// written with a leading dot), else the smarthosts when there are any, else MX.
    pub fn transport_for(&self, domain: &str) -> Transport {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut candidates = vec![domain.clone()];
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            candidates.push(format!(".{parent}"));
            rest = parent;
        }
        for key in candidates {
            if let Some(value) = self.transport.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v) {
                return parse_transport(value).unwrap_or(Transport::Mx);
            }
        }
        if self.smarthosts.is_empty() { Transport::Mx } else { Transport::Smarthost(String::new()) }
    }

    /// The STARTTLS policy for mail to `domain` (exact entry, then parent domains written with a
    /// leading dot, then `starttls`).
    pub fn tls_for(&self, domain: &str) -> TlsPolicy {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = domain.as_str();
        if let Some(p) = self.tls_policy.iter().find(|(k, _)| k.eq_ignore_ascii_case(rest)) {
            return *p.1;
        }
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(p) = self.tls_policy.iter().find(|(k, _)| k.strip_prefix('.').is_some_and(|k| k.eq_ignore_ascii_case(parent))) {
                return *p.1;
            }
            rest = parent;
        }
        self.starttls
    }

    /// Semantic checks, all reported.
    pub fn validate(&self, errors: &mut Vec<String>, files: Files) {
        if self.retry.is_empty() {
            errors.push("relay.retry: give at least one wait".into());
        }
        if self.retry.iter().any(|s| s.0 < Duration::from_secs(1)) {
            errors.push("relay.retry: waits must be at least 1s".into());
        }
        if self.lifetime.0 < Duration::from_secs(1) {
            errors.push("relay.lifetime: must be at least 1s".into());
        }
        if self.tracking_retention.0 < Duration::from_secs(1) {
            errors.push("relay.tracking_retention: must be at least 1s".into());
        }
        if self.smtp_timeout.is_some_and(|t| t.0 < Duration::from_secs(1)) {
            errors.push("relay.smtp_timeout: must be at least 1s".into());
        }
        for domain in self.tls_policy.keys() {
            if !is_domain(domain.trim_start_matches('.')) {
                errors.push(format!("relay.tls_policy: {domain:?} is not a domain"));
            }
        }
        if self.max_connections == 0 || self.max_connections_per_destination == 0 || self.max_messages_per_connection == 0 {
            errors
                .push("relay.max_connections, max_connections_per_destination and max_messages_per_connection: must be at least 1".into());
        }
        let mut names = Vec::new();
        for s in &self.smarthosts {
            if s.name.is_empty() || names.contains(&&s.name) {
                errors.push(format!("relay.smarthosts: names must be unique and not empty ({:?})", s.name));
            }
            names.push(&s.name);
            if s.password.is_some() && s.password_file.is_some() {
                errors.push(format!("relay.smarthosts {:?}: set password or password_file, not both", s.name));
            }
            if s.username.is_none() && (s.password.is_some() || s.password_file.is_some()) {
                errors.push(format!("relay.smarthosts {:?}: a password needs a username", s.name));
            }
            if let Some(file) = &s.password_file
                && files == Files::Read
                && let Err(e) = std::fs::metadata(file)
            {
                errors.push(format!("relay.smarthosts {:?}: cannot read password_file {}: {e}", s.name, file.display()));
            }
        }
        for (domain, value) in &self.transport {
            if !is_domain(domain.trim_start_matches('.')) {
                errors.push(format!("relay.transport: {domain:?} is not a domain"));
            }
            match parse_transport(value) {
                Some(Transport::Smarthost(name)) if !self.smarthosts.iter().any(|s| s.name == name) => {
                    errors.push(format!("relay.transport {domain:?}: no smarthost named {name:?} (or write [host]:port)"));
                }
                Some(_) => {}
                None => errors.push(format!("relay.transport {domain:?}: {value:?} is not \"[host]:port\", a smarthost name or \"mx\"")),
            }
        }
    }
}

fn parse_transport(value: &str) -> Option<Transport> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("mx") {
        return Some(Transport::Mx);
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (host, port) = rest.split_once(']')?;
        let port = match port.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if port.is_empty() => 25,
            None => return None,
        };
        return (!host.is_empty()).then(|| Transport::Host(host.to_owned(), port));
    }
    (!value.is_empty() && !value.contains([' ', '[', ']', ':'])).then(|| Transport::Smarthost(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_repeats_the_last_wait() {
        let r = Relay::default();
        assert_eq!(r.backoff(1), Duration::from_secs(60));
        assert_eq!(r.backoff(2), Duration::from_secs(300));
        assert_eq!(r.backoff(7), Duration::from_secs(4 * 3600));
        assert_eq!(r.backoff(50), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn transport_map_lookup() {
        let mut r = Relay::default();
        r.transport.insert("example.net".into(), "[192.0.2.5]:2525".into());
        r.transport.insert(".corp.example".into(), "primary".into());
        r.transport.insert("mx.example".into(), "mx".into());
        assert_eq!(r.transport_for("Example.NET"), Transport::Host("192.0.2.5".into(), 2525));
        assert_eq!(r.transport_for("a.b.corp.example"), Transport::Smarthost("primary".into()));
        assert_eq!(r.transport_for("corp.example"), Transport::Mx);
        assert_eq!(r.transport_for("other.example"), Transport::Mx);
        r.smarthosts.push(Smarthost {
            name: "primary".into(),
            host: "smtp.provider.example".into(),
            port: 587,
            priority: 0,
            starttls: TlsPolicy::Required,
            verify_certificate: true,
            username: None,
            password: None,
            password_file: None,
        });
        assert_eq!(r.transport_for("other.example"), Transport::Smarthost(String::new()), "all smarthosts");
        assert_eq!(r.transport_for("mx.example"), Transport::Mx);
        assert_eq!(parse_transport("[host.example]"), Some(Transport::Host("host.example".into(), 25)));
        assert_eq!(parse_transport("[host]x"), None);
    }

    #[test]
    fn tls_policy_per_domain() {
        let mut r = Relay::default();
        r.tls_policy.insert("bank.example".into(), TlsPolicy::Required);
        r.tls_policy.insert(".legacy.example".into(), TlsPolicy::None);
        assert_eq!(r.tls_for("Bank.Example"), TlsPolicy::Required);
        assert_eq!(r.tls_for("mx.legacy.example"), TlsPolicy::None);
        assert_eq!(r.tls_for("other.example"), TlsPolicy::Opportunistic);
    }

    #[test]
    fn validation() {
        let mut r = Relay { retry: vec![], ..Relay::default() };
        r.transport.insert("example.net".into(), "nosuch".into());
        r.transport.insert("bad domain".into(), "mx".into());
        let mut errors = Vec::new();
        r.validate(&mut errors, Files::Read);
        let all = errors.join("\n");
        assert!(all.contains("relay.retry") && all.contains("no smarthost named \"nosuch\"") && all.contains("\"bad domain\""), "{all}");
    }
}
