//! Tests of the DSN module as a whole: what [`build`] writes, read back with [`parse`] and with
//! mail-parser, and the NOTIFY policy. Parser-only cases are at the bottom of `parse.rs`.

#![allow(clippy::unwrap_used)]

use mail_parser::{MessageParser, MimeHeaders};
use sipmta_store::{Body, Envelope, Notify, Origin, QueueId, Ret};

use super::*;

const MESSAGE: &[u8] = b"Message-ID: <orig.1@example.org>\r\n\
From: Alice <alice@example.org>\r\n\
To: bob@example.net\r\n\
Subject: Hello\r\n\
\r\n\
Body line one.\r\n\
Body line two.\r\n";

/// 2023-11-14 22:13:20 UTC.
const NOW: u64 = 1_700_000_000;

fn envelope(ret: Option<Ret>) -> Envelope {
    Envelope {
        id: QueueId(0x1234),
        received: NOW - 3600,
        sender: "alice@example.org".into(),
        env_id: Some("env-42".into()),
        ret,
        body: Body::SevenBit,
        smtputf8: false,
        size: MESSAGE.len() as u64,
        origin: Origin::default(),
        // build reads recipients from the report, not from here.
        recipients: Vec::new(),
    }
}

fn rcpt(addr: &str, action: Action) -> RecipientReport {
    RecipientReport {
        final_recipient: addr.into(),
        original_recipient: None,
        action,
        status: match action {
            Action::Failed => "5.1.1",
            Action::Delayed => "4.4.1",
            _ => "2.0.0",
        }
        .into(),
        remote_mta: None,
        diagnostic: None,
        last_attempt: Some(NOW - 60),
        will_retry_until: None,
    }
}

fn build_with(env: &Envelope, message: &[u8], recipients: Vec<RecipientReport>, max_returned: usize) -> Vec<u8> {
    let report = Report { reporting_mta: "mta.example.com", envelope: env, message, recipients, max_returned };
    build(&report, NOW)
}

fn build_one(env: &Envelope, recipients: Vec<RecipientReport>) -> Vec<u8> {
    build_with(env, MESSAGE, recipients, 1 << 20)
}

/// The Content-Type (`type/subtype`) of each child of the top-level multipart, and the first
/// part's parameters as mail-parser sees them.
fn part_types(dsn: &[u8]) -> Vec<String> {
    let msg = MessageParser::new().parse(dsn).unwrap();
    let ids = msg.parts[0].sub_parts().unwrap().to_vec();
    ids.iter()
        .map(|&id| {
            let ct = msg.parts[id as usize].content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect()
}

/// The body of the `n`th child of the top-level multipart.
fn part_body(dsn: &[u8], n: usize) -> Vec<u8> {
    let msg = MessageParser::new().parse(dsn).unwrap();
    let id = msg.parts[0].sub_parts().unwrap()[n];
    msg.parts[id as usize].contents().to_vec()
}

fn text(dsn: &[u8]) -> String {
    String::from_utf8(dsn.to_vec()).unwrap()
}

/// Every line ends with CRLF, no CR or LF stands alone, no line exceeds 998 octets.
fn assert_wire_clean(dsn: &[u8]) {
    assert!(dsn.ends_with(b"\r\n"));
    for line in dsn[..dsn.len() - 1].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("bare LF before {:?}", String::from_utf8_lossy(line)));
        assert!(!line.contains(&b'\r'), "bare CR in {:?}", String::from_utf8_lossy(line));
        assert!(line.len() <= 998, "line of {} octets", line.len());
    }
}

