//! The parts of a message the routing rules read: four header fields and the decoded text.
//!
//! Header evidence comes from `To`, `Cc`, `Subject` and `X-Fastpath-Tel` of the top-level
//! header (DESIGN.md "Routing rules" 5), RFC 2047 encoded words decoded. Body evidence comes
//! from the decoded text parts (6): every text/plain part, and text/html stripped to text when
//! it is the only form of a body (mail-parser's choice of "text body" parts, RFC 2046
//! multipart/alternative). Attachments, even text ones, and nested messages are not read: they
//! are what the sender carries, not where the message goes.
//!
//! **Bounds.** The text parts are joined with a newline (so a keyword cannot straddle two
//! parts) and cut at `scan_limit` bytes on a char boundary; each header value is cut at the
//! same bound. Parsing the MIME structure itself is linear in the message size; the caller
//! can skip it altogether when [`crate::needs_message`] says the envelope decides everything.

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser};
use serde::{Deserialize, Serialize};

/// The default bound on the text scanned: 256 KiB.
pub const DEFAULT_SCAN_LIMIT: usize = 256 * 1024;

/// A header field that can carry routing evidence, in the order the rules read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HeaderField {
    /// `X-Fastpath-Tel`: read first, because a sender who sets it states the number on purpose,
    /// while `To`, `Cc` and `Subject` only happen to mention one.
    #[serde(rename = "X-Fastpath-Tel")]
    XFastpathTel,
    /// `To`.
    To,
    /// `Cc`.
    Cc,
    /// `Subject`.
    Subject,
}

impl HeaderField {
    /// The field name as written in mail.
    pub fn name(self) -> &'static str {
        match self {
            HeaderField::XFastpathTel => "X-Fastpath-Tel",
            HeaderField::To => "To",
            HeaderField::Cc => "Cc",
            HeaderField::Subject => "Subject",
        }
    }
}

/// What the rules read of one message. Build it with [`MessageView::parse`], or with
/// [`MessageView::new`] from pieces the caller already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageView {
    /// Field values in reading order ([`HeaderField`] order, then the order in the message).
    headers: Vec<(HeaderField, String)>,
    text: String,
    truncated: bool,
}

impl MessageView {
    /// Read a raw RFC 5322 message. Never fails: what cannot be parsed is simply absent.
    pub fn parse(raw: &[u8], scan_limit: usize) -> MessageView {
        let parser = MessageParser::new()
            .with_mime_headers()
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_text(HeaderName::Subject)
            .header_text(HeaderName::Other("X-Fastpath-Tel".into()))
            // Every other field is skipped rather than decoded: only these four are read.
            .default_header_ignore();
        let Some(message) = parser.parse(raw) else {
            return MessageView::default();
        };
        let mut headers = Vec::new();
        for header in message.root_part().headers() {
            let field = match &header.name {
                HeaderName::To => HeaderField::To,
                HeaderName::Cc => HeaderField::Cc,
                HeaderName::Subject => HeaderField::Subject,
                HeaderName::Other(name) if name.eq_ignore_ascii_case("X-Fastpath-Tel") => HeaderField::XFastpathTel,
                _ => continue,
            };
            headers.push((field, render(&header.value)));
        }
        let mut parts = Vec::new();
        for i in 0..message.text_body_count() {
            if let Some(text) = message.body_text(i) {
                parts.push(text);
            }
        }
        MessageView::new(headers, parts.iter().map(|p| p.as_ref()), scan_limit)
    }

