//! Building a DSN: a [`Report`] in, the complete RFC 5322 message out.
//!
//! The message is an RFC 6522 (formerly RFC 3462) `multipart/report` with three parts: a text
//! a person can read, the RFC 3464 machine-readable status, and the original message or its
//! header section. MIME is written by hand rather than with mail-builder because every byte
//! matters here: the status part must stay plain text fields, and the returned message must go
//! back unencoded (RFC 2046 §5.2.1 forbids base64 for `message/rfc822`).
//!
//! For SMTPUTF8 mail the RFC 6533 global types are used (`message/global-delivery-status`,
//! `message/global`, `message/global-headers`) and UTF-8 stays raw; otherwise everything we
//! write ourselves is US-ASCII. Parts that carry 8-bit octets (a returned 8BITMIME body, say)
//! are labelled `8bit`, and the caller must then send the report with BODY=8BITMIME (RFC 6152).

use std::sync::atomic::{AtomicU64, Ordering};

use mail_parser::MessageParser;
use sipmta_store::Ret;

use super::wire::{HARD, clean, date, fold, lines, utf8_addr_text, wrap, write_limited};
use super::{Action, RecipientReport, Report};

/// Makes Message-IDs and boundaries unique between reports built in the same second for the
/// same queue id (say, a failure for one recipient and a success for another).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The order in which actions are explained, and the precedence for the Subject: bad news first.
const ORDER: [Action; 5] = [Action::Failed, Action::Delayed, Action::Delivered, Action::Expanded, Action::Relayed];

