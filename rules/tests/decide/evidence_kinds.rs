//! One test per kind of evidence, with the sentence an operator reads.

use sipmta_rules::{AddressPart, Evidence, Examined, HeaderField, MessageView, Place, Route};

use crate::support::*;

#[test]
fn local_domain_and_unqualified_are_local() {
    let d = decide_one("bob@Local.Example", None);
    assert_eq!(d.route, Route::Local);
    assert_eq!(d.evidence.to_string(), "local domain Local.Example");
    let d = decide_one("postmaster", None);
    assert_eq!((d.route, d.evidence), (Route::Local, Evidence::Unqualified));
}

#[test]
fn number_in_the_local_part() {
    let d = decide_one("050-0000-9999@gw.example", None);
    assert_fast(&d, "+815000009999");
    assert_eq!(d.evidence.to_string(), "number 050-0000-9999 in the recipient's local part -> +815000009999");
}

#[test]
fn number_in_the_domain() {
    let d = decide_one("taro@05000009999.example", None);
    assert_fast(&d, "+815000009999");
    assert!(matches!(d.evidence, Evidence::NumberInAddress { part: AddressPart::Domain, .. }));
}

#[test]
fn full_width_and_international_numbers_in_addresses() {
    assert_fast(&decide_one("０５０－１２３４－５６７８@gw.example", None), "+815012345678");
    assert_fast(&decide_one("+815012345678@gw.example", None), "+815012345678");
    assert_fast(&decide_one("tel.080.1234.5678@gw.example", None), "+818012345678");
    // Too long, too short, or inside a longer digit run: not a number.
    for rcpt in ["1050-1234-5678@gw.example", "050-1234-567@gw.example", "05012345678901@gw.example"] {
        assert_eq!(decide_one(rcpt, None).route, Route::Relay, "{rcpt}");
    }
}

#[test]
fn address_table_exact_domain_and_subdomain() {
    let d = decide_one("ABC@EFG.com", None);
    assert_fast(&d, "+815011110001");
    assert_eq!(d.evidence.to_string(), "address table entry abc@efg.com (Abc) -> +815011110001");
    let d = decide_one("someone@efg.com", None);
    assert_eq!(d.evidence.to_string(), "address table entry efg.com (Kyoto office) -> +815011110002");
    let d = decide_one("someone@tokyo.branch.example", None);
    assert_eq!(d.evidence.to_string(), "address table entry .branch.example -> +815011110003");
    assert_eq!(decide_one("someone@branch.example", None).route, Route::Relay, ".branch.example is for subdomains only");
}

#[test]
fn keyword_in_the_address() {
    let d = decide_one("Kyoto@nowhere.example", None);
    assert_fast(&d, "+815022220001");
    assert_eq!(d.evidence.to_string(), "keyword \"KYOTO\" (Kyoto branch), written \"Kyoto\", in the recipient address -> +815022220001");
    assert_fast(&decide_one("kyotobranchoffice@nowhere.example", None), "+815022220002");
    assert_eq!(decide_one("tokyotower@nowhere.example", None).route, Route::Relay, "KYOTO is glued to letters there");
}

#[test]
fn learned_number() {
    let d = decide_one("Taro@learn.example", None);
    assert_fast(&d, "+815033330001");
    assert_eq!(d.evidence.to_string(), "learned table entry taro@learn.example -> +815033330001");
}

#[test]
fn number_or_keyword_in_each_header() {
    for (header, field) in [
        ("X-Fastpath-Tel: +81-50-7777-8888", HeaderField::XFastpathTel),
        ("To: Sales <050-7777-8888@gw.example>", HeaderField::To),
        ("Cc: \"050 7777 8888\" <x@y.example>", HeaderField::Cc),
        ("Subject: =?UTF-8?B?MDUw77yNNzc3N++8jTg4ODg=?=", HeaderField::Subject),
    ] {
        let view = message(&format!("{header}\n\nno evidence here\n"));
        let d = decide_one("someone@nowhere.example", Some(&view));
        assert_fast(&d, "+815077778888");
        assert!(matches!(d.evidence, Evidence::NumberInMessage { place: Place::Header(f), .. } if f == field), "{header}: {}", d.evidence);
    }
    let view = message("Subject: fw: KyotoBranchOffice report\n\nbody\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+815022220002");
    assert_eq!(d.evidence.to_string(), "keyword \"KYOTOBRANCHOFFICE\", written \"KyotoBranchOffice\", in Subject -> +815022220002");
}

#[test]
fn number_or_keyword_in_the_text() {
    let view = message("Subject: hello\n\nPlease call ０８０－１２３４－５６７８ today.\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+818012345678");
    assert_eq!(d.evidence.to_string(), "number ０８０－１２３４－５６７８ in the text at byte 12 -> +818012345678");
    let view = message("Subject: hello\n\nこちらは京都支店です\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+815022220003");
    assert_eq!(d.evidence.to_string(), "keyword \"京都支店\" in the text at byte 12 -> +815022220003");
}

#[test]
fn nothing_found_says_what_was_read() {
    let d = decide_one("someone@nowhere.example", None);
    assert_eq!(d.route, Route::Relay);
    assert_eq!(d.evidence.to_string(), "no number, table entry or keyword for this recipient (message not examined)");
    let view = message("Subject: hello\n\nnothing to see\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_eq!(d.evidence, Evidence::NoEvidence { examined: Examined::Message { text_bytes: 15, truncated: false } });
    // A number past the bound is not seen, and the evidence says the text was cut.
    let long = format!("Subject: hello\n\n{}050-1234-5678\n", "x ".repeat(100));
    let view = MessageView::parse(long.as_bytes(), 64);
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_eq!(d.evidence, Evidence::NoEvidence { examined: Examined::Message { text_bytes: 64, truncated: true } });
}

#[test]
fn iso_2022_jp_mail_is_decoded_before_scanning() {
    // "京都支店" in ISO-2022-JP, as Japanese mail clients send it.
    let raw = b"Subject: =?ISO-2022-JP?B?GyRCNX5FVDtZRTkbKEI=?=\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\nhello\r\n";
    let view = MessageView::parse(raw, sipmta_rules::DEFAULT_SCAN_LIMIT);
    let d = decide_one("someone@nowhere.example", Some(&view));
    assert_fast(&d, "+815022220003");
    assert!(matches!(d.evidence, Evidence::KeywordInMessage { place: Place::Header(HeaderField::Subject), .. }));
    let body = b"Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B5~ET;YE9\x1b(B\r\n";
    let d = decide_one("someone@nowhere.example", Some(&MessageView::parse(body, 1024)));
    assert_fast(&d, "+815022220003");
}

#[test]
fn evidence_is_stored_as_json_and_read_back() {
    let view = message("Subject: KYOTO\n\n");
    let d = decide_one("someone@nowhere.example", Some(&view));
    let json = serde_json::to_string(&d).expect("serialises");
    assert_eq!(
        json,
        r#"{"route":{"route":"fast","tel":"+815022220001"},"evidence":{"kind":"keyword_in_message","place":{"header":"Subject"},"keyword":"KYOTO","matched":"KYOTO","name":"Kyoto branch","tel":"+815022220001"}}"#
    );
    assert_eq!(serde_json::from_str::<sipmta_rules::Decision>(&json).expect("reads back"), d);
}