    /// A view from header values and text parts, with the same ordering and bounds as
    /// [`parse`](Self::parse).
    pub fn new<'a>(headers: Vec<(HeaderField, String)>, parts: impl IntoIterator<Item = &'a str>, scan_limit: usize) -> MessageView {
        let mut headers = headers;
        for (_, value) in &mut headers {
            value.truncate(floor_char_boundary(value, scan_limit));
        }
        // Stable: fields of one kind keep their order in the message.
        headers.sort_by_key(|(field, _)| *field);
        let mut text = String::new();
        let mut truncated = false;
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let sep = if text.is_empty() { "" } else { "\n" };
            let room = scan_limit.saturating_sub(text.len() + sep.len());
            let cut = floor_char_boundary(part, room);
            if cut > 0 {
                text.push_str(sep);
                text.push_str(&part[..cut]);
            }
            if cut < part.len() {
                truncated = true;
                break;
            }
        }
        MessageView { headers, text, truncated }
    }

    /// The header values, in reading order.
    pub fn headers(&self) -> &[(HeaderField, String)] {
        &self.headers
    }

    /// The decoded text, at most `scan_limit` bytes.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the text was cut at the bound.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    // A UTF-8 char is at most 4 bytes, so a boundary is at most 3 bytes back.
    (at.saturating_sub(3)..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// A header value as text: address lists as `Name <addr>, ...` (display names decoded),
/// groups as `group: members;`.
fn render(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(text) => text.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(Address::List(list)) => render_addrs(list),
        HeaderValue::Address(Address::Group(groups)) => groups
            .iter()
            .map(|g| format!("{}: {};", g.name.as_deref().unwrap_or(""), render_addrs(&g.addresses)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn render_addrs(list: &[mail_parser::Addr<'_>]) -> String {
    let one = |a: &mail_parser::Addr<'_>| match (a.name.as_deref(), a.address.as_deref()) {
        (Some(name), Some(address)) => format!("{name} <{address}>"),
        (Some(only), None) | (None, Some(only)) => only.to_string(),
        (None, None) => String::new(),
    };
    list.iter().map(one).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(view: &MessageView) -> Vec<(&'static str, &str)> {
        view.headers().iter().map(|(f, v)| (f.name(), v.as_str())).collect()
    }

    #[test]
    fn reads_the_four_fields_decoded_in_order() {
        let raw = b"From: a@b.example\r\n\
            Subject: =?UTF-8?B?5Lqs6YO95pSv5bqX?= KYOTO\r\n\
            To: =?ISO-2022-JP?B?GyRCNX5FVDtZRTkbKEI=?= <kyoto@efg.example>, bob@x.example\r\n\
            Cc: Team: c@d.example;\r\n\
            x-fastpath-tel: 050-1234-5678\r\n\
            Received: from nowhere 050-9999-9999\r\n\
            \r\n\
            Hello\r\n";
        let view = MessageView::parse(raw, DEFAULT_SCAN_LIMIT);
        assert_eq!(
            values(&view),
            [
                ("X-Fastpath-Tel", "050-1234-5678"),
                ("To", "京都支店 <kyoto@efg.example>, bob@x.example"),
                ("Cc", "Team: c@d.example;"),
                ("Subject", "京都支店 KYOTO"),
            ]
        );
        assert_eq!(view.text(), "Hello\r\n");
        assert!(!view.is_truncated());
    }

    #[test]
    fn decodes_text_parts_and_html_only_bodies() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            MDUwLTEyMzQtNTY3OA==\r\n\
            --b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nATTACHED 080-0000-0000\r\n\
            --b--\r\n";
        let view = MessageView::parse(raw, DEFAULT_SCAN_LIMIT);
        assert_eq!(view.text(), "050-1234-5678");
        let html = b"Content-Type: text/html\r\n\r\n<p>Call <b>KYOTO</b> office</p>\r\n";
        let view = MessageView::parse(html, DEFAULT_SCAN_LIMIT);
        assert!(view.text().contains("KYOTO") && !view.text().contains("<b>"), "{:?}", view.text());
    }

    #[test]
    fn text_is_cut_at_the_bound_on_a_char_boundary() {
        let view = MessageView::new(vec![(HeaderField::Subject, "ああ".into())], ["abc", "京都"], 6);
        // After "abc" and the joining "\n", "京" (3 bytes) does not fit in the 2 left; a joining
        // newline with nothing after it is left out.
        assert_eq!(view.text(), "abc");
        assert!(view.is_truncated());
        assert_eq!(values(&view), [("Subject", "ああ")]);
        let view = MessageView::new(vec![(HeaderField::Subject, "ああ".into())], ["abc", "d"], 4);
        assert_eq!((view.text(), view.is_truncated()), ("abc", true));
        assert_eq!(values(&view), [("Subject", "あ")]);
        let view = MessageView::new(Vec::new(), ["abc", "d"], 5);
        assert_eq!((view.text(), view.is_truncated()), ("abc\nd", false));
    }

    #[test]
    fn anything_parses_to_something() {
        for raw in [&b""[..], b"\r\n", b"no header at all", b"Subject: =?x?Q?=FF?=\r\n\r\n\xff\xfe", b"To: <<<@@@>>>\r\n\r\n"] {
            let view = MessageView::parse(raw, 16);
            assert!(view.text().len() <= 16);
        }
    }
}
