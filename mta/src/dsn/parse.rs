//! Reading DSNs that other MTAs send back, for DSN tracking: which recipient of which envelope
//! id ended how (DESIGN.md "Relay queue and DSN").
//!
//! mail-parser finds the MIME structure; the RFC 3464 §2.1 status fields are read here, because
//! they are not a message header section but a series of header-like groups separated by blank
//! lines: one per-message group, then one group per recipient.
//!
//! The input is untrusted mail from anywhere: [`parse`] must never panic, and it returns `None`
//! for anything that is not a delivery report rather than guessing. It is lenient inside a
//! report, because real MTAs bend the format (comments after a status, a missing per-message
//! group, `<>` around addresses), and a tolerated report is better than a lost outcome.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};

use super::Action;
use super::wire::{clean, decode_utf8_addr, lines};

/// An `Action` value as reported: one of RFC 3464 §2.3.3's, or something else kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedAction {
    /// A registered action keyword.
    Known(Action),
    /// Any other value (lower-cased), or empty when the field was missing.
    Unknown(String),
}

/// One per-recipient group of a DSN (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRecipient {
    /// `Original-Recipient` without its `rfc822;`/`utf-8;` address type.
    pub original_recipient: Option<String>,
    /// `Final-Recipient` without its `rfc822;`/`utf-8;` address type. Foreign address types
    /// (`x400;`, ...) are kept whole so they cannot be mistaken for Internet addresses.
    pub final_recipient: String,
    /// `Action`.
    pub action: ParsedAction,
    /// `Status`, the RFC 3463 code alone (`5.1.1`), any comment after it dropped; empty if the
    /// field was missing.
    pub status: String,
    /// `Diagnostic-Code` without its diagnostic type (`smtp;`), unfolded.
    pub diagnostic: Option<String>,
    /// `Remote-MTA` without its MTA-name type (`dns;`).
    pub remote_mta: Option<String>,
}

/// A delivery status notification as reported by some MTA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedDsn {
    /// `Original-Envelope-Id`: the ENVID we gave when relaying, which ties the report to our
    /// envelope.
    pub original_envelope_id: Option<String>,
    /// `Reporting-MTA` without its MTA-name type.
    pub reporting_mta: Option<String>,
    /// The per-recipient groups, in order; never empty.
    pub recipients: Vec<ParsedRecipient>,
}

/// Parse a whole message as a DSN.
///
/// The message must contain a `multipart/report` with `report-type=delivery-status` (or
/// `global-delivery-status`, RFC 6533) somewhere in its own MIME tree, holding a
/// `message/delivery-status` or `message/global-delivery-status` part with at least one
/// recipient group. Reports inside attached messages (`message/rfc822`) are not looked at: a
/// forwarded bounce is not a report about mail we sent.
pub fn parse(message: &[u8]) -> Option<ParsedDsn> {
    let parsed = MessageParser::new().parse(message)?;
    parse_fields(status_part(&parsed)?)
}

/// The body of the status part of the first delivery report in `msg`'s MIME tree.
fn status_part<'a>(msg: &'a Message<'_>) -> Option<&'a [u8]> {
    // mail-parser lists every part of the tree in `parts`, and a multipart's children are
    // indexes into it, so one pass over `parts` sees reports at any depth.
    msg.parts
        .iter()
        .filter(|p| is_report(p))
        .flat_map(|p| p.sub_parts().unwrap_or_default())
        .filter_map(|&id| msg.parts.get(usize::try_from(id).ok()?))
        .find(|p| is_type(p, "message", &["delivery-status", "global-delivery-status"]))
        .map(|p| p.contents())
}

/// Whether a part is an RFC 6522 report carrying a delivery status.
fn is_report(part: &MessagePart<'_>) -> bool {
    is_type(part, "multipart", &["report"])
        && part
            .content_type()
            .and_then(|ct| ct.attribute("report-type"))
            .is_some_and(|t| ["delivery-status", "global-delivery-status"].iter().any(|k| t.trim().eq_ignore_ascii_case(k)))
}

/// Whether a part's Content-Type is `ctype/` one of `subtypes` (case-insensitive, RFC 2045 §5.1).
fn is_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype) && ct.subtype().is_some_and(|s| subtypes.iter().any(|k| s.eq_ignore_ascii_case(k)))
    })
}

/// One group of status fields: lower-cased names with their unfolded values, in order.
type Group = Vec<(String, String)>;

