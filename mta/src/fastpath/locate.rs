//! Where a number's INVITE goes (issue 6 item 4): the locators of `fastpath.locators`, tried
//! in order until one answers.
//!
//! - `static`: `fastpath.static_map`, number -> SIP URI;
//! - `enum`: ENUM (RFC 6116): NAPTR records of the reversed digits under `enum_suffix`, the
//!   terminal `E2U+sip` rules in order/preference order (RFC 3403 §4.1), whose regular
//!   expression rewrites the number into a SIP URI (RFC 3402 §3.2);
//! - `proxy`: the outbound proxy with `sip:<number>@<domain>;user=phone` (always answers).
//!
//! A URI found by `static` or `enum` is called directly at its host's address (A/AAAA, port
//! 5060 unless given; RFC 3263's NAPTR/SRV steps for the SIP server are not taken). The
//! grammar parts are sans-IO and unit-tested; the lookups go through the relay's resolver, so
//! they use the same configured name servers.

use std::collections::HashMap;
use std::net::SocketAddr;

use regex::Regex;

use crate::config::Locator;
use crate::relay::resolve::{Naptr, Resolver};

/// Where to send an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Through the outbound proxy.
    Proxy,
    /// Straight to `addr`, with `uri` as the Request-URI.
    Direct {
        /// The Request-URI.
        uri: String,
        /// Its host's address.
        addr: SocketAddr,
        /// Which locator found it, for the history.
        via: &'static str,
    },
}

/// The parts of a `sip:` URI that say where to send a request (RFC 3261 §19.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// The port, 5060 by default.
    pub port: u16,
}

impl SipUri {
    /// Parse `sip:[user@]host[:port][;params]`; `sips:` is refused (no TLS for SIP here).
    pub fn parse(uri: &str) -> Result<SipUri, String> {
        let rest = match uri.get(..4) {
            Some(s) if s.eq_ignore_ascii_case("sip:") => &uri[4..],
            _ => return Err(format!("{uri:?} is not a sip: URI")),
        };
        let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let hostport = hostport.split([';', '?']).next().unwrap_or_default();
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| format!("{uri:?}: unterminated IPv6 reference"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b)) {
            return Err(format!("{uri:?}: no usable host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("{uri:?}: bad port {p:?}"))?,
            None => 5060,
        };
        Ok(SipUri { host: host.to_owned(), port })
    }
}

/// The ENUM domain of an E.164 number (RFC 6116 §2.4): digits reversed, dot-separated.
pub fn enum_domain(e164: &str, suffix: &str) -> String {
    let mut labels: Vec<String> = e164.chars().filter(char::is_ascii_digit).rev().map(String::from).collect();
    labels.push(suffix.trim_matches('.').to_owned());
    labels.join(".")
}

/// The SIP URI ENUM gives for `e164`: the first terminal `E2U+sip` rule, by order then
/// preference, whose expression matches the number (RFC 3402 §3.2: the application unique
/// string is the number with its `+`).
pub fn enum_uri(e164: &str, records: &[Naptr]) -> Option<String> {
    let mut usable: Vec<&Naptr> = records
        .iter()
        .filter(|n| n.flags.eq_ignore_ascii_case("u"))
        .filter(|n| n.services.split(':').next().is_some_and(|s| s.eq_ignore_ascii_case("E2U+sip")) || is_sip_service(&n.services))
        .collect();
    usable.sort_by_key(|n| (n.order, n.preference));
    usable.into_iter().find_map(|n| apply_regexp(&n.regexp, e164)).filter(|uri| SipUri::parse(uri).is_ok())
}

/// `E2U+sip` or a compound `E2U+sip+...` / `E2U+...:sip` form (RFC 6116 §3.4.3).
fn is_sip_service(services: &str) -> bool {
    let lower = services.to_ascii_lowercase();
    lower.starts_with("e2u") && lower.split(['+', ':']).any(|s| s == "sip")
}

/// Apply a NAPTR substitution expression `<d>ere<d>replacement<d>[i]` (RFC 3402 §3.2) to `aus`.
pub fn apply_regexp(expr: &str, aus: &str) -> Option<String> {
    let delim = expr.chars().next()?;
    if delim.is_ascii_alphanumeric() || delim == '\\' {
        return None;
    }
    let parts: Vec<&str> = expr[delim.len_utf8()..].split(delim).collect();
    let [ere, replacement, flags] = parts.as_slice() else { return None };
    let pattern = if flags.eq_ignore_ascii_case("i") { format!("(?i){ere}") } else { (*ere).to_owned() };
    let re = Regex::new(&pattern).ok()?;
    let caps = re.captures(aus)?;
    // Backreferences are \1 to \9; anything else after a backslash is itself.
    let mut out = String::new();
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d @ '1'..='9') => out.push_str(caps.get(d as usize - '0' as usize).map_or("", |m| m.as_str())),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Some(out)
}

