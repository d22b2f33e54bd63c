//! Offer/answer tests: the RFC 4145 role table, 488 cases, and the caller's checks on answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::sdp::{FastPathMedia, SdpError};

const CALLER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const CALLEE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));

fn token() -> Token {
    Token::from_bytes(*b"0123456789abcdef")
}

fn offer() -> Offer {
    Offer { session_id: 3_950_000_000, ..Offer::new(CALLER, 40001, &["smtp", "http"], token()) }
}

fn listen() -> Reach {
    Reach::Listen { addr: CALLEE, port: 25025 }
}

fn dial_out() -> Reach {
    Reach::DialOut { addr: CALLEE }
}

/// An offer over the wire: encoded and parsed, as the callee sees it.
fn received(offer: &Offer) -> SessionDescription {
    SessionDescription::parse(offer.encode().as_bytes()).expect("offer parses")
}

fn with_setup(setup: Option<Setup>) -> SessionDescription {
    let mut sdp = received(&offer());
    sdp.media[0].attributes.setup = setup;
    sdp
}

fn fp(answer: &Answer) -> FastPathMedia {
    answer.sdp.fast_path().expect("answer has the fast path")
}

#[test]
fn offer_is_designs_shape() {
    let text = offer().encode();
    assert_eq!(
        text,
        "v=0\r\no=- 3950000000 3950000000 IN IP4 203.0.113.10\r\ns=-\r\nt=0 0\r\n\
         m=application 40001 TCP smtp http\r\nc=IN IP4 203.0.113.10\r\n\
         a=setup:actpass\r\na=connection:new\r\na=fp-token:MDEyMzQ1Njc4OWFiY2RlZg\r\n"
    );
    let active = Offer::dial_out(CALLER, &["smtp"], token());
    assert_eq!((active.port, active.setup), (9, Setup::Active));
    assert!(active.encode().contains("m=application 9 TCP smtp\r\n"));
    assert!(active.encode().contains("a=setup:active\r\n"));
}

#[test]
fn actpass_offer_to_a_listening_callee_gets_passive_with_its_port() {
    let a = answer(&received(&offer()), &["smtp"], listen()).expect("answer");
    assert_eq!(a.transport, Transport::Accept);
    assert_eq!(a.transport.role(), Role::Passive);
    assert_eq!(a.protocols, ["smtp"]);
    assert_eq!(a.token, token());
    let f = fp(&a);
    assert_eq!((f.port, f.addr, f.setup), (25025, Some(CALLEE), Some(Setup::Passive)));
    assert_eq!((f.connection, f.token), (Some(ConnectionMode::New), Some(token())));
    assert_eq!(f.protocols, ["smtp"]);
    let text = a.sdp.encode();
    assert!(text.contains("m=application 25025 TCP smtp\r\nc=IN IP4 198.51.100.20\r\na=setup:passive\r\n"), "{text}");
    assert!(text.contains("a=fp-token:MDEyMzQ1Njc4OWFiY2RlZg\r\n"), "{text}");
}

#[test]
fn actpass_offer_to_a_callee_behind_nat_gets_active_with_port_9() {
    let a = answer(&received(&offer()), &["smtp"], dial_out()).expect("answer");
    assert_eq!(a.transport, Transport::Connect(SocketAddr::new(CALLER, 40001)));
    assert_eq!(a.transport.role(), Role::Active);
    let f = fp(&a);
    assert_eq!((f.port, f.setup), (9, Some(Setup::Active)));
}

