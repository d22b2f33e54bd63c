//! Offer/answer for the fast-path media line (RFC 3264, with the TCP roles of RFC 4145 and the
//! SDP DESIGN.md fixes).
//!
//! **Caller (UAC).** [`Offer`] builds the INVITE's SDP:
//!
//! ```text
//! m=application 40001 TCP smtp http
//! c=IN IP4 203.0.113.10
//! a=setup:actpass
//! a=connection:new
//! a=fp-token:<token>
//! ```
//!
//! An `actpass` offer lets the answerer choose, and the answerer may connect as soon as it has
//! sent its answer, before the 200 OK even arrives: **the port in the offer must already be a
//! listener that accepts** when the INVITE goes out (RFC 4145 §4.1). A caller that cannot listen
//! (behind NAT) offers `active` with port 9 instead ([`Offer::dial_out`]). [`Offer::read_answer`]
//! checks the 200 OK's SDP and says whether to connect or to accept ([`Transport`]).
//!
//! **Callee (UAS).** [`answer`] turns an offer into an answer or a [`Rejection`] (SIP `488`).
//! Roles, RFC 4145 §4.1 (an offer without `a=setup` means `active`):
//!
//! | offer | callee can listen ([`Reach::Listen`]) | callee must dial out ([`Reach::DialOut`]) |
//! |---|---|---|
//! | `actpass` | `passive`, its listener's port | `active`, port 9 |
//! | `active` | `passive`, its listener's port | rejected: nobody would listen |
//! | `passive` | `active`, port 9 | `active`, port 9 |
//! | `holdconn` | rejected | rejected |
//!
//! **A passive answerer listens before its SDP is sent** (RFC 4145 §4.1): pass the port of a
//! listener that is already accepting, and keep it until the stream arrives. The answer carries
//! the common protocols in the callee's preference order, the offer's token, `a=connection:new`
//! (sipmta never reuses a connection across offers), and every other offered `m=` line with port
//! 0, as RFC 3264 §6 wants one answer line per offer line.

use std::net::{IpAddr, SocketAddr};

use super::{ConnectionMode, DISCARD_PORT, Media, Origin, SessionDescription, Setup, TcpAttributes};
use crate::fp1::{Role, Token};

/// How the callee can take part in the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It has a listener at `addr:port`, already accepting; it can also dial out.
    Listen {
        /// The address to advertise in `c=`.
        addr: IpAddr,
        /// The listener's port.
        port: u16,
    },
    /// It cannot be reached (behind NAT) and must connect out.
    DialOut {
        /// Its own address, for `c=` (RFC 4566 §5.7 wants one; nobody connects to it).
        addr: IpAddr,
    },
}

/// What this side does to get the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Connect to the peer's listener: this side is active.
    Connect(SocketAddr),
    /// Wait for the peer on this side's own listener: this side is passive.
    Accept,
}

impl Transport {
    /// The FP/1 role this transport implies: connecting means speaking first.
    pub const fn role(&self) -> Role {
        match self {
            Transport::Connect(_) => Role::Active,
            Transport::Accept => Role::Passive,
        }
    }
}

/// Why the callee refuses an offer. Every case is answered with SIP `488 Not Acceptable Here`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `m=application <port> TCP` line with a non-zero port.
    #[error("no application/TCP media line")]
    NoFastPath,
    /// The fast-path line has no `a=fp-token` (media or session level).
    #[error("no fp-token")]
    NoToken,
    /// The fast-path line has no `c=` (media or session level).
    #[error("no connection address")]
    NoAddress,
    /// None of the offered protocols is supported.
    #[error("no common protocol; offered {offered:?}")]
    NoCommonProtocol {
        /// The offer's protocols.
        offered: Vec<String>,
    },
    /// `a=setup:holdconn`: the offerer wants no connection now, and a fast path without one is
    /// useless.
    #[error("setup:holdconn offered")]
    HoldConn,
    /// The offer's role leaves the callee nothing it can do: the offerer is `active` only and
    /// the callee cannot listen.
    #[error("offer is setup:{} and the callee cannot take the other role", offered.as_str())]
    IncompatibleRoles {
        /// The offered role.
        offered: Setup,
    },
}

impl Rejection {
    /// The SIP status to answer the INVITE with.
    pub const fn sip_status(&self) -> u16 {
        488
    }
}

