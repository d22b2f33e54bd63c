//! Message disposition notifications (RFC 8098) that the server sends by itself when it
//! delivers a message whose sender asked for one with `Disposition-Notification-To`.
//!
//! Pure like the rest of this module: [`should_send`] is the policy, [`build`] the format. The
//! disposition is always `automatic-action/MDN-sent-automatically; processed` (RFC 8098
//! §3.2.6): the server handled the message without anyone having displayed it. That is all a
//! mail server can truthfully say; "displayed" is for the reader's client.
//!
//! RFC 8098 §2.1 leaves the decision to the recipient's user agent and asks it to get the
//! user's consent in doubtful cases. A server cannot ask, so [`should_send`] sends only in the
//! clear case and otherwise says why not, for the log.
//!
//! [`build`]'s output has the same invariants as a DSN's (see the module docs): CRLF line
//! ends, no line over 998 octets, nothing from the original message able to add a header
//! field or a MIME boundary. The caller sends it with the null reverse-path (RFC 8098 §3:
//! "MUST be null") to [`MdnTarget::to`]; a result that is not all ASCII is an RFC 6533 global
//! report and needs SMTPUTF8 and BODY=8BITMIME.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use mail_parser::{HeaderForm, HeaderName, HeaderValue, MessageParser, MimeHeaders};

use super::build::{boundary, original_message_id, original_recipient, part, typed_address};
use super::may_send_to;
use super::wire::{clean, date, fold, lines, wrap, write_limited};

/// Makes Message-IDs unique between receipts built in the same second.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Where an MDN goes: the one address of `Disposition-Notification-To`, which is the envelope
/// sender too. Made only by [`should_send`], so [`build`] cannot be reached without the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnTarget {
    to: String,
}

impl MdnTarget {
    /// The address to send the MDN to (RCPT TO, and its To field).
    pub fn to(&self) -> &str {
        &self.to
    }
}

/// Why no MDN is sent automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The message has no `Disposition-Notification-To` (nobody asked).
    NotRequested,
    /// The envelope sender is null: the message is itself a notification (RFC 5321 §4.5.5).
    NullSender,
    /// The message is a report (`multipart/report`, RFC 6522): DSNs and MDNs are never answered.
    IsReport,
    /// `Auto-Submitted` says the message was sent by a program (RFC 3834 §2, §5).
    AutoSubmitted,
    /// `Disposition-Notification-To` names more than one address (RFC 8098 §2.1).
    SeveralAddresses,
    /// `Disposition-Notification-To` holds no address we could safely send to.
    BadAddress,
    /// The address differs from the envelope sender (RFC 8098 §2.1: a UA should ask its user).
    NotTheSender,
    /// `Disposition-Notification-Options` has a `required` parameter, and we support none
    /// (RFC 8098 §2.2: then only a "failed" MDN may be sent).
    RequiredOption,
}

