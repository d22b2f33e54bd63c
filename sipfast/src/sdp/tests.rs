//! Parser and encoder tests: DESIGN's offer, the levels of `c=` and attributes, what is ignored
//! and what is an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const TOKEN: &str = "MDEyMzQ1Njc4OWFiY2RlZg";

fn token() -> Token {
    Token::from_bytes(*b"0123456789abcdef")
}

/// DESIGN.md's offer with the session lines around it.
fn design_offer() -> String {
    format!(
        "v=0\r\no=- 3950000000 3950000000 IN IP4 203.0.113.10\r\ns=-\r\nt=0 0\r\n\
         m=application 40001 TCP smtp http\r\nc=IN IP4 203.0.113.10\r\n\
         a=setup:actpass\r\na=connection:new\r\na=fp-token:{TOKEN}\r\n"
    )
}

fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    SessionDescription::parse(text.as_bytes())
}

fn line_err(text: &str) -> (usize, LineProblem) {
    match parse(text) {
        Err(SdpError::Line { line, problem }) => (line, problem),
        other => panic!("expected a line error for {text:?}, got {other:?}"),
    }
}

#[test]
fn design_offer_parses_into_its_fast_path() {
    let sdp = parse(&design_offer()).expect("parses");
    assert_eq!(sdp.origin.address, "203.0.113.10");
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.timing, (0, 0));
    let fp = sdp.fast_path().expect("fast path");
    assert_eq!(
        fp,
        FastPathMedia {
            index: 0,
            port: 40001,
            protocols: vec!["smtp".into(), "http".into()],
            addr: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10))),
            setup: Some(Setup::ActPass),
            connection: Some(ConnectionMode::New),
            token: Some(token()),
        }
    );
    // Encoding gives the same bytes back.
    assert_eq!(sdp.encode(), design_offer());
}

#[test]
fn ipv6_connection() {
    let text = design_offer().replace("c=IN IP4 203.0.113.10", "c=IN IP6 2001:db8::10");
    let fp = parse(&text).expect("parses").fast_path().expect("fast path");
    assert_eq!(fp.addr, Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10))));
    assert_eq!(parse(&text).expect("parses").encode(), text);
}

#[test]
fn session_level_values_apply_unless_the_media_level_overrides_them() {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=setup:passive\r\na=fp-token:{TOKEN}\r\n\
         m=application 5000 TCP smtp\r\n"
    );
    let fp = parse(&text).expect("parses").fast_path().expect("fast path");
    assert_eq!(fp.addr, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(fp.setup, Some(Setup::Passive));
    assert_eq!(fp.token, Some(token()));
    assert_eq!(fp.connection, None);

    let overridden = format!("{text}c=IN IP6 ::1\r\na=setup:active\r\n");
    let fp = parse(&overridden).expect("parses").fast_path().expect("fast path");
    assert_eq!(fp.addr, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(fp.setup, Some(Setup::Active));
}

#[test]
fn every_setup_and_connection_value() {
    for setup in [Setup::Active, Setup::Passive, Setup::ActPass, Setup::HoldConn] {
        let text = design_offer().replace("setup:actpass", &format!("setup:{}", setup.as_str()));
        assert_eq!(parse(&text).expect("parses").fast_path().expect("fp").setup, Some(setup));
    }
    let text = design_offer().replace("connection:new", "connection:existing");
    assert_eq!(parse(&text).expect("parses").fast_path().expect("fp").connection, Some(ConnectionMode::Existing));
}

#[test]
fn the_fast_path_is_the_first_application_tcp_line_with_a_port() {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         m=application 7000 UDP smtp\r\n\
         m=application 0 TCP smtp\r\n\
         m=Application 7001 tcp smtp\r\na=fp-token:{TOKEN}\r\n"
    );
    let sdp = parse(&text).expect("parses");
    assert_eq!(sdp.media.len(), 4);
    let fp = sdp.fast_path().expect("fast path");
    assert_eq!((fp.index, fp.port), (3, 7001));

    let none = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n";
    assert_eq!(parse(none).expect("parses").fast_path(), None);
}

#[test]
fn unknown_lines_and_attributes_are_ignored() {
    let text = design_offer()
        .replace("s=-\r\n", "s=-\r\ni=a session\r\nu=http://example.com/\r\ne=a@example.com\r\nb=AS:64\r\n")
        .replace("a=setup:actpass\r\n", "b=CT:1\r\na=sendrecv\r\na=setup:actpass\r\nx=whatever\r\na=fingerprint:SHA-256 AB:CD\r\n");
    let sdp = parse(&text).expect("parses");
    assert_eq!(sdp, parse(&design_offer()).expect("parses"));
}

#[test]
fn bare_lf_and_blank_lines_are_accepted() {
    let lf = design_offer().replace("\r\n", "\n");
    assert_eq!(parse(&lf), parse(&design_offer()));
    let blank = design_offer().replace("t=0 0\r\n", "t=0 0\r\n\r\n") + "\r\n";
    assert_eq!(parse(&blank), parse(&design_offer()));
}

#[test]
fn port_count_and_later_time_descriptions() {
    let text = design_offer().replace("40001 TCP", "40001/2 TCP").replace("t=0 0\r\n", "t=0 0\r\nr=7d 1h 0 25h\r\nt=5 6\r\n");
    let sdp = parse(&text).expect("parses");
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.timing, (0, 0));
    assert_eq!(parse(&sdp.encode()), Ok(sdp));
}