/// The callee's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP to put in the 200 OK.
    pub sdp: SessionDescription,
    /// The common protocols in the callee's preference order: what `FP/1 PROTOS` must list.
    pub protocols: Vec<String>,
    /// Connect to the caller, or accept on the callee's listener.
    pub transport: Transport,
    /// The offer's token, for the FP/1 `HELLO` check.
    pub token: Token,
}

/// The callee's side: answers `offer` with the protocols of `supported` (preference order) it
/// shares, taking the role [`Reach`] allows (table in the module doc).
pub fn answer(offer: &SessionDescription, supported: &[&str], reach: Reach) -> Result<Answer, Rejection> {
    let fp = offer.fast_path().ok_or(Rejection::NoFastPath)?;
    let token = fp.token.ok_or(Rejection::NoToken)?;
    let peer = fp.addr.ok_or(Rejection::NoAddress)?;
    // RFC 4145 §4.1: no setup attribute in an offer means active.
    let offered = fp.setup.unwrap_or(Setup::Active);
    let (setup, addr, port) = match (offered, reach) {
        (Setup::HoldConn, _) => return Err(Rejection::HoldConn),
        (Setup::ActPass | Setup::Active, Reach::Listen { addr, port }) => (Setup::Passive, addr, port),
        (Setup::Active, Reach::DialOut { .. }) => return Err(Rejection::IncompatibleRoles { offered }),
        (Setup::ActPass | Setup::Passive, Reach::DialOut { addr }) | (Setup::Passive, Reach::Listen { addr, .. }) => {
            (Setup::Active, addr, DISCARD_PORT)
        }
    };
    let protocols: Vec<String> = supported.iter().filter(|s| fp.protocols.iter().any(|o| o == *s)).map(|s| (*s).to_owned()).collect();
    if protocols.is_empty() {
        return Err(Rejection::NoCommonProtocol { offered: fp.protocols });
    }
    let transport = match setup {
        Setup::Passive => Transport::Accept,
        _ => Transport::Connect(SocketAddr::new(peer, fp.port)),
    };
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == fp.index {
                Media {
                    media: m.media.clone(),
                    port,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: protocols.clone(),
                    connection: Some(addr),
                    attributes: TcpAttributes { setup: Some(setup), connection: Some(ConnectionMode::New), fp_token: Some(token) },
                }
            } else {
                // RFC 3264 §6: a declined stream keeps its line, port 0, at least one format.
                Media {
                    media: m.media.clone(),
                    port: 0,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: m.formats.clone(),
                    connection: Some(addr),
                    attributes: TcpAttributes::default(),
                }
            }
        })
        .collect();
    let sdp = SessionDescription {
        origin: origin(ntp_seconds(), addr),
        session_name: "-".into(),
        connection: None,
        timing: (0, 0),
        attributes: TcpAttributes::default(),
        media,
    };
    Ok(Answer { sdp, protocols, transport, token })
}

/// The caller's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// This side's address, for `c=`.
    pub addr: IpAddr,
    /// The listener's port, or 9 when `setup` is `active`.
    pub port: u16,
    /// The protocols offered, preference order.
    pub protocols: Vec<String>,
    /// The session's token.
    pub token: Token,
    /// `actpass` ([`Offer::new`]) or `active` ([`Offer::dial_out`]); `passive` also works.
    pub setup: Setup,
    /// `o=` session id and version: NTP seconds when made (RFC 4566 §5.2 suggests a timestamp).
    pub session_id: u64,
}

/// What the callee's answer means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The protocols the callee accepted, in its preference order; a non-empty subset of the
    /// offer's.
    pub protocols: Vec<String>,
    /// Connect to the callee (it answered `passive`) or accept on the offer's listener (it
    /// answered `active`).
    pub transport: Transport,
}