/// Split the status part into its groups (RFC 3464 §2.1): header-like fields, folded as in
/// RFC 5322 §2.2.3, with blank lines between groups.
fn groups(body: &[u8]) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut current = Group::new();
    for line in lines(body) {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            // Unfolding removes the line break and keeps the whitespace.
            if let Some((_, value)) = current.last_mut() {
                value.push_str(&line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            // RFC 5322 §3.6.8 field names: printable ASCII without colon or space. Anything
            // else is not a field, and is skipped rather than trusted.
            let name = name.trim_end();
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
                current.push((name.to_ascii_lowercase(), value.to_owned()));
            }
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// The first field called `name` (lower case), cleaned, if present and not empty.
fn field(group: &Group, name: &str) -> Option<String> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| clean(v, true)).filter(|v| !v.is_empty())
}

/// Read the status fields into a report; `None` if no recipient group is usable.
fn parse_fields(body: &[u8]) -> Option<ParsedDsn> {
    let mut groups = groups(body).into_iter().peekable();
    let mut dsn = ParsedDsn::default();
    // RFC 3464 §2.1 puts the per-message group first. Some MTAs omit it; a group that names a
    // recipient is a recipient group wherever it stands.
    if let Some(first) = groups.next_if(|g| field(g, "final-recipient").is_none()) {
        dsn.original_envelope_id = field(&first, "original-envelope-id");
        dsn.reporting_mta = field(&first, "reporting-mta").map(|v| without_type(&v));
    }
    dsn.recipients = groups.filter_map(|g| recipient(&g)).collect();
    (!dsn.recipients.is_empty()).then_some(dsn)
}

/// One per-recipient group. RFC 3464 §2.3 requires Final-Recipient, Action and Status; a group
/// without a Final-Recipient cannot be tied to anyone and is skipped, the other two are
/// tolerated as missing.
fn recipient(group: &Group) -> Option<ParsedRecipient> {
    let final_recipient = address(&field(group, "final-recipient")?).filter(|a| !a.is_empty())?;
    let action_word = field(group, "action").and_then(|a| a.split_whitespace().next().map(str::to_ascii_lowercase));
    let action = match action_word {
        Some(word) => Action::from_keyword(&word).map_or(ParsedAction::Unknown(word), ParsedAction::Known),
        None => ParsedAction::Unknown(String::new()),
    };
    // A comment may follow the code, as in `Status: 5.0.0 (permanent failure)`.
    let status = field(group, "status").and_then(|s| s.split_whitespace().next().map(str::to_owned)).unwrap_or_default();
    Some(ParsedRecipient {
        original_recipient: field(group, "original-recipient").and_then(|v| address(&v)).filter(|a| !a.is_empty()),
        final_recipient,
        action,
        status,
        diagnostic: field(group, "diagnostic-code").map(|v| without_type(&v)).filter(|d| !d.is_empty()),
        remote_mta: field(group, "remote-mta").map(|v| without_type(&v)).filter(|h| !h.is_empty()),
    })
}

/// The address of an RFC 3464 §2.3.1/§2.3.2 field (`addr-type; address`): the type removed for
/// `rfc822` and RFC 6533 `utf-8` (whose `\x{..}` escapes are decoded), the value kept whole for
/// foreign types. `<>` around the address, which some MTAs add, is dropped.
fn address(value: &str) -> Option<String> {
    let unangle = |a: &str| {
        let a = a.trim();
        a.strip_prefix('<').and_then(|x| x.strip_suffix('>')).unwrap_or(a).trim().to_owned()
    };
    Some(match value.split_once(';') {
        Some((kind, addr)) if kind.trim().eq_ignore_ascii_case("rfc822") => unangle(addr),
        Some((kind, addr)) if kind.trim().eq_ignore_ascii_case("utf-8") => decode_utf8_addr(&unangle(addr)),
        Some((kind, _)) if is_atom(kind.trim()) => value.trim().to_owned(),
        _ => unangle(value),
    })
}

/// Remove a leading `type;` (an MTA-name type or a diagnostic type, RFC 3464 §2.1.2, §2.3.6).
fn without_type(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if is_atom(kind.trim()) => rest.trim().to_owned(),
        _ => value.trim().to_owned(),
    }
}

/// A type name: a short RFC 5322 atom of letters, digits and hyphens, as registered types are.
fn is_atom(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
