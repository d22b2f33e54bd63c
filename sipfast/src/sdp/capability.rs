//! Capability descriptions: the SDP a user agent puts in its `200` to OPTIONS (RFC 3261 §11.2)
//! to say which fast-path protocols it accepts, and the prober's reading of one (issue 7 item 4,
//! "Capability answer").
//!
//! ```text
//! v=0
//! o=- 3950000000 3950000000 IN IP4 192.0.2.4
//! s=-
//! c=IN IP4 192.0.2.4
//! t=0 0
//! m=application 0 TCP smtp http
//! ```
//!
//! The media line has the form of an offer's (DESIGN.md "Fast path") with port 0: no stream is
//! being set up, as in RFC 3261 §11.2's own example (`m=audio 0 RTP/AVP ...`). It carries no
//! `a=setup`, `a=connection` or `a=fp-token`: those belong to an offer/answer exchange
//! (RFC 4145 §4, §5), and an OPTIONS answer is none. `c=` is written because RFC 4566 §5.7
//! wants one for every media line; nothing connects to it.
//!
//! Reading is lenient in what else the description holds: the protocols are the formats of
//! every `m=application <port> TCP` line, whatever the port, in order and without repeats; a
//! description without such a line (a telephone's `m=audio`) lists no protocol.

use std::net::IpAddr;

use super::negotiate::{ntp_seconds, origin};
use super::{Media, SessionDescription, TcpAttributes};

/// The capability description of a user agent accepting `protocols` (preference order), with
/// `addr` in `o=` and `c=`. `None` when `protocols` is empty: an `m=` line needs at least one
/// format (RFC 4566 §5.14), and a UA that names none should send no description at all.
pub fn capabilities(protocols: &[&str], addr: IpAddr) -> Option<SessionDescription> {
    if protocols.is_empty() {
        return None;
    }
    Some(SessionDescription {
        origin: origin(ntp_seconds(), addr),
        session_name: "-".into(),
        connection: Some(addr),
        timing: (0, 0),
        attributes: TcpAttributes::default(),
        media: vec![Media {
            media: "application".into(),
            port: 0,
            port_count: None,
            proto: "TCP".into(),
            formats: protocols.iter().map(|p| (*p).to_owned()).collect(),
            connection: None,
            attributes: TcpAttributes::default(),
        }],
    })
}

/// The fast-path protocols a capability description lists: see the module docs. Empty when it
/// has no `application`/`TCP` media line.
pub fn read_capabilities(sdp: &SessionDescription) -> Vec<String> {
    let mut protocols: Vec<String> = Vec::new();
    let lines = sdp.media.iter().filter(|m| m.media.eq_ignore_ascii_case("application") && m.proto.eq_ignore_ascii_case("TCP"));
    for format in lines.flat_map(|m| &m.formats) {
        if !protocols.contains(format) {
            protocols.push(format.clone());
        }
    }
    protocols
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text.as_bytes()).expect("parses")
    }

    #[test]
    fn the_description_lists_the_protocols_with_port_0_and_no_connection_attributes() {
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
        let text = capabilities(&["smtp", "http"], addr).expect("a description").encode();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines[1].starts_with("o=- ") && lines[1].ends_with(" IN IP4 192.0.2.4"), "{text}");
        assert_eq!(&lines[2..], ["s=-", "c=IN IP4 192.0.2.4", "t=0 0", "m=application 0 TCP smtp http", ""]);
        // What is sent reads back as what was meant, and is no offer: port 0, no fast path.
        let sdp = parse(&text);
        assert_eq!(read_capabilities(&sdp), ["smtp", "http"]);
        assert_eq!(sdp.fast_path(), None);
    }

    #[test]
    fn ipv6_and_the_empty_list() {
        let text = capabilities(&["smtp"], IpAddr::V6(Ipv6Addr::LOCALHOST)).expect("a description").encode();
        assert!(text.contains("IN IP6 ::1\r\n") && text.contains("c=IN IP6 ::1\r\n"), "{text}");
        assert_eq!(capabilities(&[], IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    }

    #[test]
    fn every_application_tcp_line_counts_whatever_its_port() {
        let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.4\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n";
        // Another implementation may answer with its listener's port, several lines, repeats,
        // or attributes: the protocols are still what it lists.
        let text = format!(
            "{head}m=audio 0 RTP/AVP 0 8\r\nm=application 40001 TCP http smtp\r\na=setup:passive\r\n\
             m=application 0 tcp smtp lmtp\r\nm=application 0 UDP quic\r\n"
        );
        assert_eq!(read_capabilities(&parse(&text)), ["http", "smtp", "lmtp"]);
        // A telephone's answer: no protocol of ours.
        assert!(read_capabilities(&parse(&format!("{head}m=audio 0 RTP/AVP 0 8 101\r\n"))).is_empty());
        assert!(read_capabilities(&parse(head)).is_empty());
    }
}
