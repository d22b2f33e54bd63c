//! SDP for the fast path, sans-IO: bytes in, a typed [`SessionDescription`] out, and back
//! (DESIGN.md "Fast path": the `m=application <port> TCP smtp http` offer).
//!
//! What is read is the RFC 4566 subset a fast-path offer or answer needs:
//!
//! - the mandatory session lines `v=0` (first, §5.1), `o=` (§5.2), `s=` (§5.3) and `t=` (§5.9;
//!   the first one is kept);
//! - `c=IN IP4|IP6 <address>` (§5.7) at session level and per media; a media-level `c=`
//!   overrides the session's. The address must be an IP literal: the fast path connects to it,
//!   so a host name or a multicast `/ttl` form is an error rather than something to resolve;
//! - `m=<media> <port>[/<count>] <proto> <fmt>...` (§5.14); for the fast path the media is
//!   `application`, the proto `TCP` (RFC 4145 §3) and the formats are the protocol names;
//! - `a=setup:active|passive|actpass|holdconn` (RFC 4145 §4), `a=connection:new|existing`
//!   (RFC 4145 §5) and sipmta's `a=fp-token:<token>` (the [`Token`] of DESIGN, in the manner of
//!   RFC 4572's `a=fingerprint`), each at most once per level, session level overridden by media
//!   level.
//!
//! Unknown line types (`i=`, `b=`, `k=`...) and unknown attributes (`a=rtpmap`...) are ignored
//! (RFC 4566 §5: "parsers ... SHOULD ignore" what they do not understand); a malformed line of a
//! type that is read is an [`SdpError`], never a panic. Lines end in CRLF; a bare LF is accepted
//! too (RFC 4566 §5), blank lines are skipped. [`SessionDescription::encode`] writes CRLF, and
//! `parse(encode(d)) == d` for every parsed `d`.
//!
//! Offer/answer and the RFC 4145 role rules are in [`negotiate`], the capability description
//! of an OPTIONS answer (RFC 3261 §11.2) in [`capability`]; both are re-exported here.

pub mod capability;
pub mod negotiate;

use std::fmt;
use std::net::IpAddr;

pub use capability::{capabilities, read_capabilities};
pub use negotiate::{Accepted, Answer, AnswerError, Offer, Reach, Rejection, Transport, answer};

use crate::fp1::Token;

/// The largest SDP body parsed: far above any offer sipmta sends, low enough to bound work.
pub const MAX_SDP: usize = 64 * 1024;

/// RFC 4145 §4.1: the active side's port in its SDP is 9 (discard); it does not listen.
pub const DISCARD_PORT: u16 = 9;

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`, as written (`-` in what sipmta sends).
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// The first `t=`: start and stop times (`0 0` for an unbounded session).
    pub timing: (u64, u64),
    /// Session-level `setup`, `connection` and `fp-token`.
    pub attributes: TcpAttributes,
    /// The `m=` sections in order.
    pub media: Vec<Media>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>` (RFC 4566
/// §5.2), kept as text: nothing in the fast path depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `-` when there is no user id.
    pub username: String,
    /// Numeric session id.
    pub session_id: String,
    /// Numeric version, bumped by each new offer of the session.
    pub session_version: String,
    /// `IN`.
    pub net_type: String,
    /// `IP4` or `IP6`.
    pub addr_type: String,
    /// The creator's address (a literal or a host name: nothing connects to it).
    pub address: String,
}

/// The attributes the fast path reads, at one level (session or media).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpAttributes {
    /// `a=setup:` (RFC 4145 §4).
    pub setup: Option<Setup>,
    /// `a=connection:` (RFC 4145 §5).
    pub connection: Option<ConnectionMode>,
    /// `a=fp-token:`.
    pub fp_token: Option<Token>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `application` for the fast path.
    pub media: String,
    /// 0 means a rejected stream (RFC 3264 §6); 9 an active side that does not listen.
    pub port: u16,
    /// The `/<count>` after the port, if written.
    pub port_count: Option<u16>,
    /// `TCP` for the fast path.
    pub proto: String,
    /// The format list: protocol names for the fast path. Never empty.
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<IpAddr>,
    /// Media-level `setup`, `connection` and `fp-token`.
    pub attributes: TcpAttributes,
}

/// `a=setup:` values (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Will open the connection (its port is 9).
    Active,
    /// Will accept the connection.
    Passive,
    /// Either; the answerer chooses (offers only).
    ActPass,
    /// No connection for now.
    HoldConn,
}

/// `a=connection:` values (RFC 4145 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// A new TCP connection (every fast-path session).
    New,
    /// Keep using the connection of an earlier offer/answer.
    Existing,
}

impl Setup {
    /// The attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }

    fn parse(value: &str) -> Option<Setup> {
        [Setup::Active, Setup::Passive, Setup::ActPass, Setup::HoldConn].into_iter().find(|s| s.as_str() == value)
    }
}

impl ConnectionMode {
    /// The attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionMode::New => "new",
            ConnectionMode::Existing => "existing",
        }
    }
}