/// Build the complete DSN message for `report`, dated `now` (Unix seconds).
///
/// The caller decides whether a report is due ([`super::wanted`], [`super::may_send_to`]);
/// this function reports on every recipient it is given. The result has CRLF line ends, no
/// line over 998 octets, and is addressed to the envelope's sender.
pub fn build(report: &Report, now: u64) -> Vec<u8> {
    let env = report.envelope;
    let global = env.smtputf8;
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let host = clean(report.reporting_mta, global).replace(' ', "");

    let text = explanation(report, &host, global);
    let status = delivery_status(report, &host, global);
    let original = returned(report, global);
    let boundary = boundary(&format!("=_dsn.{}.{now:X}.{seq:X}", env.id), &[&text, &status, &original.body]);

    let mut out = Vec::with_capacity(original.body.len() + text.len() + status.len() + 2048);
    fold(&format!("From: Mail Delivery System <MAILER-DAEMON@{host}>"), &mut out);
    fold(&format!("To: <{}>", clean(&env.sender, global)), &mut out);
    fold(&format!("Subject: {}", subject(&report.recipients)), &mut out);
    fold(&format!("Date: {}", date(now)), &mut out);
    fold(&format!("Message-ID: <{now:X}.{}.{seq:X}.dsn@{host}>", env.id), &mut out);
    // RFC 3834 §3.1.5: an automatic response refers to the message it answers.
    if let Some(id) = original_message_id(report.message, global) {
        fold(&format!("In-Reply-To: <{id}>"), &mut out);
        fold(&format!("References: <{id}>"), &mut out);
    }
    // RFC 3834 §5: marks the report as automatic so responders and filters do not answer it.
    fold("Auto-Submitted: auto-replied", &mut out);
    fold("MIME-Version: 1.0", &mut out);
    // RFC 6522 §3: report-type names the subtype of the second part, so a global report says
    // `global-delivery-status` (as RFC 6533 implementations do).
    let report_type = if global { "global-delivery-status" } else { "delivery-status" };
    fold(&format!("Content-Type: multipart/report; report-type={report_type}; boundary=\"{boundary}\""), &mut out);
    // RFC 2045 §6.4: a multipart carrying 8-bit parts is itself 8bit.
    if [&text, &status, &original.body].iter().any(|p| !p.is_ascii()) {
        fold("Content-Transfer-Encoding: 8bit", &mut out);
    }
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated delivery status notification.\r\n");
    // Each delimiter is preceded by its own CRLF (RFC 2046 §5.1.1), so every part keeps its
    // final line end: the returned message comes back byte for byte.

    let charset = if global { "utf-8" } else { "us-ascii" };
    part(&mut out, &boundary, "Notification", &format!("text/plain; charset={charset}"), &text);
    let status_type = if global { "message/global-delivery-status" } else { "message/delivery-status" };
    part(&mut out, &boundary, "Delivery report", status_type, &status);
    part(&mut out, &boundary, original.description, original.content_type, &original.body);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Write one body part: delimiter, part header, body (which ends with CRLF).
pub(super) fn part(out: &mut Vec<u8>, boundary: &str, description: &str, content_type: &str, body: &[u8]) {
    out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    fold(&format!("Content-Description: {description}"), out);
    fold(&format!("Content-Type: {content_type}"), out);
    // RFC 2045 §6: label 8-bit octets; 7bit is the default and needs no field.
    if !body.is_ascii() {
        fold("Content-Transfer-Encoding: 8bit", out);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A boundary that occurs in none of the parts (RFC 2046 §5.1.1), at most 70 characters.
pub(super) fn boundary(base: &str, parts: &[&[u8]]) -> String {
    let mut n = 0u32;
    loop {
        let candidate = format!("{base}.{n}");
        if !parts.iter().any(|p| memchr::memmem::find(p, candidate.as_bytes()).is_some()) {
            return candidate;
        }
        n += 1;
    }
}

/// The Subject: the most important action present decides.
fn subject(recipients: &[RecipientReport]) -> &'static str {
    let first = ORDER.into_iter().find(|a| recipients.iter().any(|r| r.action == *a));
    match first {
        Some(Action::Failed) => "Undelivered Mail Returned to Sender",
        Some(Action::Delayed) => "Delayed Mail (still being retried)",
        Some(Action::Delivered | Action::Expanded) => "Successful Mail Delivery Report",
        Some(Action::Relayed) => "Mail Relayed (no further notifications)",
        None => "Mail Delivery Status Report",
    }
}

/// What a person reads first about recipients with this action.
fn intro(action: Action) -> &'static str {
    match action {
        Action::Failed => {
            "Your message could not be delivered to the recipients below. This is a permanent error: \
             the mail system has given up on them."
        }
        Action::Delayed => {
            "Your message has not been delivered yet to the recipients below. The mail system keeps \
             trying, so you need not send it again; you will be told if it finally fails."
        }
        Action::Delivered => "Your message was delivered to the recipients below.",
        Action::Expanded => {
            "Your message was delivered to the recipients below, which are lists or aliases that \
             pass it on to further addresses."
        }
        Action::Relayed => {
            "Your message was passed on to the recipients below. Their mail system does not send \
             delivery reports, so you will hear nothing more about them, even if delivery fails later."
        }
    }
}

/// Part 1: the human-readable explanation (RFC 6522 §3: it should explain the report to a
/// person who cannot read the status part). Recipients are grouped by action, each with the
/// answer we got.
fn explanation(report: &Report, host: &str, global: bool) -> Vec<u8> {
    let mut out = Vec::new();
    wrap(&format!("This is the mail system at host {host}."), "", &mut out);
    for action in ORDER {
        let mut recipients = report.recipients.iter().filter(|r| r.action == action).peekable();
        if recipients.peek().is_none() {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        wrap(intro(action), "", &mut out);
        out.extend_from_slice(b"\r\n");
        for r in recipients {
            let remote = r.remote_mta.as_deref().map(|h| clean(h, global)).filter(|h| !h.is_empty());
            let said = r.diagnostic.as_deref().map(|d| clean(d, global)).filter(|d| !d.is_empty());
            let detail = match (remote, said) {
                (Some(h), Some(d)) => format!("host {h} said: {d}"),
                (None, Some(d)) => d,
                (Some(h), None) => format!("host {h}, status {}", status(r)),
                (None, None) => format!("status {}", status(r)),
            };
            wrap(&format!("<{}>: {detail}", clean(&r.final_recipient, global)), "    ", &mut out);
            if let (Action::Delayed, Some(until)) = (action, r.will_retry_until) {
                wrap(&format!("    Still trying until {}.", date(until)), "    ", &mut out);
            }
        }
    }
    out
}

/// The RFC 3463 code to report: the caller's if well formed, else the class default.
fn status(r: &RecipientReport) -> String {
    let s = r.status.trim();
    // RFC 3464 §2.3.4 / RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5, subject
    // and detail one to three digits.
    let mut parts = s.split('.');
    let well_formed = matches!(parts.next(), Some("2" | "4" | "5"))
        && parts.clone().count() == 2
        && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if well_formed { s.to_owned() } else { r.action.default_status().to_owned() }
}

/// An address with its RFC 3464 §2.3.2 address type: `rfc822` for ASCII, RFC 6533 §3 `utf-8`
/// otherwise (raw UTF-8 in a global report, `\x{..}` escapes in an ASCII one).
pub(super) fn typed_address(addr: &str, global: bool, force_utf8: bool) -> String {
    let a = addr.trim();
    if a.is_ascii() && !force_utf8 { format!("rfc822; {}", clean(a, false)) } else { format!("utf-8; {}", utf8_addr_text(a, global)) }
}

/// `Original-Recipient` from the stored ORCPT (`addr-type;address`, xtext already decoded, which
/// is the form RFC 3464 §2.3.1 wants). Unknown address types are passed through as given.
pub(super) fn original_recipient(stored: &str, global: bool) -> Option<String> {
    let (kind, addr) = stored.split_once(';').unwrap_or(("rfc822", stored));
    let (kind, addr) = (kind.trim(), addr.trim());
    if addr.is_empty() {
        return None;
    }
    if kind.eq_ignore_ascii_case("rfc822") || kind.is_empty() {
        Some(typed_address(addr, global, false))
    } else if kind.eq_ignore_ascii_case("utf-8") {
        Some(typed_address(addr, global, true))
    } else {
        Some(format!("{}; {}", clean(kind, false), clean(addr, global)))
    }
}

/// Part 2: the RFC 3464 §2.1 status fields, one per-message group and one group per recipient,
/// separated by blank lines.
fn delivery_status(report: &Report, host: &str, global: bool) -> Vec<u8> {
    let env = report.envelope;
    let mut out = Vec::new();
    // RFC 3464 §2.2, in the order of its grammar. The ENVID is stored xtext-decoded, which is
    // the form §2.2.1 asks for.
    if let Some(id) = env.env_id.as_deref().map(|id| clean(id, global)).filter(|id| !id.is_empty()) {
        fold(&format!("Original-Envelope-Id: {id}"), &mut out);
    }
    fold(&format!("Reporting-MTA: dns; {host}"), &mut out);
    // An extension field (RFC 3464 §2.2, like Postfix's X-Postfix-Queue-ID) so a postmaster can
    // find the message in `sipmta queue show`.
    fold(&format!("X-Sipmta-Queue-ID: {}", env.id), &mut out);
    fold(&format!("Arrival-Date: {}", date(env.received)), &mut out);
    for r in &report.recipients {
        out.extend_from_slice(b"\r\n");
        // RFC 3464 §2.3.1: only when the sender gave ORCPT.
        if let Some(orcpt) = r.original_recipient.as_deref().and_then(|o| original_recipient(o, global)) {
            fold(&format!("Original-Recipient: {orcpt}"), &mut out);
        }
        fold(&format!("Final-Recipient: {}", typed_address(&r.final_recipient, global, false)), &mut out);
        fold(&format!("Action: {}", r.action), &mut out);
        fold(&format!("Status: {}", status(r)), &mut out);
        if let Some(h) = r.remote_mta.as_deref().map(|h| clean(h, global).replace(' ', "")).filter(|h| !h.is_empty()) {
            fold(&format!("Remote-MTA: dns; {h}"), &mut out);
        }
        if let Some(d) = r.diagnostic.as_deref().map(|d| clean(d, global)).filter(|d| !d.is_empty()) {
            // RFC 3464 §2.3.6: `smtp` is for SMTP replies only; our own reasons (a connect
            // error, say) get a private type, as Postfix does with `X-Postfix`.
            let kind = if is_smtp_reply(&d) { "smtp" } else { "X-Sipmta" };
            fold(&format!("Diagnostic-Code: {kind}; {d}"), &mut out);
        }
        if let Some(at) = r.last_attempt {
            fold(&format!("Last-Attempt-Date: {}", date(at)), &mut out);
        }
        // RFC 3464 §2.3.7: meaningful for `delayed` only.
        if let (Action::Delayed, Some(until)) = (r.action, r.will_retry_until) {
            fold(&format!("Will-Retry-Until: {}", date(until)), &mut out);
        }
    }
    out
}

/// Text that starts like an SMTP reply: a three-digit code (RFC 5321 §4.2) and then the end, a
/// space or a hyphen.
fn is_smtp_reply(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 3
        && matches!(b[0], b'2'..=b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && matches!(b.get(3), None | Some(b' ' | b'-'))
}

/// Part 3 of the report.
struct Returned {
    content_type: &'static str,
    description: &'static str,
    body: Vec<u8>,
}

/// Part 3: the original message, or only its header section.
///
/// The whole message goes back only for a failure (RFC 3461 §4.3: RET governs failed DSNs; with
/// no RET the choice is ours, and we return it as Postfix does), unless the sender said
/// RET=HDRS, the message is larger than `max_returned`, or it has a line over 998 octets that
/// could not be sent unaltered (RFC 5322 §2.1.1). Delay and success reports carry the header
/// section only: the message is still on its way or already there.
fn returned(report: &Report, global: bool) -> Returned {
    let msg = report.message;
    let failed = report.recipients.iter().any(|r| r.action == Action::Failed);
    let full = failed && report.envelope.ret != Some(Ret::Hdrs) && msg.len() <= report.max_returned && lines(msg).all(|l| l.len() <= HARD);
    let mut body = Vec::with_capacity(if full { msg.len() + 64 } else { 4096 });
    if full {
        for line in lines(msg) {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        let content_type = if global { "message/global" } else { "message/rfc822" };
        return Returned { content_type, description: "Undelivered Message", body };
    }
    write_limited(lines(msg).take_while(|l| !l.is_empty()), &mut body);
    // RFC 6533 §6.3 for SMTPUTF8 mail, RFC 6522 §4 otherwise.
    let content_type = if global { "message/global-headers" } else { "text/rfc822-headers" };
    let description = if failed { "Undelivered Message Headers" } else { "Message Headers" };
    Returned { content_type, description, body }
}

/// The original's Message-ID, if it is one we can safely repeat in a header field.
pub(super) fn original_message_id(message: &[u8], global: bool) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let id = parsed.message_id()?;
    let safe = !id.is_empty()
        && id.len() <= 250
        && (global || id.is_ascii())
        && !id.chars().any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>');
    safe.then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(action: Action, status: &str) -> RecipientReport {
        RecipientReport {
            final_recipient: "a@example.net".into(),
            original_recipient: None,
            action,
            status: status.into(),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
        }
    }

    #[test]
    fn the_boundary_avoids_the_content() {
        assert_eq!(boundary("=_b", &[b"no match"]), "=_b.0");
        assert_eq!(boundary("=_b", &[b"x", b"--=_b.0 and =_b.1"]), "=_b.2");
        let longest = format!("=_dsn.{}.{:X}.{:X}.{}", sipmta_store::QueueId(u64::MAX), u64::MAX, u64::MAX, u32::MAX);
        assert!(longest.len() <= 70, "{}", longest.len());
    }

    #[test]
    fn malformed_status_codes_fall_back_to_the_action_class() {
        assert_eq!(status(&rcpt(Action::Failed, "5.1.1")), "5.1.1");
        assert_eq!(status(&rcpt(Action::Delayed, " 4.7.123 ")), "4.7.123");
        for bad in ["", "5.1", "5.1.1.1", "3.0.0", "5.1.1234", "5.a.1", "550"] {
            assert_eq!(status(&rcpt(Action::Failed, bad)), "5.0.0", "{bad:?}");
        }
        assert_eq!(status(&rcpt(Action::Delayed, "")), "4.0.0");
        assert_eq!(status(&rcpt(Action::Relayed, "x")), "2.0.0");
    }

    #[test]
    fn smtp_replies_are_recognised() {
        for yes in ["550", "550 5.1.1 no", "421-busy"] {
            assert!(is_smtp_reply(yes), "{yes}");
        }
        for no in ["", "55", "650 x", "550x", "connection refused"] {
            assert!(!is_smtp_reply(no), "{no}");
        }
    }

    #[test]
    fn the_worst_action_names_the_subject() {
        let s = |actions: &[Action]| subject(&actions.iter().map(|&a| rcpt(a, "")).collect::<Vec<_>>());
        assert_eq!(s(&[Action::Relayed, Action::Delayed]), "Delayed Mail (still being retried)");
        assert_eq!(s(&[Action::Relayed, Action::Delivered]), "Successful Mail Delivery Report");
        assert_eq!(s(&[Action::Delivered, Action::Failed]), "Undelivered Mail Returned to Sender");
        assert_eq!(s(&[]), "Mail Delivery Status Report");
    }

    #[test]
    fn orcpt_keeps_its_address_type() {
        assert_eq!(original_recipient("rfc822;a@b", false).as_deref(), Some("rfc822; a@b"));
        assert_eq!(original_recipient("a@b", false).as_deref(), Some("rfc822; a@b"));
        assert_eq!(original_recipient("UTF-8;a+b@c", true).as_deref(), Some("utf-8; a\\x{2B}b@c"));
        assert_eq!(original_recipient("x400;/G=Eve/", false).as_deref(), Some("x400; /G=Eve/"));
        assert_eq!(original_recipient("rfc822; ", false), None);
    }
}