/// Why the caller cannot use an answer. The session falls back to the relay queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No usable `m=application <port> TCP` line: the callee declined it (port 0) or left it out.
    #[error("answer declines the application/TCP stream")]
    Rejected,
    /// The answer does not echo the token.
    #[error("answer has no fp-token")]
    TokenMissing,
    /// The answer's token is not the offer's.
    #[error("answer fp-token differs from the offer's")]
    TokenMismatch,
    /// The answer's `setup` is not a role the offer allowed (`actpass` and `holdconn` are never
    /// valid answers; `active` answers `passive`, and the reverse).
    #[error("answer setup:{} does not fit the offer", answered.as_str())]
    BadRole {
        /// The answer's role.
        answered: Setup,
    },
    /// `a=connection:existing`: sipmta has no earlier connection to reuse.
    #[error("answer asks to reuse an existing connection")]
    ExistingConnection,
    /// A passive answer without `c=`: nowhere to connect.
    #[error("answer has no connection address")]
    NoAddress,
    /// The answer lists a protocol that was not offered.
    #[error("answer names protocol {protocol} which was not offered")]
    NotOffered {
        /// The protocol.
        protocol: String,
    },
}

impl Offer {
    /// An `actpass` offer: `port` must be a listener that already accepts (module doc).
    pub fn new(addr: IpAddr, port: u16, protocols: &[&str], token: Token) -> Offer {
        Offer {
            addr,
            port,
            protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
            token,
            setup: Setup::ActPass,
            session_id: ntp_seconds(),
        }
    }

    /// An `active` offer with port 9, for a caller that cannot accept connections.
    pub fn dial_out(addr: IpAddr, protocols: &[&str], token: Token) -> Offer {
        Offer { port: DISCARD_PORT, setup: Setup::Active, ..Offer::new(addr, DISCARD_PORT, protocols, token) }
    }

    /// The offer as a session description.
    pub fn to_sdp(&self) -> SessionDescription {
        SessionDescription {
            origin: origin(self.session_id, self.addr),
            session_name: "-".into(),
            connection: None,
            timing: (0, 0),
            attributes: TcpAttributes::default(),
            media: vec![Media {
                media: "application".into(),
                port: self.port,
                port_count: None,
                proto: "TCP".into(),
                formats: self.protocols.clone(),
                connection: Some(self.addr),
                attributes: TcpAttributes { setup: Some(self.setup), connection: Some(ConnectionMode::New), fp_token: Some(self.token) },
            }],
        }
    }

    /// The offer's wire form (CRLF lines).
    pub fn encode(&self) -> String {
        self.to_sdp().encode()
    }

    /// Checks the callee's answer against this offer and says what to do next.
    pub fn read_answer(&self, answer: &SessionDescription) -> Result<Accepted, AnswerError> {
        let fp = answer.fast_path().ok_or(AnswerError::Rejected)?;
        match fp.token {
            None => return Err(AnswerError::TokenMissing),
            Some(t) if !t.ct_eq(&self.token) => return Err(AnswerError::TokenMismatch),
            Some(_) => {}
        }
        if fp.connection == Some(ConnectionMode::Existing) {
            return Err(AnswerError::ExistingConnection);
        }
        // RFC 4145 §4.1: no setup attribute in an answer means passive.
        let answered = fp.setup.unwrap_or(Setup::Passive);
        let fits = match (self.setup, answered) {
            (_, Setup::ActPass | Setup::HoldConn) => false,
            (Setup::ActPass, _) => true,
            (Setup::Active, a) => a == Setup::Passive,
            (Setup::Passive, a) => a == Setup::Active,
            (Setup::HoldConn, _) => false,
        };
        if !fits {
            return Err(AnswerError::BadRole { answered });
        }
        if let Some(p) = fp.protocols.iter().find(|p| !self.protocols.contains(p)) {
            return Err(AnswerError::NotOffered { protocol: p.clone() });
        }
        let transport = match answered {
            Setup::Passive => Transport::Connect(SocketAddr::new(fp.addr.ok_or(AnswerError::NoAddress)?, fp.port)),
            _ => Transport::Accept,
        };
        Ok(Accepted { protocols: fp.protocols, transport })
    }
}

/// `o=- <id> <id> IN IP4|IP6 <addr>`: no user name, the id doubling as the version.
pub(super) fn origin(id: u64, addr: IpAddr) -> Origin {
    Origin {
        username: "-".into(),
        session_id: id.to_string(),
        session_version: id.to_string(),
        net_type: "IN".into(),
        addr_type: if addr.is_ipv4() { "IP4" } else { "IP6" }.into(),
        address: addr.to_string(),
    }
}

/// Seconds since 1900 (NTP), as RFC 4566 §5.2 suggests for `o=` ids.
pub(super) fn ntp_seconds() -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + UNIX_TO_NTP
}

#[cfg(test)]
mod tests;