#[test]
fn role_table() {
    use Setup::*;
    let caller = Transport::Connect(SocketAddr::new(CALLER, 40001));
    for (offered, reach, expected) in [
        (Some(ActPass), listen(), Ok((Passive, 25025, Transport::Accept))),
        (Some(ActPass), dial_out(), Ok((Active, 9, caller))),
        (Some(Active), listen(), Ok((Passive, 25025, Transport::Accept))),
        (Some(Active), dial_out(), Err(Rejection::IncompatibleRoles { offered: Active })),
        // No setup attribute in an offer means active (RFC 4145 §4.1).
        (None, listen(), Ok((Passive, 25025, Transport::Accept))),
        (None, dial_out(), Err(Rejection::IncompatibleRoles { offered: Active })),
        (Some(Passive), listen(), Ok((Active, 9, caller))),
        (Some(Passive), dial_out(), Ok((Active, 9, caller))),
        (Some(HoldConn), listen(), Err(Rejection::HoldConn)),
        (Some(HoldConn), dial_out(), Err(Rejection::HoldConn)),
    ] {
        let got = answer(&with_setup(offered), &["smtp"], reach).map(|a| {
            let f = fp(&a);
            (f.setup.expect("answer has setup"), f.port, a.transport)
        });
        assert_eq!(got, expected, "offer {offered:?}, {reach:?}");
    }
}

#[test]
fn common_protocols_follow_the_callees_preference() {
    let a = answer(&received(&offer()), &["lmtp", "http", "smtp"], listen()).expect("answer");
    assert_eq!(a.protocols, ["http", "smtp"]);
    assert_eq!(fp(&a).protocols, ["http", "smtp"]);
}

#[test]
fn rejections_are_488() {
    let no_common = answer(&received(&offer()), &["lmtp"], listen()).expect_err("nothing in common");
    assert_eq!(no_common, Rejection::NoCommonProtocol { offered: vec!["smtp".into(), "http".into()] });
    assert_eq!(no_common.sip_status(), 488);

    let audio =
        SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
            .expect("parses");
    assert_eq!(answer(&audio, &["smtp"], listen()), Err(Rejection::NoFastPath));

    let mut udp = received(&offer());
    udp.media[0].proto = "UDP".into();
    assert_eq!(answer(&udp, &["smtp"], listen()), Err(Rejection::NoFastPath));

    let mut no_token = received(&offer());
    no_token.media[0].attributes.fp_token = None;
    assert_eq!(answer(&no_token, &["smtp"], listen()), Err(Rejection::NoToken));

    let mut no_addr = received(&offer());
    no_addr.media[0].connection = None;
    assert_eq!(answer(&no_addr, &["smtp"], listen()), Err(Rejection::NoAddress));

    for r in [Rejection::NoFastPath, Rejection::HoldConn, Rejection::IncompatibleRoles { offered: Setup::Active }] {
        assert_eq!(r.sip_status(), 488);
    }
}

#[test]
fn session_level_token_and_address_count() {
    let mut sdp = received(&offer());
    sdp.attributes.fp_token = sdp.media[0].attributes.fp_token.take();
    sdp.connection = sdp.media[0].connection.take();
    let a = answer(&sdp, &["smtp"], dial_out()).expect("answer");
    assert_eq!(a.token, token());
    assert_eq!(a.transport, Transport::Connect(SocketAddr::new(CALLER, 40001)));
}

#[test]
fn ipv6_both_ways() {
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let callee = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let o = Offer::new(v6, 40001, &["smtp"], token());
    assert!(o.encode().contains("c=IN IP6 2001:db8::1\r\n"));
    let a = answer(&received(&o), &["smtp"], Reach::DialOut { addr: callee }).expect("answer");
    assert_eq!(a.transport, Transport::Connect(SocketAddr::new(v6, 40001)));
    let text = a.sdp.encode();
    assert!(text.contains("o=- ") && text.contains(" IN IP6 2001:db8::2\r\n"), "{text}");
    assert!(text.contains("c=IN IP6 2001:db8::2\r\n"), "{text}");
}

#[test]
fn other_media_lines_are_declined_with_port_0() {
    let mut sdp = received(&offer());
    let audio = Media { media: "audio".into(), port: 4000, proto: "RTP/AVP".into(), formats: vec!["0".into()], ..sdp.media[0].clone() };
    sdp.media.insert(0, audio);
    let a = answer(&sdp, &["smtp"], listen()).expect("answer");
    assert_eq!(a.sdp.media.len(), 2);
    assert_eq!((a.sdp.media[0].media.as_str(), a.sdp.media[0].port, a.sdp.media[0].attributes.setup), ("audio", 0, None));
    assert_eq!(fp(&a).index, 1);
}

