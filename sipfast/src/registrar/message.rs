//! SIP message helpers of the registrar/proxy core, on rsip (the parser rsipstack ships as
//! `rsipstack::sip`): parsing with comma lists split, the Via bookkeeping of RFC 3261 §18.2,
//! building the core's own responses (§8.2.6), and turning URIs into network targets.
//!
//! Invariant: after [`parse`], every Via, Route and Record-Route header holds one value, so
//! "the top Via" and "the top Route" are simply the first such header.

use std::net::{IpAddr, SocketAddr};

use rsipstack::sip::headers::typed;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{self as rsip, Header, Headers, Request, Response, SipMessage, StatusCode};

pub(crate) use crate::ua::Transport;

/// One end of a hop: a transport and a socket address. For TCP the address names the
/// connection (its remote end), which the shell reuses while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) transport: Transport,
    pub(crate) addr: SocketAddr,
}

impl Peer {
    pub(crate) fn new(transport: Transport, addr: SocketAddr) -> Self {
        Peer { transport, addr }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.transport == Transport::Tcp { "tcp" } else { "udp" };
        write!(f, "{proto}:{}", self.addr)
    }
}

/// Parses one message and splits comma-separated Via, Route and Record-Route values into one
/// header each (RFC 3261 §7.3.1 makes the two forms equivalent).
pub(crate) fn parse(data: &[u8]) -> Result<SipMessage, rsip::Error> {
    let mut message = SipMessage::try_from(data)?;
    let headers = match &mut message {
        SipMessage::Request(r) => &mut r.headers,
        SipMessage::Response(r) => &mut r.headers,
    };
    let mut split = Vec::with_capacity(headers.len());
    for header in std::mem::take(&mut headers.0) {
        match header {
            Header::Via(v) if v.value().contains(',') => {
                split.extend(split_values(v.value()).into_iter().map(|s| Header::Via(rsip::Via::new(s))))
            }
            Header::Route(v) if v.value().contains(',') => {
                split.extend(split_values(v.value()).into_iter().map(|s| Header::Route(rsip::Route::new(s))))
            }
            Header::RecordRoute(v) if v.value().contains(',') => {
                split.extend(split_values(v.value()).into_iter().map(|s| Header::RecordRoute(rsip::RecordRoute::new(s))))
            }
            other => split.push(other),
        }
    }
    headers.0 = split;
    Ok(message)
}

/// Splits a header value on the commas that are outside quotes and angle brackets.
pub(crate) fn split_values(value: &str) -> Vec<String> {
    let (mut values, mut current, mut depth, mut quoted) = (Vec::new(), String::new(), 0usize, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                values.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values.push(current.trim().to_string());
    values.retain(|v| !v.is_empty());
    values
}

/// The top Via, typed.
pub(crate) fn top_via(headers: &Headers) -> Option<typed::Via> {
    headers.iter().find_map(|h| match h {
        Header::Via(v) => v.typed().ok(),
        _ => None,
    })
}

/// Removes the top Via (a proxy does this to a response before passing it on, §16.7 step 3).
pub(crate) fn pop_via(headers: &mut Headers) {
    headers.remove_first(|h| matches!(h, Header::Via(_)));
}

/// The branch of a Via, when it carries the RFC 3261 magic cookie (§8.1.1.7); older branches
/// cannot identify a transaction.
pub(crate) fn branch(via: &typed::Via) -> Option<String> {
    via.branch().map(ToString::to_string).filter(|b| b.starts_with("z9hG4bK"))
}

/// Records where a request really came from in its top Via: `received` when the source IP
/// differs from the sent-by host (RFC 3261 §18.2.1), and `rport` always (RFC 3581 §4, as the
/// reference config's `force_rport()`), so responses and the user agent's own view of its
/// address follow the real path.
pub(crate) fn stamp_received(headers: &mut Headers, from: SocketAddr) {
    let Some(slot) = headers.iter_mut().find(|h| matches!(h, Header::Via(_))) else { return };
    let Header::Via(untyped) = slot else { return };
    let Ok(mut via) = untyped.typed() else { return };
    via.params.retain(|p| !matches!(p, rsip::Param::Received(_) | rsip::Param::Rport(_)));
    if via.uri.host_with_port.host != rsip::Host::IpAddr(from.ip()) {
        via.params.push(rsip::Param::Received(rsip::param::Received::new(from.ip().to_string())));
    }
    via.params.push(rsip::Param::Rport(Some(from.port())));
    *slot = Header::Via(via.into());
}

/// Where a response goes by its top Via (RFC 3261 §18.2.2, RFC 3581 §4): the `received`
/// address (else the sent-by host, which must then be an IP), the `rport` port (else the
/// sent-by port, else 5060), over the Via's transport.
pub(crate) fn via_target(via: &typed::Via) -> Option<Peer> {
    let ip = match via.received() {
        Some(Ok(ip)) => ip,
        _ => ip_of(&via.uri.host_with_port.host)?,
    };
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.uri.host_with_port.port.as_ref().map_or(5060, |p| p.value()),
    };
    Some(Peer::new(transport_of(via.transport)?, SocketAddr::new(ip, port)))
}