impl Skip {
    /// A short explanation for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotRequested => "no Disposition-Notification-To",
            Skip::NullSender => "null envelope sender",
            Skip::IsReport => "the message is a report",
            Skip::AutoSubmitted => "the message is Auto-Submitted",
            Skip::SeveralAddresses => "Disposition-Notification-To names several addresses",
            Skip::BadAddress => "Disposition-Notification-To holds no usable address",
            Skip::NotTheSender => "Disposition-Notification-To is not the envelope sender",
            Skip::RequiredOption => "Disposition-Notification-Options has a required parameter",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Whether to send an MDN automatically for `message`, received from envelope sender `sender`
/// (the stored form: no angle brackets, empty for the null sender).
///
/// Yes only when the message asks (`Disposition-Notification-To`) with exactly one distinct
/// address, that address is the envelope sender (local part as written, domain in any case:
/// RFC 8098 §2.1 compares them so, to keep a forged request from sending receipts to a third
/// party), the sender is not null, the message is neither a report nor automatic (RFC 3834
/// §2), and it asks for no option we would have to understand (RFC 8098 §2.2).
pub fn should_send(sender: &str, message: &[u8]) -> Result<MdnTarget, Skip> {
    let parsed = MessageParser::new().parse_headers(message).ok_or(Skip::NotRequested)?;
    let requests = parsed.header_as(HeaderName::DispositionNotificationTo, HeaderForm::Addresses);
    if requests.is_empty() {
        return Err(Skip::NotRequested);
    }
    if !may_send_to(sender) {
        return Err(Skip::NullSender);
    }
    let is_report = parsed
        .root_part()
        .content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")));
    if is_report {
        return Err(Skip::IsReport);
    }
    let automatic = parsed.header_as(HeaderName::AutoSubmitted, HeaderForm::Raw).iter().any(|v| !is_no(v));
    if automatic {
        return Err(Skip::AutoSubmitted);
    }
    let mut addresses: Vec<String> = Vec::new();
    for value in &requests {
        let HeaderValue::Address(list) = value else { return Err(Skip::BadAddress) };
        for addr in list.iter() {
            let a = addr.address.as_deref().map(str::trim).ok_or(Skip::BadAddress)?;
            if !addresses.iter().any(|seen| same_address(seen, a)) {
                addresses.push(a.to_owned());
            }
        }
    }
    let to = match addresses.as_slice() {
        [] => return Err(Skip::BadAddress),
        [one] => one.clone(),
        _ => return Err(Skip::SeveralAddresses),
    };
    if !is_plain_address(&to) {
        return Err(Skip::BadAddress);
    }
    let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
    if !same_address(&to, sender) {
        return Err(Skip::NotTheSender);
    }
    let required = parsed.header_as(HeaderName::DispositionNotificationOptions, HeaderForm::Raw).iter().any(has_required);
    if required {
        return Err(Skip::RequiredOption);
    }
    Ok(MdnTarget { to })
}

/// An `Auto-Submitted` value of `no` (RFC 3834 §5: keyword, optional parameters and comments).
fn is_no(value: &HeaderValue) -> bool {
    let text = value.as_text().unwrap_or_default();
    let keyword = text.split(';').next().unwrap_or_default();
    // Drop a comment, as in `no (sent by a person)`.
    let keyword = keyword.split('(').next().unwrap_or_default();
    keyword.trim().eq_ignore_ascii_case("no")
}

/// Whether a `Disposition-Notification-Options` value has a parameter of importance
/// `required` (RFC 8098 §2.2: `attribute "=" importance "," value *("," value)`).
fn has_required(value: &HeaderValue) -> bool {
    let text = value.as_text().unwrap_or_default();
    text.split(';').any(|param| {
        let importance = param.split_once('=').map_or("", |(_, v)| v.split(',').next().unwrap_or_default());
        importance.trim().eq_ignore_ascii_case("required")
    })
}

/// The same mailbox: local parts equal as written, domains equal in any case (RFC 8098 §2.1,
/// RFC 5321 §2.4).
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.to_lowercase() == db.to_lowercase(),
        _ => false,
    }
}

/// An address we can put in RCPT TO and a To field as it is: `local@domain`, no spaces,
/// controls, quotes or brackets, a domain name (no address literal), within the RFC 5321
/// §4.5.3.1 lengths.
fn is_plain_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else { return false };
    let plain = |c: char| !(c.is_control() || c.is_whitespace() || "<>()[]\\,;:\"@".contains(c));
    !local.is_empty()
        && local.len() <= 64
        && addr.len() <= 254
        && local.chars().all(plain)
        && sipmta_store::routing::check_domain(domain).is_ok()
        && !domain.ends_with('.')
}