#[test]
fn answer_and_read_answer_agree_over_the_wire() {
    for reach in [listen(), dial_out()] {
        let o = offer();
        let a = answer(&received(&o), &["smtp", "http"], reach).expect("answer");
        let wire = SessionDescription::parse(a.sdp.encode().as_bytes()).expect("answer parses");
        let accepted = o.read_answer(&wire).expect("caller accepts");
        assert_eq!(accepted.protocols, a.protocols);
        match (accepted.transport, a.transport) {
            (Transport::Connect(to), Transport::Accept) => assert_eq!(to, SocketAddr::new(CALLEE, 25025)),
            (Transport::Accept, Transport::Connect(to)) => assert_eq!(to, SocketAddr::new(CALLER, 40001)),
            other => panic!("both sides took the same role: {other:?}"),
        }
        assert_ne!(accepted.transport.role(), a.transport.role());
    }
}

/// A passive answer as the caller receives it, to edit per case.
fn passive_answer() -> SessionDescription {
    answer(&received(&offer()), &["smtp"], listen()).expect("answer").sdp
}

#[test]
fn read_answer_checks() {
    let o = offer();
    let mut mismatch = passive_answer();
    mismatch.media[0].attributes.fp_token = Some(Token::from_bytes([1; 16]));
    assert_eq!(o.read_answer(&mismatch), Err(AnswerError::TokenMismatch));

    let mut missing = passive_answer();
    missing.media[0].attributes.fp_token = None;
    assert_eq!(o.read_answer(&missing), Err(AnswerError::TokenMissing));

    let mut foreign = passive_answer();
    foreign.media[0].formats = vec!["smtp".into(), "ftp".into()];
    assert_eq!(o.read_answer(&foreign), Err(AnswerError::NotOffered { protocol: "ftp".into() }));

    let mut declined = passive_answer();
    declined.media[0].port = 0;
    assert_eq!(o.read_answer(&declined), Err(AnswerError::Rejected));

    let mut existing = passive_answer();
    existing.media[0].attributes.connection = Some(ConnectionMode::Existing);
    assert_eq!(o.read_answer(&existing), Err(AnswerError::ExistingConnection));

    let mut no_addr = passive_answer();
    no_addr.media[0].connection = None;
    assert_eq!(o.read_answer(&no_addr), Err(AnswerError::NoAddress));

    for bad in [Setup::ActPass, Setup::HoldConn] {
        let mut sdp = passive_answer();
        sdp.media[0].attributes.setup = Some(bad);
        assert_eq!(o.read_answer(&sdp), Err(AnswerError::BadRole { answered: bad }));
    }

    // No setup in an answer means passive (RFC 4145 §4.1).
    let mut silent = passive_answer();
    silent.media[0].attributes.setup = None;
    assert_eq!(o.read_answer(&silent).map(|a| a.transport), Ok(Transport::Connect(SocketAddr::new(CALLEE, 25025))));
}

#[test]
fn read_answer_holds_the_offer_to_its_role() {
    let active_offer = Offer::dial_out(CALLER, &["smtp"], token());
    let mut both_active = passive_answer();
    both_active.media[0].attributes.setup = Some(Setup::Active);
    assert_eq!(active_offer.read_answer(&both_active), Err(AnswerError::BadRole { answered: Setup::Active }));
    assert!(active_offer.read_answer(&passive_answer()).is_ok());

    let passive_offer = Offer { setup: Setup::Passive, ..offer() };
    assert_eq!(passive_offer.read_answer(&passive_answer()), Err(AnswerError::BadRole { answered: Setup::Passive }));
    assert_eq!(passive_offer.read_answer(&both_active).map(|a| a.transport), Ok(Transport::Accept));
}

#[test]
fn a_malformed_answer_is_a_parse_error_first() {
    let text = passive_answer().encode().replace("a=setup:passive", "a=setup:sideways");
    assert!(matches!(SessionDescription::parse(text.as_bytes()), Err(SdpError::Line { .. })));
}
