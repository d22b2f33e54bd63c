//! The number claims of learning (`X-Fastpath-Tel`, `From: IPTELNUM-...`) on any message:
//! `claim::read`, `claim::strip`, `learn::announce` and `claim::aligned`. No panic, and:
//! - a claim read is an E.164 number of the plan (normalising it again gives itself), its From
//!   address is lower case with a domain, and a header-form claim is one `strip` removes;
//! - `strip` leaves no `X-Fastpath-Tel` header field (stripping again finds nothing), only
//!   removes octets, and keeps every other header field in order;
//! - what `announce` sends reads back as our own number (or as ambiguous when the message
//!   already has two From fields), whatever header the client wrote;
//! - `aligned` only vouches for the domain itself or a subdomain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use sipmta::learn::claim::{self, Form, Unreadable};
use sipmta_rules::NumberPlan;

/// Header field names, in order, other than `X-Fastpath-Tel`, and how many of those there are.
fn fields(message: &[u8]) -> Option<(Vec<String>, usize)> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let (mut others, mut tel) = (Vec::new(), 0);
    for h in parsed.headers() {
        if h.name.as_str().eq_ignore_ascii_case(claim::HEADER) {
            tel += 1;
        } else {
            others.push(h.name.as_str().to_ascii_lowercase());
        }
    }
    Some((others, tel))
}

fuzz_target!(|message: &[u8]| {
    let plan = NumberPlan::default();

    let read = claim::read(message, &plan);
    if let Ok(Some(c)) = &read {
        assert_eq!(plan.normalise(&c.tel.0).as_ref(), Ok(&c.tel), "{c:?}");
        if let Some(from) = &c.from {
            assert_eq!(from, &from.to_lowercase());
            assert!(sipmta_rules::domain_of(from).is_some(), "{from:?}");
        }
        if c.form == Form::Header {
            assert!(claim::strip(message).is_some(), "a header claim strip does not see");
        }
    }

    if let Some(stripped) = claim::strip(message) {
        assert!(stripped.len() < message.len());
        let (before, tel_before) = fields(message).expect("strip parsed it");
        assert!(tel_before > 0);
        assert_eq!(claim::strip(&stripped), None, "an X-Fastpath-Tel field is left:\n{}", String::from_utf8_lossy(&stripped));
        if let Some((after, tel_after)) = fields(&stripped) {
            assert_eq!(tel_after, 0);
            assert_eq!(before, after, "strip changed the other header fields");
        }
        assert!(!matches!(claim::read(&stripped, &plan), Ok(Some(c)) if c.form == Form::Header));
    }

    // What leaves our site announces our number, not one the client wrote. A message whose
    // first line is folded (SP or HTAB first) is malformed and would fold into our line.
    let ours = plan.normalise("050-1111-2222").expect("our number");
    let announced = sipmta::learn::announce(&claim::header_line(&ours), message.to_vec());
    assert!(announced.starts_with(claim::header_line(&ours).as_bytes()));
    if !message.starts_with(b" ") && !message.starts_with(b"\t") {
        match claim::read(&announced, &plan) {
            Ok(Some(c)) => assert_eq!((c.tel, c.form), (ours, Form::Header)),
            Err(Unreadable::Ambiguous("From")) => {}
            other => panic!("our announcement read as {other:?}:\n{}", String::from_utf8_lossy(&announced)),
        }
    }

    // Alignment: the first line is a domain, the second a signing domain.
    let text = String::from_utf8_lossy(message);
    let mut lines = text.lines();
    if let (Some(domain), Some(d)) = (lines.next(), lines.next()) {
        if claim::aligned(domain, d) {
            let (domain, d) = (domain.trim_end_matches('.').to_ascii_lowercase(), d.trim_end_matches('.').to_ascii_lowercase());
            assert!(domain == d || domain.ends_with(&format!(".{d}")), "{domain:?} aligned with {d:?}");
            assert!(d.contains('.'));
        }
        assert!(!claim::aligned(domain, ""));
    }
});
