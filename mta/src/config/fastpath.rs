//! The `[fastpath]` section: the SIP side of the site (DESIGN.md "Fast path"): how sipmta
//! registers its own numbers, where it sends INVITEs, and where fast-path streams meet.
//!
//! One TCP listener (`stream_listen`) serves every fast-path stream in both directions: the
//! FP/1 `HELLO <token>` line says which call a connection belongs to, so RFC 4145's rule that
//! the passive side listens before it sends its SDP always holds.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Files, Span};

/// Fast-path settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastPath {
    /// Deliver recipients routed to a number over SIP (otherwise they are relayed and the
    /// decision is kept). Default: false.
    pub enabled: bool,
    /// Our SIP user agent's address (UDP and TCP). Default `"127.0.0.1:5062"`.
    pub sip_listen: SocketAddr,
    /// Transport for requests we send: `udp` or `tcp`. Default `"udp"`.
    pub transport: SipTransport,
    /// The registrar/proxy every request goes through (Kamailio, or the built-in one).
    /// Default `"127.0.0.1:5060"`.
    pub proxy: SocketAddr,
    /// SIP domain of Request-URIs and AORs (`sip:+815012345678@<domain>;user=phone`).
    /// Default `"localhost"`.
    pub domain: String,
    /// Our own numbers, registered with the proxy so calls for them reach us. Default: none.
    pub numbers: Vec<OwnNumber>,
    /// TCP listener for fast-path streams. Default `"127.0.0.1:0"` (a free port).
    pub stream_listen: SocketAddr,
    /// The address written in SDP `c=` lines: where peers reach `stream_listen`. Default: the
    /// stream listener's own address.
    pub advertise: Option<IpAddr>,
    /// `passive`: we listen and peers connect (RFC 4145). `active`: we always dial out, for a
    /// site behind NAT that cannot be reached. Default `"passive"`.
    pub media_role: MediaRole,
    /// How long an INVITE may wait for its final answer before CANCEL and fallback to relay.
    /// Default `"5s"`.
    pub answer_budget: Span,
    /// Connect plus FP/1 preamble (DESIGN.md: 10 s). Default `"10s"`.
    pub preamble_timeout: Span,
    /// Protocols offered and accepted over fast-path streams, in preference order.
    /// Default `["smtp"]`.
    pub protocols: Vec<String>,
    /// Before the first INVITE to a number whose protocol the protocol table does not know,
    /// ask its site with SIP OPTIONS (RFC 3261 §11) which protocols it accepts, within
    /// `answer_budget`: one it lists is stored and the call skips `PROTOS?`; if it lists none
    /// of ours, no INVITE is sent and the recipients are relayed (as after a `488`); if it does
    /// not answer usefully (no answer, `405`, no SDP), the INVITE goes ahead. Default: true.
    pub probe_options: bool,
    /// Keep the sending client's DATA reply waiting for the fast path's verdict (seed 004: the
    /// result is known at the time of sending). The message is spooled first. Default: true.
    pub inline: bool,
    /// How long the DATA reply may wait for that verdict; past it the reply says "queued" and
    /// the queue carries on. Default `"5s"`.
    pub inline_budget: Span,
    /// Fast-path sessions open at once to one number (more messages wait for one). Default 10,
    /// as relay.max_connections_per_destination.
    pub max_sessions_per_number: usize,
    /// An idle session to a number carries the next message until this long without one, then
    /// QUIT and BYE. `"0s"` closes each session after its message. Default `"10s"`.
    pub session_idle: Span,
    /// How a number's INVITE finds its way, tried in order until one gives an answer:
    /// `static` (`static_map`), `enum` (NAPTR `E2U+sip` under `enum_suffix`, RFC 6116), `proxy`
    /// (`fastpath.proxy` with `sip:<number>@<domain>;user=phone`). Default `["proxy"]`.
    pub locators: Vec<Locator>,
    /// The ENUM tree to query, e.g. a private one. Default `"e164.arpa"`.
    pub enum_suffix: String,
    /// Number (national or E.164) -> SIP URI (`sip:+815012345678@192.0.2.7:5060`), for the
    /// `static` locator. Default: empty.
    pub static_map: BTreeMap<String, String>,
}

/// A way to find where to send a number's INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locator {
    /// The static map.
    Static,
    /// ENUM (RFC 6116).
    Enum,
    /// The outbound proxy / registrar.
    Proxy,
}

/// A number of ours and how to register it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnNumber {
    /// The number, national (`050-1234-5678`) or E.164.
    pub number: String,
    /// Digest password, if the registrar asks for one (prefer `password_file`).
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the digest password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Registration lifetime asked for (refreshed before it runs out). Default `"1h"`.
    #[serde(default = "default_expires")]
    pub expires: Span,
}

fn default_expires() -> Span {
    Span(Duration::from_secs(3600))
}

/// SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// UDP (RFC 3261 §18).
    #[default]
    Udp,
    /// TCP, with CRLF keep-alives.
    Tcp,
}

/// Our RFC 4145 role for fast-path streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaRole {
    /// Listen; peers connect.
    #[default]
    Passive,
    /// Always connect out (behind NAT).
    Active,
}

impl Default for FastPath {
    fn default() -> Self {
        FastPath {
            enabled: false,
            sip_listen: SocketAddr::from(([127, 0, 0, 1], 5062)),
            transport: SipTransport::Udp,
            proxy: SocketAddr::from(([127, 0, 0, 1], 5060)),
            domain: "localhost".into(),
            numbers: Vec::new(),
            stream_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            media_role: MediaRole::Passive,
            answer_budget: Span(Duration::from_secs(5)),
            preamble_timeout: Span(Duration::from_secs(10)),
            protocols: vec!["smtp".into()],
            probe_options: true,
            inline: true,
            inline_budget: Span(Duration::from_secs(5)),
            max_sessions_per_number: 10,
            session_idle: Span(Duration::from_secs(10)),
            locators: vec![Locator::Proxy],
            enum_suffix: "e164.arpa".into(),
            static_map: BTreeMap::new(),
        }
    }
}

impl FastPath {
    /// Add this section's problems to `errors`. Numbers are only checked for their form here:
    /// the prefixes they must match live in the store (`sipmta prefix list`) and are applied
    /// when the daemon starts.
    pub fn validate(&self, errors: &mut Vec<String>, files: Files) {
        if !super::is_domain(&self.domain) {
            errors.push(format!("fastpath.domain: {:?} is not a domain name", self.domain));
        }
        for n in &self.numbers {
            if !looks_like_number(&n.number) {
                errors.push(format!("fastpath.numbers: {:?} is not a telephone number", n.number));
            }
            if n.password.is_some() && n.password_file.is_some() {
                errors.push(format!("fastpath.numbers {:?}: set password or password_file, not both", n.number));
            }
            if let Some(file) = &n.password_file
                && files == Files::Read
                && let Err(e) = std::fs::metadata(file)
            {
                errors.push(format!("fastpath.numbers {:?}: cannot read password_file {}: {e}", n.number, file.display()));
            }
            if n.expires.0 < Duration::from_secs(60) {
                errors.push(format!("fastpath.numbers {:?}: expires must be at least 1m", n.number));
            }
        }
        if self.protocols.is_empty()
            || self.protocols.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            errors.push("fastpath.protocols: give protocol names such as \"smtp\"".into());
        }
        if !self.protocols.iter().any(|p| p == "smtp") {
            errors.push("fastpath.protocols: \"smtp\" must be one of them (it is what mail needs)".into());
        }
        if self.answer_budget.0 < Duration::from_millis(100) || self.preamble_timeout.0 < Duration::from_millis(100) {
            errors.push("fastpath.answer_budget and preamble_timeout: at least 100ms".into());
        }
        if self.inline_budget.0 < Duration::from_millis(100) {
            errors.push("fastpath.inline_budget: at least 100ms".into());
        }
        if !(1..=1000).contains(&self.max_sessions_per_number) {
            errors.push("fastpath.max_sessions_per_number: between 1 and 1000".into());
        }
        if self.locators.is_empty() {
            errors.push("fastpath.locators: name at least one of \"static\", \"enum\", \"proxy\"".into());
        }
        if self.locators.contains(&Locator::Enum) && !super::is_domain(&self.enum_suffix) {
            errors.push(format!("fastpath.enum_suffix: {:?} is not a domain name", self.enum_suffix));
        }
        for (number, uri) in &self.static_map {
            if !looks_like_number(number) {
                errors.push(format!("fastpath.static_map: {number:?} is not a telephone number"));
            }
            if let Err(e) = crate::fastpath::locate::SipUri::parse(uri) {
                errors.push(format!("fastpath.static_map {number:?}: {e}"));
            }
        }
        if !self.static_map.is_empty() && !self.locators.contains(&Locator::Static) {
            errors.push("fastpath.static_map: set, but \"static\" is not in fastpath.locators".into());
        }
        if self.enabled && self.sip_listen == self.proxy {
            errors.push("fastpath.sip_listen: must differ from fastpath.proxy".into());
        }
    }
}

/// The form of a telephone number (national or E.164, full-width digits allowed); whether its
/// prefix is one we know is checked against the store's prefixes when the daemon starts.
fn looks_like_number(number: &str) -> bool {
    let digits = number.chars().filter(|c| c.is_ascii_digit() || ('０'..='９').contains(c)).count();
    let form_ok = number.chars().all(|c| c.is_ascii_digit() || ('０'..='９').contains(&c) || "+＋-－.． ".contains(c));
    form_ok && (6..=15).contains(&digits)
}