#[test]
fn whole_body_errors() {
    assert_eq!(SessionDescription::parse(b"v=0\r\n\xff\r\n"), Err(SdpError::NotUtf8));
    assert_eq!(SessionDescription::parse(&vec![b'a'; MAX_SDP + 1]), Err(SdpError::TooLarge));
    for text in ["", "\r\n", "v=1\r\n", " v=0\r\n", "o=- 1 1 IN IP4 x\r\nv=0\r\n"] {
        assert_eq!(parse(text), Err(SdpError::Version), "{text:?}");
    }
    assert_eq!(parse("v=0\r\ns=-\r\nt=0 0\r\n"), Err(SdpError::Missing("o=")));
    assert_eq!(parse("v=0\r\no=- 1 1 IN IP4 x\r\nt=0 0\r\n"), Err(SdpError::Missing("s=")));
    assert_eq!(parse("v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\n"), Err(SdpError::Missing("t=")));
}

#[test]
fn malformed_lines_are_typed_errors() {
    let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    let m = "m=application 9 TCP smtp\r\n";
    for (tail, line, problem) in [
        ("c=IN IP4 ::1\r\n", 5, LineProblem::Connection),
        ("c=IN IP6 192.0.2.1\r\n", 5, LineProblem::Connection),
        ("c=IN IP4 mx.example\r\n", 5, LineProblem::Connection),
        ("c=IN IP4 224.2.1.1/127\r\n", 5, LineProblem::Connection),
        ("c=ATM NSAP 47.0\r\n", 5, LineProblem::Connection),
        ("c=IN IP4\r\n", 5, LineProblem::Connection),
        ("c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n", 6, LineProblem::Duplicate("c=")),
        ("m=application 70000 TCP smtp\r\n", 5, LineProblem::Media),
        ("m=application +9 TCP smtp\r\n", 5, LineProblem::Media),
        ("m=application 9/x TCP smtp\r\n", 5, LineProblem::Media),
        ("m=application 9 TCP\r\n", 5, LineProblem::Media),
        ("m=application\r\n", 5, LineProblem::Media),
        ("a=setup:both\r\n", 5, LineProblem::Setup),
        ("a=setup\r\n", 5, LineProblem::Setup),
        ("a=setup:ACTIVE\r\n", 5, LineProblem::Setup),
        ("a=setup:active\r\na=setup:passive\r\n", 6, LineProblem::Duplicate("a=setup")),
        ("a=connection:old\r\n", 5, LineProblem::ConnectionAttr),
        ("a=fp-token:short\r\n", 5, LineProblem::Token),
        ("a=fp-token:\r\n", 5, LineProblem::Token),
        (&format!("a=fp-token:{TOKEN}==\r\n"), 5, LineProblem::Token),
        (&format!("a=fp-token:{TOKEN}\r\na=fp-token:{TOKEN}\r\n"), 6, LineProblem::Duplicate("a=fp-token")),
        (&format!("{m}c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n"), 7, LineProblem::Duplicate("c=")),
        (&format!("{m}a=setup:active\r\na=setup:active\r\n"), 7, LineProblem::Duplicate("a=setup")),
        (&format!("{m}o=- 1 1 IN IP4 192.0.2.1\r\n"), 6, LineProblem::OutOfOrder),
        (&format!("{m}t=0 0\r\n"), 6, LineProblem::OutOfOrder),
        ("v=0\r\n", 5, LineProblem::OutOfOrder),
        ("s=again\r\n", 5, LineProblem::Duplicate("s=")),
        ("t=0\r\n", 5, LineProblem::Timing),
        ("t=0 0 0\r\n", 5, LineProblem::Timing),
        ("t=-1 0\r\n", 5, LineProblem::Timing),
        ("no equals sign\r\n", 5, LineProblem::Syntax),
        ("A=1\r\n", 5, LineProblem::Syntax),
        ("=\r\n", 5, LineProblem::Syntax),
        ("a\r\n", 5, LineProblem::Syntax),
        ("s\0=x\r\n", 5, LineProblem::ControlChar),
        ("i=a\rb\r\n", 5, LineProblem::ControlChar),
    ] {
        assert_eq!(line_err(&format!("{head}{tail}")), (line, problem), "{tail:?}");
    }
    assert_eq!(line_err("v=0\r\no=- 1 1 IN IP4\r\n"), (2, LineProblem::Origin));
    // The second a=setup at *another* level is no duplicate.
    assert!(parse(&format!("{head}a=setup:active\r\n{m}a=setup:passive\r\n")).is_ok());
}

#[test]
fn parse_of_encode_is_the_identity() {
    let texts = [
        design_offer(),
        design_offer().replace("c=IN IP4 203.0.113.10", "c=IN IP6 2001:db8::10"),
        format!(
            "v=0\n o=  a   1 2 IN  IP4 h\ns= spaced\tname \nc=IN IP4 192.0.2.1\nt=1  2\na=setup:holdconn\n\
             m=audio 4/3 RTP/AVP 0 8\nm=application 0 TCP x y\nc=IN IP6 ::\na=connection:existing\na=fp-token:{TOKEN}\n"
        )
        .replace("\n o=", "\no="),
    ];
    for text in texts {
        let sdp = parse(&text).expect("parses");
        let again = parse(&sdp.encode()).expect("encoding parses");
        assert_eq!(again, sdp, "{text:?}");
        assert!(sdp.encode().lines().all(|l| !l.contains('\n')) && sdp.encode().ends_with("\r\n"));
    }
}
