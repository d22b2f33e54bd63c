//! The fast-path SDP parser and offer/answer on any body: no panic; encoding a parsed body parses
//! back to the same value; any answer the callee side produces is one the offerer accepts, with
//! the opposite TCP role.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sipfast::fp1::Token;
use sipfast::sdp::{self, Offer, Reach, SessionDescription, Setup};

const CALLEE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
const CALLEE_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fuzz_target!(|body: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(body) else { return };
    let again = SessionDescription::parse(sdp.encode().as_bytes()).expect("an encoded description parses");
    assert_eq!(again, sdp, "parse(encode(d)) != d");

    // As an offer, to a callee that listens and to one behind NAT.
    for reach in [Reach::Listen { addr: CALLEE_V4, port: 25025 }, Reach::DialOut { addr: CALLEE_V6 }] {
        let Ok(answer) = sdp::answer(&sdp, &["smtp", "http"], reach) else { continue };
        let fp = sdp.fast_path().expect("an answered offer has a fast path");
        let offer = Offer {
            addr: fp.addr.expect("an answered offer has an address"),
            port: fp.port,
            protocols: fp.protocols.clone(),
            token: fp.token.expect("an answered offer has a token"),
            setup: fp.setup.unwrap_or(Setup::Active),
            session_id: 1,
        };
        let wire = SessionDescription::parse(answer.sdp.encode().as_bytes()).expect("the answer parses");
        let accepted = offer.read_answer(&wire).expect("the offerer accepts the answer");
        assert_eq!(accepted.protocols, answer.protocols);
        assert!(!answer.protocols.is_empty());
        assert_ne!(accepted.transport.role(), answer.transport.role(), "both sides took one role");
    }

    // As an answer to a fixed offer.
    let offer = Offer::new(CALLEE_V4, 40001, &["smtp", "http"], Token::from_bytes([7; 16]));
    if let Ok(accepted) = offer.read_answer(&sdp) {
        assert!(accepted.protocols.iter().all(|p| p == "smtp" || p == "http"));
    }
});
