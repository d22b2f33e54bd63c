//! Every pair of rules that can both apply: the stronger one decides (DESIGN.md "Routing
//! rules", strongest first).

use sipmta_rules::{AddressPart, Evidence, HeaderField, Place, Route};

use crate::support::*;

/// Evidence in every header and the text, for tests where the envelope must win.
const LOUD: &str = "X-Fastpath-Tel: 050-9000-0001\nTo: 050-9000-0002@gw.example\nSubject: KYOTO\n\n050-9000-0003\n";

#[test]
fn local_beats_everything() {
    // A number, an address-table row for the local domain, a keyword and loud headers.
    let view = message(LOUD);
    for rcpt in ["050-1234-5678@local.example", "kyoto@local.example", "bob@LOCAL.example."] {
        let d = decide_one(rcpt, Some(&view));
        assert_eq!(d.route, Route::Local, "{rcpt}: {}", d.evidence);
    }
}

#[test]
fn number_in_address_beats_address_table() {
    let d = decide_one("050-1234-5678@efg.com", None);
    assert_fast(&d, "+815012345678");
    assert!(matches!(d.evidence, Evidence::NumberInAddress { part: AddressPart::LocalPart, .. }));
}

#[test]
fn exact_address_beats_its_domain() {
    assert_fast(&decide_one("abc@efg.com", None), "+815011110001");
    assert_fast(&decide_one("abd@efg.com", None), "+815011110002");
}

#[test]
fn address_table_beats_keyword_in_address() {
    let d = decide_one("kyoto@osaka.example", None);
    assert_fast(&d, "+815011110004");
    assert!(matches!(d.evidence, Evidence::AddressTable { .. }));
}

#[test]
fn learned_loses_to_everything_operator_made() {
    // Number in the address, address table, keyword in the address: each has a learned row too.
    assert!(matches!(decide_one("050-4444-5555@learn.example", None).evidence, Evidence::NumberInAddress { .. }));
    assert!(matches!(decide_one("abc@efg.com", None).evidence, Evidence::AddressTable { .. }));
    assert!(matches!(decide_one("kyoto@learn.example", None).evidence, Evidence::KeywordInAddress { .. }));
}

#[test]
fn any_envelope_evidence_beats_headers_and_text() {
    let view = message(LOUD);
    for (rcpt, tel) in [
        ("050-1234-5678@gw.example", "+815012345678"),
        ("zz@efg.com", "+815011110002"),
        ("kyoto@nowhere.example", "+815022220001"),
        ("taro@learn.example", "+815033330001"),
    ] {
        assert_fast(&decide_one(rcpt, Some(&view)), tel);
    }
}

#[test]
fn headers_beat_the_text() {
    let view = message("Subject: KYOTOBRANCHOFFICE\n\n050-1234-5678\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+815022220002");
}

#[test]
fn x_fastpath_tel_beats_the_other_headers() {
    // Written last in the message, read first.
    let view = message("Subject: KYOTO\nTo: 050-9000-0002@gw.example\nX-Fastpath-Tel: 050-9000-0001\n\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+815090000001");
    let view = message("Subject: KYOTO\nCc: 050-9000-0003@gw.example\nTo: 050-9000-0002@gw.example\n\n");
    assert_fast(&decide_one("someone@nowhere.example", Some(&view)), "+815090000002");
    let view = message("Subject: KYOTO\nCc: 050-9000-0003@gw.example\n\n");
    assert_fast(&decide_one("someone@nowhere.example", Some(&view)), "+815090000003");
}

#[test]
fn within_one_value_the_leftmost_wins() {
    let at = |text: &str| {
        let view = message(&format!("Subject: {text}\n\n"));
        decide_one("someone@nowhere.example", Some(&view))
    };
    assert_fast(&at("KYOTO or 050-9000-0001"), "+815022220001");
    assert_fast(&at("050-9000-0001 or KYOTO"), "+815090000001");
    assert_fast(&at("kyotobranchoffice, kyoto"), "+815022220002");
    let view = message("Subject: hi\n\nfirst KYOTO then 050-9000-0001\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_eq!(d.evidence.to_string(), "keyword \"KYOTO\" (Kyoto branch) in the text at byte 6 -> +815022220001");
}

#[test]
fn a_number_wins_a_tie_with_a_keyword_at_the_same_place() {
    let mut data = data();
    data.keywords.push(("050-9000-0001".into(), entry("+815022229999", None)));
    let tables = sipmta_rules::Tables::build(data).expect("builds");
    let view = message("Subject: 050-9000-0001\n\n");
    let d = sipmta_rules::decide(&rcpts(&["a@nowhere.example"]), &is_local, Some(&view), &tables).remove(0);
    assert_fast(&d, "+815090000001");
    assert!(matches!(d.evidence, Evidence::NumberInMessage { place: Place::Header(HeaderField::Subject), .. }));
}