/// Why bytes are not a usable session description. A SIP UA answers an INVITE whose SDP fails
/// here with `488 Not Acceptable Here` (or `400`, RFC 3261 §21.4.1), and falls back when it is
/// the answer that fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is larger than [`MAX_SDP`].
    #[error("SDP body larger than {MAX_SDP} octets")]
    TooLarge,
    /// The body is not UTF-8 (RFC 4566 §5: the default charset).
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    /// The first line is not `v=0` (RFC 4566 §5.1).
    #[error("SDP does not start with v=0")]
    Version,
    /// A mandatory line is missing: `"o="`, `"s="` or `"t="`.
    #[error("SDP lacks the mandatory {0} line")]
    Missing(&'static str),
    /// A line is malformed.
    #[error("SDP line {line}: {problem}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
}

/// What is wrong with one SDP line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// Not `<lower-case letter>=<value>`.
    #[error("not <type>=<value>")]
    Syntax,
    /// A NUL or a CR inside the line.
    #[error("control character")]
    ControlChar,
    /// `v=`, `o=`, `s=` or `t=` after the first `m=`, or a second `v=`.
    #[error("session-level line inside a media section")]
    OutOfOrder,
    /// The same line or attribute twice at one level.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// `o=` without its six fields.
    #[error("malformed o=")]
    Origin,
    /// `c=` that is not `IN IP4 <v4 literal>` or `IN IP6 <v6 literal>`.
    #[error("malformed c= (want IN IP4|IP6 <address literal>)")]
    Connection,
    /// `t=` that is not two decimal numbers.
    #[error("malformed t=")]
    Timing,
    /// `m=` without media, port, proto and at least one format.
    #[error("malformed m=")]
    Media,
    /// `a=setup` with a value RFC 4145 does not define.
    #[error("malformed a=setup")]
    Setup,
    /// `a=connection` other than `new` or `existing`.
    #[error("malformed a=connection")]
    ConnectionAttr,
    /// `a=fp-token` that is not a [`Token`].
    #[error("malformed a=fp-token")]
    Token,
}

/// The fast-path media line of a description, with session-level values filled in where the
/// media level is silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPathMedia {
    /// Index in [`SessionDescription::media`].
    pub index: usize,
    /// Non-zero.
    pub port: u16,
    /// The formats: protocol names, in the writer's preference order.
    pub protocols: Vec<String>,
    /// Media-level `c=`, else session-level.
    pub addr: Option<IpAddr>,
    /// As written; the offer/answer defaults of RFC 4145 §4.1 are applied in [`negotiate`].
    pub setup: Option<Setup>,
    /// As written; absent means `new` for sipmta.
    pub connection: Option<ConnectionMode>,
    /// Media-level `fp-token`, else session-level.
    pub token: Option<Token>,
}

impl SessionDescription {
    /// Parses a whole SDP body.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut lines = text.split('\n').enumerate().map(|(i, raw)| (i + 1, raw.strip_suffix('\r').unwrap_or(raw)));
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::Version),
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut timing = None;
        let mut attributes = TcpAttributes::default();
        let mut media: Vec<Media> = Vec::new();
        for (n, line) in lines {
            let bad = |problem| SdpError::Line { line: n, problem };
            if line.is_empty() {
                continue;
            }
            if line.contains(['\r', '\0']) {
                return Err(bad(LineProblem::ControlChar));
            }
            let (kind, value) = match line.as_bytes() {
                [k, b'=', ..] if k.is_ascii_lowercase() => (*k, &line[2..]),
                _ => return Err(bad(LineProblem::Syntax)),
            };
            let current = media.last_mut();
            match kind {
                b'v' | b'o' | b's' | b't' if current.is_some() => return Err(bad(LineProblem::OutOfOrder)),
                b'v' => return Err(bad(LineProblem::OutOfOrder)),
                b'o' if origin.is_some() => return Err(bad(LineProblem::Duplicate("o="))),
                b'o' => origin = Some(parse_origin(value).ok_or(bad(LineProblem::Origin))?),
                b's' if session_name.is_some() => return Err(bad(LineProblem::Duplicate("s="))),
                b's' => session_name = Some(value.to_owned()),
                b't' => {
                    let t = parse_timing(value).ok_or(bad(LineProblem::Timing))?;
                    // Later t= lines (more time descriptions, RFC 4566 §5.9) add nothing here.
                    timing.get_or_insert(t);
                }
                b'c' => {
                    let addr = parse_connection(value).ok_or(bad(LineProblem::Connection))?;
                    let slot = match current {
                        Some(m) => &mut m.connection,
                        None => &mut connection,
                    };
                    if slot.replace(addr).is_some() {
                        return Err(bad(LineProblem::Duplicate("c=")));
                    }
                }
                b'm' => media.push(parse_media(value).ok_or(bad(LineProblem::Media))?),
                b'a' => {
                    let attrs = match current {
                        Some(m) => &mut m.attributes,
                        None => &mut attributes,
                    };
                    parse_attribute(value, attrs).map_err(bad)?;
                }
                // i=, u=, e=, p=, b=, z=, k=, r= and letters RFC 4566 does not define.
                _ => {}
            }
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::Missing("o="))?,
            session_name: session_name.ok_or(SdpError::Missing("s="))?,
            connection,
            timing: timing.ok_or(SdpError::Missing("t="))?,
            attributes,
            media,
        })
    }

    /// The wire form, CRLF line endings, lines in RFC 4566 §5 order.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// The first `m=application <port> TCP ...` section with a non-zero port, if any.
    pub fn fast_path(&self) -> Option<FastPathMedia> {
        let (index, m) = self
            .media
            .iter()
            .enumerate()
            .find(|(_, m)| m.media.eq_ignore_ascii_case("application") && m.proto.eq_ignore_ascii_case("TCP") && m.port != 0)?;
        Some(FastPathMedia {
            index,
            port: m.port,
            protocols: m.formats.clone(),
            addr: m.connection.or(self.connection),
            setup: m.attributes.setup.or(self.attributes.setup),
            connection: m.attributes.connection.or(self.attributes.connection),
            token: m.attributes.fp_token.or(self.attributes.fp_token),
        })
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, session_id, session_version, net_type, addr_type, address] = f.as_slice() else { return None };
    Some(Origin {
        username: (*username).to_owned(),
        session_id: (*session_id).to_owned(),
        session_version: (*session_version).to_owned(),
        net_type: (*net_type).to_owned(),
        addr_type: (*addr_type).to_owned(),
        address: (*address).to_owned(),
    })
}