#[test]
fn failed_report_round_trips_with_diagnostic_and_remote_mta() {
    let env = envelope(None);
    let mut r = rcpt("bob@example.net", Action::Failed);
    r.remote_mta = Some("mx.example.net".into());
    r.diagnostic = Some("550 5.1.1 <bob@example.net>: user unknown".into());
    r.original_recipient = Some("rfc822;bob@example.net".into());
    let dsn = build_one(&env, vec![r]);
    assert_wire_clean(&dsn);

    let t = text(&dsn);
    assert!(t.starts_with("From: Mail Delivery System <MAILER-DAEMON@mta.example.com>\r\n"));
    assert!(t.contains("\r\nTo: <alice@example.org>\r\n"));
    assert!(t.contains("\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
    assert!(t.contains("\r\nAuto-Submitted: auto-replied\r\n"));
    assert!(t.contains("\r\nIn-Reply-To: <orig.1@example.org>\r\n"));
    assert!(t.contains("\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    assert!(t.contains("\r\nArrival-Date: Tue, 14 Nov 2023 21:13:20 +0000\r\n"));
    assert!(t.contains("\r\nLast-Attempt-Date: Tue, 14 Nov 2023 22:12:20 +0000\r\n"));
    assert!(t.contains("\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown\r\n"));
    let explained = text(&part_body(&dsn, 0));
    assert!(explained.starts_with("This is the mail system at host mta.example.com.\r\n"));
    assert!(explained.contains("<bob@example.net>: host mx.example.net said: 550 5.1.1 <bob@example.net>: user\r\n    unknown\r\n"));

    let parsed = parse(&dsn).unwrap();
    assert_eq!(parsed.original_envelope_id.as_deref(), Some("env-42"));
    assert_eq!(parsed.reporting_mta.as_deref(), Some("mta.example.com"));
    assert_eq!(
        parsed.recipients,
        vec![ParsedRecipient {
            original_recipient: Some("bob@example.net".into()),
            final_recipient: "bob@example.net".into(),
            action: ParsedAction::Known(Action::Failed),
            status: "5.1.1".into(),
            diagnostic: Some("550 5.1.1 <bob@example.net>: user unknown".into()),
            remote_mta: Some("mx.example.net".into()),
        }]
    );
}

#[test]
fn delayed_report_round_trips_with_will_retry_until() {
    let env = envelope(Some(Ret::Full));
    let mut r = rcpt("bob@example.net", Action::Delayed);
    r.diagnostic = Some("451 4.4.1 try again later".into());
    r.remote_mta = Some("mx.example.net".into());
    r.will_retry_until = Some(NOW + 4 * 86400);
    let dsn = build_one(&env, vec![r]);
    assert_wire_clean(&dsn);
    let t = text(&dsn);
    assert!(t.contains("\r\nSubject: Delayed Mail (still being retried)\r\n"));
    assert!(t.contains("\r\nWill-Retry-Until: Sat, 18 Nov 2023 22:13:20 +0000\r\n"));
    assert!(t.contains("Still trying until Sat, 18 Nov 2023 22:13:20 +0000."));

    let p = parse(&dsn).unwrap();
    assert_eq!(p.recipients.len(), 1);
    assert_eq!(p.recipients[0].action, ParsedAction::Known(Action::Delayed));
    assert_eq!(p.recipients[0].status, "4.4.1");
    assert_eq!(p.recipients[0].diagnostic.as_deref(), Some("451 4.4.1 try again later"));
}

#[test]
fn will_retry_until_is_written_for_delayed_only() {
    let mut r = rcpt("bob@example.net", Action::Failed);
    r.will_retry_until = Some(NOW);
    assert!(!text(&build_one(&envelope(None), vec![r])).contains("Will-Retry-Until"));
}

#[test]
fn delivered_and_relayed_reports_round_trip() {
    let env = envelope(None);
    for (action, subject) in [
        (Action::Delivered, "Successful Mail Delivery Report"),
        (Action::Relayed, "Mail Relayed (no further notifications)"),
        (Action::Expanded, "Successful Mail Delivery Report"),
    ] {
        let dsn = build_one(&env, vec![rcpt("bob@example.net", action)]);
        assert_wire_clean(&dsn);
        assert!(text(&dsn).contains(&format!("\r\nSubject: {subject}\r\n")), "{action}");
        let p = parse(&dsn).unwrap();
        assert_eq!(p.recipients[0].action, ParsedAction::Known(action));
        assert_eq!(p.recipients[0].status, "2.0.0");
        assert_eq!(p.recipients[0].diagnostic, None);
        assert_eq!(p.recipients[0].remote_mta, None);
    }
}

#[test]
fn multiple_recipients_keep_their_order_orcpt_and_the_envid() {
    let env = envelope(None);
    let mut a = rcpt("a@example.net", Action::Failed);
    a.original_recipient = Some("rfc822;list@example.org".into());
    let b = rcpt("b@example.net", Action::Failed);
    let mut c = rcpt("c@example.net", Action::Delivered);
    c.original_recipient = Some("rfc822;c-orig@example.org".into());
    let dsn = build_one(&env, vec![a, b, c]);
    let t = text(&dsn);
    assert!(t.contains("\r\nOriginal-Envelope-Id: env-42\r\n"));
    assert!(t.contains("\r\nOriginal-Recipient: rfc822; list@example.org\r\n"));
    // Mixed actions: the worst one names the report.
    assert!(t.contains("\r\nSubject: Undelivered Mail Returned to Sender\r\n"));

    let p = parse(&dsn).unwrap();
    assert_eq!(p.original_envelope_id.as_deref(), Some("env-42"));
    let got: Vec<_> =
        p.recipients.iter().map(|r| (r.final_recipient.as_str(), r.original_recipient.as_deref(), r.action.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("a@example.net", Some("list@example.org"), ParsedAction::Known(Action::Failed)),
            ("b@example.net", None, ParsedAction::Known(Action::Failed)),
            ("c@example.net", Some("c-orig@example.org"), ParsedAction::Known(Action::Delivered)),
        ]
    );
}

#[test]
fn no_envid_means_no_original_envelope_id() {
    let mut env = envelope(None);
    env.env_id = None;
    let dsn = build_one(&env, vec![rcpt("bob@example.net", Action::Failed)]);
    assert!(!text(&dsn).contains("Original-Envelope-Id"));
    assert_eq!(parse(&dsn).unwrap().original_envelope_id, None);
}

#[test]
fn the_report_is_a_valid_multipart_report() {
    let dsn = build_one(&envelope(None), vec![rcpt("bob@example.net", Action::Failed)]);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(part_types(&dsn), ["text/plain", "message/delivery-status", "message/rfc822"]);
    assert_eq!(msg.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
    assert!(msg.body_text(0).unwrap().contains("This is the mail system at host mta.example.com."));
    assert!(dsn.is_ascii());
}

#[test]
fn message_ids_are_unique() {
    let env = envelope(None);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let dsn = build_one(&env, vec![rcpt("bob@example.net", Action::Failed)]);
            MessageParser::new().parse(&dsn).unwrap().message_id().unwrap().to_owned()
        })
        .collect();
    assert!(ids[0].ends_with("@mta.example.com"));
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
}

#[test]
fn ret_full_and_absent_ret_return_the_whole_message() {
    for ret in [Some(Ret::Full), None] {
        let dsn = build_one(&envelope(ret), vec![rcpt("bob@example.net", Action::Failed)]);
        assert_eq!(part_types(&dsn)[2], "message/rfc822");
        assert_eq!(part_body(&dsn, 2), MESSAGE, "{ret:?}");
    }
}

#[test]
fn ret_hdrs_returns_the_header_section_only() {
    let dsn = build_one(&envelope(Some(Ret::Hdrs)), vec![rcpt("bob@example.net", Action::Failed)]);
    assert_eq!(part_types(&dsn)[2], "text/rfc822-headers");
    let body = text(&part_body(&dsn, 2));
    assert!(body.contains("Subject: Hello\r\n"));
    assert!(!body.contains("Body line"));
    assert!(text(&dsn).contains("Content-Description: Undelivered Message Headers\r\n"));
}

#[test]
fn a_message_above_max_returned_gives_headers_only() {
    let env = envelope(Some(Ret::Full));
    let dsn = build_with(&env, MESSAGE, vec![rcpt("bob@example.net", Action::Failed)], MESSAGE.len() - 1);
    assert_eq!(part_types(&dsn)[2], "text/rfc822-headers");
    let dsn = build_with(&env, MESSAGE, vec![rcpt("bob@example.net", Action::Failed)], MESSAGE.len());
    assert_eq!(part_types(&dsn)[2], "message/rfc822");
}

#[test]
fn delay_and_success_reports_return_headers_only() {
    for action in [Action::Delayed, Action::Delivered, Action::Relayed, Action::Expanded] {
        let dsn = build_one(&envelope(Some(Ret::Full)), vec![rcpt("bob@example.net", action)]);
        assert_eq!(part_types(&dsn)[2], "text/rfc822-headers", "{action}");
        assert!(!text(&dsn).contains("Body line"));
    }
}

#[test]
fn a_message_with_an_overlong_line_comes_back_as_headers_only() {
    let mut message = b"Subject: long\r\n\r\n".to_vec();
    message.extend(vec![b'x'; 1500]);
    message.extend_from_slice(b"\r\n");
    let dsn = build_with(&envelope(None), &message, vec![rcpt("bob@example.net", Action::Failed)], 1 << 20);
    assert_eq!(part_types(&dsn)[2], "text/rfc822-headers");
    assert_wire_clean(&dsn);
}

#[test]
fn bare_line_ends_in_the_original_are_normalised() {
    let message = b"Subject: lf\nX-A: 1\r\n\nbody\rmore\n";
    let dsn = build_with(&envelope(None), message, vec![rcpt("bob@example.net", Action::Failed)], 1 << 20);
    assert_wire_clean(&dsn);
    assert_eq!(part_body(&dsn, 2), b"Subject: lf\r\nX-A: 1\r\n\r\nbody\r\nmore\r\n");
}

#[test]
fn smtputf8_reports_use_the_global_types_and_utf8_addresses() {
    let mut env = envelope(None);
    env.smtputf8 = true;
    env.sender = "j\u{f6}rg@b\u{fc}cher.example".into();
    let mut r = rcpt("\u{7528}\u{6237}@example.net", Action::Failed);
    r.original_recipient = Some("utf-8;\u{7528}\u{6237}+tag@example.net".into());
    r.diagnostic = Some("550 5.1.1 \u{7528}\u{6237} unknown".into());
    let message = "From: j\u{f6}rg@b\u{fc}cher.example\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nHallo\r\n".as_bytes();
    let dsn = build_with(&env, message, vec![r], 1 << 20);
    assert_wire_clean(&dsn);
    assert_eq!(part_types(&dsn), ["text/plain", "message/global-delivery-status", "message/global"]);
    let t = text(&dsn);
    assert!(t.contains("report-type=global-delivery-status;"));
    assert!(t.contains("\r\nTo: <j\u{f6}rg@b\u{fc}cher.example>\r\n"));
    assert!(t.contains("Content-Type: text/plain; charset=utf-8\r\n"));
    assert!(t.contains("\r\nFinal-Recipient: utf-8; \u{7528}\u{6237}@example.net\r\n"));
    // RFC 6533 §3: `+` is escaped even in utf-8-addr-unitext.
    assert!(t.contains("\r\nOriginal-Recipient: utf-8; \u{7528}\u{6237}\\x{2B}tag@example.net\r\n"));
    assert!(t.contains("Content-Transfer-Encoding: 8bit\r\n"));

    let p = parse(&dsn).unwrap();
    assert_eq!(p.recipients[0].final_recipient, "\u{7528}\u{6237}@example.net");
    assert_eq!(p.recipients[0].original_recipient.as_deref(), Some("\u{7528}\u{6237}+tag@example.net"));
    assert_eq!(p.recipients[0].diagnostic.as_deref(), Some("550 5.1.1 \u{7528}\u{6237} unknown"));

    // Headers only: message/global-headers.
    let dsn = build_with(&env, message, vec![rcpt("a@example.net", Action::Delayed)], 1 << 20);
    assert_eq!(part_types(&dsn)[2], "message/global-headers");
}

#[test]
fn a_non_ascii_address_in_an_ascii_report_is_escaped() {
    // Cannot come from SMTP without SMTPUTF8, but the report must stay US-ASCII regardless.
    let dsn = build_one(&envelope(None), vec![rcpt("j\u{f6}rg@example.net", Action::Failed)]);
    assert!(dsn.is_ascii());
    assert!(text(&dsn).contains("\r\nFinal-Recipient: utf-8; j\\x{F6}rg@example.net\r\n"));
    assert_eq!(parse(&dsn).unwrap().recipients[0].final_recipient, "j\u{f6}rg@example.net");
}

#[test]
fn no_line_exceeds_998_octets_with_a_5000_character_diagnostic() {
    let worded = format!("550 5.7.1 {}", vec!["rejected"; 600].join(" "));
    let solid = format!("550 5.7.1 {}", "x".repeat(5000));
    for diagnostic in [worded.clone(), solid] {
        let mut r = rcpt("bob@example.net", Action::Failed);
        r.diagnostic = Some(diagnostic.clone());
        r.remote_mta = Some("mx.example.net".into());
        let dsn = build_one(&envelope(None), vec![r]);
        assert_wire_clean(&dsn);
        let got = parse(&dsn).unwrap().recipients[0].diagnostic.clone().unwrap();
        assert!(got.len() >= diagnostic.len());
        assert_eq!(got.replace(' ', ""), diagnostic.replace(' ', ""));
    }
    // Folded at spaces, a worded diagnostic comes back exactly.
    let mut r = rcpt("bob@example.net", Action::Failed);
    r.diagnostic = Some(worded.clone());
    assert_eq!(parse(&build_one(&envelope(None), vec![r])).unwrap().recipients[0].diagnostic, Some(worded));
}

#[test]
fn line_breaks_in_replies_cannot_inject_fields() {
    let mut r = rcpt("bob@example.net", Action::Failed);
    r.diagnostic = Some("550 no\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822; evil@example.org".into());
    r.remote_mta = Some("mx\r\nX-Evil: 1".into());
    let mut env = envelope(None);
    env.env_id = Some("id\nReporting-MTA: dns; evil".into());
    let dsn = build_one(&env, vec![r]);
    assert_wire_clean(&dsn);
    let t = text(&dsn);
    assert!(!t.contains("\r\nAction: delivered"));
    assert!(!t.contains("\r\nX-Evil"));
    let p = parse(&dsn).unwrap();
    assert_eq!(p.recipients.len(), 1);
    assert_eq!(p.recipients[0].action, ParsedAction::Known(Action::Failed));
    assert_eq!(p.reporting_mta.as_deref(), Some("mta.example.com"));
}

#[test]
fn our_own_reasons_are_not_labelled_smtp() {
    let mut r = rcpt("bob@example.net", Action::Failed);
    r.diagnostic = Some("connection refused by mx.example.net".into());
    r.status = "bogus".into();
    let t = text(&build_one(&envelope(None), vec![r]));
    assert!(t.contains("\r\nDiagnostic-Code: X-Sipmta; connection refused by mx.example.net\r\n"));
    // A malformed status falls back to the class of the action.
    assert!(t.contains("\r\nStatus: 5.0.0\r\n"));
}

/// Random strings (controls, line breaks, non-ASCII, long runs) in every caller-supplied field
/// must never break the wire invariants.
#[test]
fn random_field_values_keep_the_wire_invariants() {
    let mut rng = Rng(0x5eed);
    let alphabet: Vec<char> = "ab \t\r\n:;<>=+\\-.@\u{0}\u{7f}\u{e9}\u{7528}\u{2028}".chars().collect();
    let random = |rng: &mut Rng| -> String {
        let len = rng.below(1500);
        (0..len).map(|_| if rng.below(4) == 0 { alphabet[rng.below(alphabet.len())] } else { 'x' }).collect()
    };
    for round in 0..60 {
        let mut env = envelope(if round % 2 == 0 { None } else { Some(Ret::Hdrs) });
        env.smtputf8 = round % 3 == 0;
        env.sender = random(&mut rng);
        env.env_id = Some(random(&mut rng));
        let mut r = rcpt(&format!("r{}", random(&mut rng)), [Action::Failed, Action::Delayed, Action::Relayed][round % 3]);
        r.original_recipient = Some(random(&mut rng));
        r.diagnostic = Some(random(&mut rng));
        r.remote_mta = Some(random(&mut rng));
        r.status = random(&mut rng);
        r.will_retry_until = Some(rng.next());
        let message = random(&mut rng);
        let report = Report {
            reporting_mta: "mta.example.com",
            envelope: &env,
            message: message.as_bytes(),
            recipients: vec![r],
            max_returned: 1 << 20,
        };
        let dsn = build(&report, rng.next());
        assert_wire_clean(&dsn);
        assert_eq!(parse(&dsn).map(|p| p.recipients.len()), Some(1), "round {round}");
    }
}

#[test]
fn wanted_follows_notify() {
    use Action::*;
    let notify = |success, failure, delay, never| Some(Notify { success, failure, delay, never });
    let all = [Failed, Delayed, Delivered, Relayed, Expanded];
    let table: [(Option<Notify>, [bool; 5]); 8] = [
        // Absent NOTIFY: FAILURE,DELAY (RFC 3461 §4.1, our choice).
        (None, [true, true, false, false, false]),
        (notify(false, false, false, true), [false; 5]),
        (notify(true, false, false, false), [false, false, true, true, true]),
        (notify(false, true, false, false), [true, false, false, false, false]),
        (notify(false, false, true, false), [false, true, false, false, false]),
        (notify(true, true, true, false), [true; 5]),
        // NEVER wins even if a malformed record also sets the others.
        (notify(true, true, true, true), [false; 5]),
        // An empty list cannot come from SMTP; it asks for nothing.
        (notify(false, false, false, false), [false; 5]),
    ];
    for (n, expected) in table {
        for (action, want) in all.into_iter().zip(expected) {
            assert_eq!(wanted(n, action), want, "{n:?} {action}");
        }
    }
}

#[test]
fn never_a_dsn_to_the_null_sender() {
    assert!(!may_send_to(""));
    assert!(!may_send_to("<>"));
    assert!(may_send_to("alice@example.org"));
    assert!(may_send_to("MAILER-DAEMON@example.org"));
}

#[test]
fn actions_read_their_keywords_case_insensitively() {
    for a in [Action::Failed, Action::Delayed, Action::Delivered, Action::Relayed, Action::Expanded] {
        assert_eq!(Action::from_keyword(&a.as_str().to_uppercase()), Some(a));
    }
    assert_eq!(Action::from_keyword("bounced"), None);
}

/// xorshift64*: deterministic, dependency-free noise for the property and fuzz-style tests.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