/// Where a request for `uri` goes: its host, which must be an IP (this proxy resolves no
/// names; contacts and Record-Routes on a single machine are addresses), its port or 5060,
/// and `transport=tcp` or UDP (RFC 3263 §4.1 without DNS). `sips:` is not served.
pub(crate) fn uri_target(uri: &rsip::Uri) -> Option<Peer> {
    if matches!(uri.scheme, Some(rsip::Scheme::Sips) | Some(rsip::Scheme::Other(_))) {
        return None;
    }
    let ip = ip_of(&uri.host_with_port.host)?;
    let port = uri.host_with_port.port.as_ref().map_or(5060, |p| p.value());
    let transport = uri
        .params
        .iter()
        .find_map(|p| match p {
            rsip::Param::Transport(t) => transport_of(*t),
            _ => None,
        })
        .unwrap_or(Transport::Udp);
    Some(Peer::new(transport, SocketAddr::new(ip, port)))
}

fn ip_of(host: &rsip::Host) -> Option<IpAddr> {
    match host {
        rsip::Host::IpAddr(ip) => Some(*ip),
        rsip::Host::Domain(d) => d.to_string().trim_matches(['[', ']']).parse().ok(),
    }
}

fn transport_of(transport: rsip::Transport) -> Option<Transport> {
    match transport {
        rsip::Transport::Udp => Some(Transport::Udp),
        rsip::Transport::Tcp => Some(Transport::Tcp),
        _ => None,
    }
}

/// The To tag of a message, if any.
pub(crate) fn to_tag(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::To(to) => to.tag().ok().flatten().map(|t| t.to_string()),
        _ => None,
    })
}

/// The CSeq number and method.
pub(crate) fn cseq(headers: &Headers) -> Option<(u32, rsip::Method)> {
    headers.iter().find_map(|h| match h {
        Header::CSeq(c) => Some((c.seq().ok()?, c.method().ok()?)),
        _ => None,
    })
}

/// The Call-ID value.
pub(crate) fn call_id(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::CallId(c) => Some(c.value().to_string()),
        _ => None,
    })
}