fn parse_timing(value: &str) -> Option<(u64, u64)> {
    let mut f = value.split_ascii_whitespace();
    let (start, stop) = (f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    Some((parse_digits(start)?, parse_digits(stop)?))
}

/// Decimal digits only (`str::parse` would also take a leading `+`).
fn parse_digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    match f.as_slice() {
        ["IN", "IP4", addr] => addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        ["IN", "IP6", addr] => addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

fn parse_media(value: &str) -> Option<Media> {
    let mut f = value.split_ascii_whitespace();
    let (media, port, proto) = (f.next()?, f.next()?, f.next()?);
    let formats: Vec<String> = f.map(str::to_owned).collect();
    if formats.is_empty() {
        return None;
    }
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (parse_digits(port)?, Some(parse_digits(count)?)),
        None => (parse_digits(port)?, None),
    };
    Some(Media {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        connection: None,
        attributes: TcpAttributes::default(),
    })
}

fn parse_attribute(value: &str, attrs: &mut TcpAttributes) -> Result<(), LineProblem> {
    let (name, arg) = match value.split_once(':') {
        Some((name, arg)) => (name, Some(arg)),
        None => (value, None),
    };
    fn set<T>(slot: &mut Option<T>, value: Option<T>, bad: LineProblem, what: &'static str) -> Result<(), LineProblem> {
        let value = value.ok_or(bad)?;
        match slot.replace(value) {
            Some(_) => Err(LineProblem::Duplicate(what)),
            None => Ok(()),
        }
    }
    match name {
        "setup" => set(&mut attrs.setup, arg.and_then(Setup::parse), LineProblem::Setup, "a=setup"),
        "connection" => {
            let mode = match arg {
                Some("new") => Some(ConnectionMode::New),
                Some("existing") => Some(ConnectionMode::Existing),
                _ => None,
            };
            set(&mut attrs.connection, mode, LineProblem::ConnectionAttr, "a=connection")
        }
        "fp-token" => set(&mut attrs.fp_token, arg.and_then(|t| Token::parse(t).ok()), LineProblem::Token, "a=fp-token"),
        _ => Ok(()),
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, addr: &IpAddr) -> fmt::Result {
    match addr {
        IpAddr::V4(a) => write!(f, "c=IN IP4 {a}\r\n"),
        IpAddr::V6(a) => write!(f, "c=IN IP6 {a}\r\n"),
    }
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attrs: &TcpAttributes) -> fmt::Result {
    if let Some(setup) = attrs.setup {
        write!(f, "a=setup:{}\r\n", setup.as_str())?;
    }
    if let Some(mode) = attrs.connection {
        write!(f, "a=connection:{}\r\n", mode.as_str())?;
    }
    if let Some(token) = &attrs.fp_token {
        write!(f, "a=fp-token:{token}\r\n")?;
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v=0\r\n")?;
        write!(f, "o={} {} {} {} {} {}\r\n", o.username, o.session_id, o.session_version, o.net_type, o.addr_type, o.address)?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(addr) = &self.connection {
            write_connection(f, addr)?;
        }
        write!(f, "t={} {}\r\n", self.timing.0, self.timing.1)?;
        write_attributes(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(count) = m.port_count {
                write!(f, "/{count}")?;
            }
            write!(f, " {} {}\r\n", m.proto, m.formats.join(" "))?;
            if let Some(addr) = &m.connection {
                write_connection(f, addr)?;
            }
            write_attributes(f, &m.attributes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