/// Build the complete MDN for `message`, delivered to `final_recipient` by this server
/// (`reporting_host`) at `now` (Unix seconds), to go to `target`.
pub fn build(reporting_host: &str, final_recipient: &str, target: &MdnTarget, message: &[u8], now: u64) -> Vec<u8> {
    let header_lines: Vec<&[u8]> = lines(message).take_while(|l| !l.is_empty()).collect();
    // RFC 6533: UTF-8 anywhere we repeat makes this a global report, sent with SMTPUTF8.
    let global = !(final_recipient.is_ascii() && target.to.is_ascii() && header_lines.iter().all(|l| l.is_ascii()));
    let host = clean(reporting_host, global).replace(' ', "");
    let recipient = clean(final_recipient, global).replace(' ', "");
    let parsed = MessageParser::new().parse_headers(message);
    let subject = parsed.as_ref().and_then(|p| p.header_raw(HeaderName::Subject)).map(|s| clean(s, global)).filter(|s| !s.is_empty());
    let original_id = original_message_id(message, global);
    let orcpt = parsed.as_ref().and_then(|p| p.header_raw(HeaderName::OriginalRecipient)).and_then(|o| original_recipient(o, global));

    // The text part names the subject only when it reads as plain text there: decoded, and
    // ASCII unless the report is global (raw encoded-words are noise to a person).
    let readable = parsed.as_ref().and_then(|p| p.subject()).map(|s| clean(s, true)).filter(|s| !s.is_empty() && (global || s.is_ascii()));
    let text = explanation(&host, &recipient, readable.as_deref(), now);
    let mut report = Vec::new();
    // RFC 8098 §3.1 order: Reporting-UA, [MDN-Gateway], [Original-Recipient],
    // Final-Recipient, [Original-Message-ID], Disposition.
    fold(&format!("Reporting-UA: {host}; sipmta {}", env!("CARGO_PKG_VERSION")), &mut report);
    if let Some(orcpt) = orcpt {
        fold(&format!("Original-Recipient: {orcpt}"), &mut report);
    }
    fold(&format!("Final-Recipient: {}", typed_address(final_recipient, global, false)), &mut report);
    if let Some(id) = &original_id {
        fold(&format!("Original-Message-ID: <{id}>"), &mut report);
    }
    fold("Disposition: automatic-action/MDN-sent-automatically; processed", &mut report);
    let mut headers = Vec::new();
    write_limited(header_lines.into_iter(), &mut headers);

    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut hasher = DefaultHasher::new();
    (message, final_recipient).hash(&mut hasher);
    let unique = format!("{now:X}.{:X}.{seq:X}", hasher.finish());
    let boundary = boundary(&format!("=_mdn.{unique}"), &[&text, &report, &headers]);

    let mut out = Vec::with_capacity(headers.len() + text.len() + report.len() + 1024);
    // RFC 8098 §3: From is the person the notification is about, i.e. the recipient.
    fold(&format!("From: <{recipient}>"), &mut out);
    fold(&format!("To: <{}>", clean(&target.to, global)), &mut out);
    fold(&format!("Subject: Delivered: {}", subject.as_deref().unwrap_or("(no subject)")), &mut out);
    fold(&format!("Date: {}", date(now)), &mut out);
    fold(&format!("Message-ID: <{unique}.mdn@{host}>"), &mut out);
    // RFC 3834 §3.1.5: an automatic response refers to the message it answers.
    if let Some(id) = &original_id {
        fold(&format!("In-Reply-To: <{id}>"), &mut out);
        fold(&format!("References: <{id}>"), &mut out);
    }
    // RFC 3834 §5, so responders leave it alone; and no Disposition-Notification-To, which an
    // MDN must never carry (RFC 8098 §3).
    fold("Auto-Submitted: auto-replied", &mut out);
    fold("MIME-Version: 1.0", &mut out);
    let report_type = if global { "global-disposition-notification" } else { "disposition-notification" };
    fold(&format!("Content-Type: multipart/report; report-type={report_type}; boundary=\"{boundary}\""), &mut out);
    if !(text.is_ascii() && report.is_ascii() && headers.is_ascii()) {
        fold("Content-Transfer-Encoding: 8bit", &mut out);
    }
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated message disposition notification.\r\n");
    let charset = if global { "utf-8" } else { "us-ascii" };
    part(&mut out, &boundary, "Notification", &format!("text/plain; charset={charset}"), &text);
    // RFC 6533 §5 global forms for SMTPUTF8 mail (report-type named after the second part, as
    // `build` does for DSNs), RFC 8098 §3.1 and RFC 6522 §4 otherwise.
    let (report_ct, headers_ct) = if global {
        ("message/global-disposition-notification", "message/global-headers")
    } else {
        ("message/disposition-notification", "text/rfc822-headers")
    };
    part(&mut out, &boundary, "Disposition notification", report_ct, &report);
    part(&mut out, &boundary, "Message headers", headers_ct, &headers);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The human-readable part (RFC 8098 §3.1: it should explain the notification to a person).
fn explanation(host: &str, recipient: &str, subject: Option<&str>, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let what = subject.map_or_else(|| "Your message".to_owned(), |s| format!("Your message \"{s}\""));
    wrap(&format!("{what} was delivered to the mailbox of {recipient} by the mail system at {host} on {}.", date(now)), "", &mut out);
    out.extend_from_slice(b"\r\n");
    wrap(
        "This is a delivery receipt, not a read receipt: it says the message arrived, not that anyone has seen it. \
         It was sent automatically because the message asked for one.",
        "",
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mail_parser::MimeHeaders;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    const ASKING: &str = "From: Alice <alice@a.example>\r\n\
To: bob@b.example\r\n\
Subject: Quarterly figures\r\n\
Message-ID: <q3@a.example>\r\n\
Disposition-Notification-To: Alice <alice@a.example>\r\n\
\r\n\
See attached.\r\n";

    fn with(extra: &str) -> String {
        format!("{extra}{ASKING}")
    }

    fn target() -> MdnTarget {
        should_send("alice@a.example", ASKING.as_bytes()).unwrap()
    }

    /// CRLF after every line, none longer than 998 octets (RFC 5322 §2.1.1).
    fn assert_wire(mdn: &[u8]) {
        assert!(mdn.ends_with(b"\r\n"));
        for line in mdn.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or_else(|| {
                assert!(line.is_empty(), "bare LF before {:?}", String::from_utf8_lossy(line));
                line
            });
            assert!(!line.contains(&b'\r'), "bare CR in {:?}", String::from_utf8_lossy(line));
            assert!(line.len() <= 998, "{} octets", line.len());
        }
    }

    /// The field names of the MDN's own header section.
    fn field_names(mdn: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(mdn);
        let head = text.split("\r\n\r\n").next().unwrap();
        head.split("\r\n").filter(|l| !l.starts_with([' ', '\t'])).map(|l| l.split(':').next().unwrap().to_owned()).collect()
    }

    #[test]
    fn a_request_from_the_sender_itself_is_honoured() {
        assert_eq!(target().to(), "alice@a.example");
        // RFC 8098 §2.1: the domain compares in any case, the local part as written.
        assert!(should_send("alice@A.EXAMPLE", ASKING.as_bytes()).is_ok());
        assert!(should_send("<alice@a.example>", ASKING.as_bytes()).is_ok());
        assert_eq!(should_send("Alice@a.example", ASKING.as_bytes()), Err(Skip::NotTheSender));
        assert_eq!(should_send("list-bounces@a.example", ASKING.as_bytes()), Err(Skip::NotTheSender));
        // The same address twice is still one address.
        let twice = ASKING.replace("Alice <alice@a.example>\r\n", "alice@a.example, <alice@A.example>\r\n");
        assert_eq!(should_send("alice@a.example", twice.as_bytes()).unwrap().to(), "alice@a.example");
    }

    #[test]
    fn every_reason_to_stay_quiet_is_named() {
        let skip = |sender: &str, message: &str| should_send(sender, message.as_bytes()).unwrap_err();
        let plain = ASKING.replace("Disposition-Notification-To: Alice <alice@a.example>\r\n", "");
        assert_eq!(skip("alice@a.example", &plain), Skip::NotRequested);
        assert_eq!(skip("", ASKING), Skip::NullSender);
        assert_eq!(skip("<>", ASKING), Skip::NullSender);
        let report = with("Content-Type: Multipart/Report; report-type=delivery-status; boundary=x\r\n");
        assert_eq!(skip("alice@a.example", &report), Skip::IsReport);
        for auto in ["auto-generated", "auto-replied; owner-email=x@y", "", "yes"] {
            assert_eq!(skip("alice@a.example", &with(&format!("Auto-Submitted: {auto}\r\n"))), Skip::AutoSubmitted, "{auto:?}");
        }
        for human in ["no", "No (a person wrote this)", " no ; x=y"] {
            assert!(should_send("alice@a.example", with(&format!("Auto-Submitted: {human}\r\n")).as_bytes()).is_ok(), "{human:?}");
        }
        let two = ASKING.replace("Alice <alice@a.example>", "alice@a.example, carol@c.example");
        assert_eq!(skip("alice@a.example", &two), Skip::SeveralAddresses);
        let two_fields = with("Disposition-Notification-To: carol@c.example\r\n");
        assert_eq!(skip("alice@a.example", &two_fields), Skip::SeveralAddresses);
        for bad in ["undisclosed", "<>", "alice@[192.0.2.1]", "\"a b\"@a.example", "alice@a..example"] {
            let m = ASKING.replace("Alice <alice@a.example>", bad);
            assert_eq!(skip("alice@a.example", &m), Skip::BadAddress, "{bad:?}");
        }
        let required = with("Disposition-Notification-Options: signed-receipt-protocol=required,pkcs7-signature\r\n");
        assert_eq!(skip("alice@a.example", &required), Skip::RequiredOption);
        let optional = with("Disposition-Notification-Options: signed-receipt-protocol=optional,pkcs7-signature\r\n");
        assert!(should_send("alice@a.example", optional.as_bytes()).is_ok());
        assert_eq!(skip("alice@a.example", ""), Skip::NotRequested);
        assert_eq!(Skip::NotTheSender.to_string(), "Disposition-Notification-To is not the envelope sender");
    }

    #[test]
    fn the_receipt_is_a_disposition_notification_report() {
        let mdn = build("mx.b.example", "bob@b.example", &target(), ASKING.as_bytes(), NOW);
        assert_wire(&mdn);
        assert!(mdn.is_ascii());
        let msg = MessageParser::new().parse(&mdn[..]).unwrap();
        assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("bob@b.example"));
        assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("alice@a.example"));
        assert_eq!(msg.subject(), Some("Delivered: Quarterly figures"));
        assert_eq!(msg.in_reply_to().as_text(), Some("q3@a.example"));
        assert_eq!(msg.references().as_text(), Some("q3@a.example"));
        assert_eq!(msg.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
        assert!(msg.message_id().unwrap().ends_with(".mdn@mx.b.example"));
        assert!(msg.date().is_some());
        // RFC 8098 §3: an MDN never asks for one itself.
        assert!(!field_names(&mdn).iter().any(|n| n.eq_ignore_ascii_case("Disposition-Notification-To")));

        let ct = msg.root_part().content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("disposition-notification"));
        let parts: Vec<usize> = msg.parts[0].sub_parts().unwrap().iter().map(|&id| id as usize).collect();
        let types: Vec<String> = parts
            .iter()
            .map(|&id| {
                let ct = msg.parts[id].content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(types, ["text/plain", "message/disposition-notification", "text/rfc822-headers"]);
        let body = |n: usize| String::from_utf8_lossy(msg.parts[parts[n]].contents()).into_owned();
        assert!(body(0).contains("delivered to the mailbox of bob@b.example") && body(0).contains("not a read receipt"), "{}", body(0));
        let fields = body(1);
        let expected = format!(
            "Reporting-UA: mx.b.example; sipmta {}\r\nFinal-Recipient: rfc822; bob@b.example\r\nOriginal-Message-ID: <q3@a.example>\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(fields, expected);
        assert_eq!(body(2), ASKING.split("\r\n\r\n").next().unwrap().to_owned() + "\r\n");
        assert!(!body(2).contains("See attached"), "the body stays private");
    }

    #[test]
    fn original_recipient_is_passed_on_and_missing_fields_are_left_out() {
        let m = "Original-Recipient: rfc822;team@b.example\r\nDisposition-Notification-To: alice@a.example\r\n\r\nx\r\n";
        let t = should_send("alice@a.example", m.as_bytes()).unwrap();
        let mdn = String::from_utf8(build("mx.b.example", "bob@b.example", &t, m.as_bytes(), NOW)).unwrap();
        assert!(mdn.contains("\r\nOriginal-Recipient: rfc822; team@b.example\r\nFinal-Recipient: rfc822; bob@b.example\r\n"), "{mdn}");
        assert!(mdn.contains("\r\nSubject: Delivered: (no subject)\r\n"), "{mdn}");
        assert!(!mdn.contains("In-Reply-To") && !mdn.contains("Original-Message-ID"), "{mdn}");
    }

    #[test]
    fn nothing_in_the_original_can_add_a_field_or_break_the_lines() {
        let long_word = "x".repeat(3000);
        let hostile = format!(
            "Subject: {long_word}\r\n\
             Original-Recipient: rfc822;a@b\u{0}\u{2028}Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\
             X-Long: {long_word}\r\n\
             Message-ID: <a\u{0}b@x>\r\n\
             Disposition-Notification-To: alice@a.example\r\n\
             \r\n\
             body\r\n"
        );
        let t = should_send("alice@a.example", hostile.as_bytes()).unwrap();
        let mdn = build("mx.b.example\r\nBcc: eve@e.example", "bob@b.example\r\nX: y", &t, hostile.as_bytes(), NOW);
        assert_wire(&mdn);
        assert_eq!(
            field_names(&mdn),
            // 8bit: the U+2028 in the original's header section makes this a global report.
            ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"],
            "{}",
            String::from_utf8_lossy(&mdn)
        );
        let text = String::from_utf8_lossy(&mdn);
        assert_eq!(text.matches("\r\nDisposition: ").count(), 1, "{text}");
        let msg = MessageParser::new().parse(&mdn[..]).unwrap();
        assert_eq!(msg.parts[0].sub_parts().unwrap().len(), 3);
    }

    #[test]
    fn utf8_makes_a_global_report() {
        let m = "Subject: Gr\u{fc}\u{df}e\r\nDisposition-Notification-To: alice@a.example\r\n\r\nx\r\n";
        let t = should_send("alice@a.example", m.as_bytes()).unwrap();
        let mdn = build("mx.b.example", "j\u{f6}rg@b.example", &t, m.as_bytes(), NOW);
        assert_wire(&mdn);
        let text = String::from_utf8(mdn).unwrap();
        for needle in [
            "report-type=global-disposition-notification",
            "Content-Type: message/global-disposition-notification",
            "Content-Type: message/global-headers",
            "Final-Recipient: utf-8; j\u{f6}rg@b.example",
            "From: <j\u{f6}rg@b.example>",
            "Subject: Delivered: Gr\u{fc}\u{df}e",
            "Content-Transfer-Encoding: 8bit",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }

    #[test]
    fn an_encoded_subject_stays_encoded_in_the_header_and_is_left_out_of_the_text() {
        let m = "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nDisposition-Notification-To: alice@a.example\r\n\r\nx\r\n";
        let t = should_send("alice@a.example", m.as_bytes()).unwrap();
        let mdn = build("mx.b.example", "bob@b.example", &t, m.as_bytes(), NOW);
        assert!(mdn.is_ascii());
        let msg = MessageParser::new().parse(&mdn[..]).unwrap();
        assert_eq!(msg.subject(), Some("Delivered: Gr\u{fc}\u{df}e"));
        let text = String::from_utf8_lossy(msg.parts[1].contents()).into_owned();
        assert!(text.starts_with("Your message was delivered") && !text.contains("=?"), "{text}");
    }

    #[test]
    fn receipts_get_distinct_message_ids() {
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let mdn = build("mx.b.example", "bob@b.example", &target(), ASKING.as_bytes(), NOW);
                MessageParser::new().parse(&mdn[..]).unwrap().message_id().unwrap().to_owned()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
    }
}