/// Find the target for `e164` with the configured locators.
pub async fn locate(
    locators: &[Locator],
    static_map: &HashMap<String, String>,
    enum_suffix: &str,
    resolver: &Resolver,
    e164: &str,
) -> Result<Target, String> {
    let mut tried = Vec::new();
    for locator in locators {
        let (uri, via) = match locator {
            Locator::Proxy => return Ok(Target::Proxy),
            Locator::Static => match static_map.get(e164) {
                Some(uri) => (uri.clone(), "static map"),
                None => {
                    tried.push("static map: no entry".to_owned());
                    continue;
                }
            },
            Locator::Enum => {
                let domain = enum_domain(e164, enum_suffix);
                let records = resolver.naptr(&domain).await.map_err(|e| format!("ENUM: {e}"))?;
                match enum_uri(e164, &records) {
                    Some(uri) => (uri, "ENUM"),
                    None => {
                        tried.push(format!("ENUM: no E2U+sip record at {domain}"));
                        continue;
                    }
                }
            }
        };
        let sip = SipUri::parse(&uri)?;
        let addrs = resolver.host_addrs(&sip.host, sip.port).await.map_err(|e| format!("{via} gave {uri}: {e}"))?;
        let addr = addrs.first().copied().ok_or_else(|| format!("{via} gave {uri}, whose host has no address"))?;
        return Ok(Target::Direct { uri, addr, via });
    }
    Err(format!("no SIP address for {e164} ({})", tried.join("; ")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn naptr(order: u16, preference: u16, flags: &str, services: &str, regexp: &str) -> Naptr {
        Naptr { order, preference, flags: flags.into(), services: services.into(), regexp: regexp.into() }
    }

    #[test]
    fn the_enum_domain_reverses_the_digits() {
        assert_eq!(enum_domain("+815012345678", "e164.arpa"), "8.7.6.5.4.3.2.1.0.5.1.8.e164.arpa");
        assert_eq!(enum_domain("+815012345678", "enum.example.jp."), "8.7.6.5.4.3.2.1.0.5.1.8.enum.example.jp");
    }

    #[test]
    fn substitution_expressions_follow_rfc_3402() {
        assert_eq!(apply_regexp("!^.*$!sip:info@example.com!", "+815012345678").as_deref(), Some("sip:info@example.com"));
        assert_eq!(
            apply_regexp("!^\\+81(.*)$!sip:0\\1@gw.example;user=phone!", "+815012345678").as_deref(),
            Some("sip:05012345678@gw.example;user=phone")
        );
        assert_eq!(
            apply_regexp("/^\\+(.*)$/sip:\\1@[2001:db8::7]:5070/", "+815012345678").as_deref(),
            Some("sip:815012345678@[2001:db8::7]:5070")
        );
        assert_eq!(apply_regexp("!^\\+44.*$!sip:x@uk.example!", "+815012345678"), None, "no match");
        assert_eq!(apply_regexp("!^.*$!sip:x@a.example", "+81"), None, "two delimiters only");
        assert_eq!(apply_regexp("a^.*$asip:xa", "+81"), None, "alphanumeric delimiter");
        assert_eq!(apply_regexp("!^[!x!", "+81"), None, "bad expression");
    }

    #[test]
    fn the_best_terminal_sip_rule_wins() {
        let records = [
            naptr(100, 10, "u", "E2U+sip", "!^.*$!sip:second@b.example!"),
            naptr(100, 5, "u", "E2U+email:mailto", "!^.*$!mailto:x@a.example!"),
            naptr(50, 10, "", "E2U+sip", "!^.*$!sip:not-terminal@a.example!"),
            naptr(100, 5, "U", "e2u+sip", "!^.*$!sip:first@a.example!"),
            naptr(10, 1, "u", "E2U+sip", "!^\\+44.*$!sip:uk@a.example!"),
        ];
        assert_eq!(enum_uri("+815012345678", &records).as_deref(), Some("sip:first@a.example"));
        assert_eq!(enum_uri("+815012345678", &records[..1]).as_deref(), Some("sip:second@b.example"));
        assert_eq!(enum_uri("+815012345678", &[naptr(1, 1, "u", "E2U+sip", "!^.*$!mailto:x@a.example!")]), None, "not a SIP URI");
        assert_eq!(enum_uri("+815012345678", &[]), None);
    }

    #[test]
    fn sip_uris_say_where_to_send() {
        assert_eq!(SipUri::parse("sip:+815012345678@127.0.0.1:5070;user=phone").unwrap(), SipUri { host: "127.0.0.1".into(), port: 5070 });
        assert_eq!(SipUri::parse("SIP:gw.example.jp").unwrap(), SipUri { host: "gw.example.jp".into(), port: 5060 });
        assert_eq!(SipUri::parse("sip:a@[2001:db8::1]:5062").unwrap(), SipUri { host: "2001:db8::1".into(), port: 5062 });
        for bad in ["sips:a@b.example", "tel:+815012345678", "sip:a@", "sip:a@b.example:0", "sip:a@b.example:x", "sip:a@[::1"] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
    }
}