/// A response to `req` built by the core itself (RFC 3261 §8.2.6.2): the request's Via
/// headers, From, To (with `to_tag` added unless it has one), Call-ID and CSeq, then `extra`,
/// `Server`, and an empty body. `reason` replaces the standard phrase when given.
pub(crate) fn reply(req: &Request, code: u16, reason: Option<&str>, to_tag: Option<&str>, extra: Vec<Header>, server: &str) -> Response {
    let mut headers = Headers::default();
    for header in req.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(header.clone()),
            // 100 Trying carries the Timestamp back (§8.2.6.1).
            Header::Timestamp(_) if code == 100 => headers.push(header.clone()),
            // 100 Trying is hop by hop and creates no dialog: no tag (§8.2.6.2).
            Header::To(to) => match to_tag {
                Some(tag) if code > 100 && to.tag().ok().flatten().is_none() => {
                    headers.push(Header::To(rsip::To::new(format!("{};tag={tag}", to.value()))));
                }
                _ => headers.push(header.clone()),
            },
            _ => {}
        }
    }
    headers.extend(extra);
    headers.push(Header::Server(rsip::Server::new(server)));
    headers.push(Header::ContentLength(rsip::ContentLength::new("0")));
    Response {
        status_code: StatusCode::from(code),
        wire_reason: reason.map(str::to_string),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// A response on the wire, with the reason phrase it arrived with (rsip's own serialiser
/// writes the standard phrase; a proxy passes the UAS's text on).
pub(crate) fn response_bytes(resp: &Response) -> Vec<u8> {
    let reason = resp.wire_reason.as_deref().unwrap_or_else(|| resp.status_code.text());
    let mut bytes = format!("SIP/2.0 {} {reason}\r\n{}\r\n", resp.status_code.code(), resp.headers).into_bytes();
    bytes.extend_from_slice(&resp.body);
    bytes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+815012345678@sip.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb\r\n\
        Route: <sip:127.0.0.1:5060;lr>, <sip:10.0.0.9;lr>\r\n\
        From: <sip:a@sip.example>;tag=1\r\nTo: <sip:b@sip.example>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
        Timestamp: 54\r\nContent-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match parse(INVITE.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn lists_are_split_and_received_stamped() {
        let mut req = invite();
        assert_eq!(req.headers.iter().filter(|h| matches!(h, Header::Via(_))).count(), 2);
        assert_eq!(req.headers.iter().filter(|h| matches!(h, Header::Route(_))).count(), 2);
        stamp_received(&mut req.headers, "192.0.2.7:40000".parse().unwrap());
        let via = top_via(&req.headers).unwrap();
        assert_eq!(branch(&via).as_deref(), Some("z9hG4bKa"));
        assert_eq!(via_target(&via), Some(Peer::new(Transport::Udp, "192.0.2.7:40000".parse().unwrap())));
        pop_via(&mut req.headers);
        let second = top_via(&req.headers).unwrap();
        assert_eq!(via_target(&second), Some(Peer::new(Transport::Tcp, "10.0.0.2:5060".parse().unwrap())));
    }

    #[test]
    fn replies_copy_the_dialog_headers_and_keep_their_reason() {
        let req = invite();
        let trying = response_bytes(&reply(&req, 100, None, Some("t"), vec![], "sipmta"));
        let text = String::from_utf8(trying).unwrap();
        assert!(text.starts_with("SIP/2.0 100 Trying\r\n"), "{text}");
        assert!(text.contains("Timestamp: 54") && text.contains("To: <sip:b@sip.example>\r\n"), "{text}");
        let not_here = String::from_utf8(response_bytes(&reply(&req, 404, Some("Not here"), Some("t"), vec![], "s"))).unwrap();
        assert!(not_here.starts_with("SIP/2.0 404 Not here\r\n"), "{not_here}");
        assert!(not_here.contains("To: <sip:b@sip.example>;tag=t") && !not_here.contains("Timestamp"), "{not_here}");
        assert!(not_here.contains("Server: s\r\nContent-Length: 0\r\n\r\n"), "{not_here}");
    }

    #[test]
    fn uri_targets() {
        let uri = |s: &str| rsip::Uri::try_from(s).unwrap();
        assert_eq!(
            uri_target(&uri("sip:a@127.0.0.1:5070;transport=tcp")),
            Some(Peer::new(Transport::Tcp, "127.0.0.1:5070".parse().unwrap()))
        );
        assert_eq!(uri_target(&uri("sip:127.0.0.1;lr")), Some(Peer::new(Transport::Udp, "127.0.0.1:5060".parse().unwrap())));
        assert_eq!(uri_target(&uri("sip:a@example.com")), None);
        assert_eq!(split_values(r#""a, b" <sip:x>;p=1 , <sip:y,z>"#), vec![r#""a, b" <sip:x>;p=1"#, "<sip:y,z>"]);
    }
}
