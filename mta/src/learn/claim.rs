//! What a message claims about its sender's number, read without IO: the `X-Fastpath-Tel`
//! header our sites add (issue 7 item 1), or the seed's `From: IPTELNUM-050999999` form (seed
//! 004, step S306), and the addresses such a claim may be learned for.
//!
//! A claim is only read when it is unambiguous: one `X-Fastpath-Tel` header, one `From`
//! header. A second copy is how a forger would try to slip a number past a DKIM signature that
//! covers only the original (RFC 6376 §5.4.2 signs the bottom-most instances, readers look at
//! the top), so it voids the claim instead of picking one.

use mail_parser::{HeaderName, MessageParser};
use sipmta_rules::{E164, NumberPlan};

/// The announcing header (DESIGN.md routing rule 5 reads it as a destination hint in mail a
/// client submits; between sites it names the sender's own number).
pub const HEADER: &str = "X-Fastpath-Tel";

/// The seed's marker in the From header.
const IPTELNUM: &str = "IPTELNUM-";

/// Which header carried the number; DKIM must cover that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `X-Fastpath-Tel: +815012345678`.
    Header,
    /// `From: IPTELNUM-050999999 <fax@example.jp>`.
    From,
}

impl Form {
    /// The header name, lower case, as DKIM's `h=` list is compared.
    pub fn header(self) -> &'static str {
        match self {
            Form::Header => "x-fastpath-tel",
            Form::From => "from",
        }
    }
}

/// A number a message announces for its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The number, normalised to E.164.
    pub tel: E164,
    /// Where it was written.
    pub form: Form,
    /// The single From address, lower case, when the header holds exactly one with a domain.
    pub from: Option<String>,
}

/// Why a message's announcement is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Two or more `X-Fastpath-Tel` or `From` headers.
    Ambiguous(&'static str),
    /// The number is not a number of the plan.
    BadNumber(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Ambiguous(h) => write!(f, "more than one {h} header"),
            Unreadable::BadNumber(n) => write!(f, "{n:?} is not an IP telephone number"),
        }
    }
}

/// The number `message` announces, if any. `X-Fastpath-Tel` wins over `IPTELNUM-` in From.
pub fn read(message: &[u8], plan: &NumberPlan) -> Result<Option<Claim>, Unreadable> {
    let Some(parsed) = MessageParser::new().parse_headers(message) else {
        return Ok(None);
    };
    let mut tel_values = Vec::new();
    let mut from_raw = Vec::new();
    for h in parsed.headers() {
        let raw = message.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
        let raw = String::from_utf8_lossy(raw).replace(['\r', '\n'], " ");
        if h.name.as_str().eq_ignore_ascii_case(HEADER) {
            tel_values.push(raw);
        } else if h.name == HeaderName::From {
            from_raw.push(raw);
        }
    }
    if tel_values.len() > 1 {
        return Err(Unreadable::Ambiguous(HEADER));
    }
    if from_raw.len() > 1 {
        return Err(Unreadable::Ambiguous("From"));
    }
    let from = parsed
        .from()
        .and_then(|a| a.as_list())
        .filter(|list| list.len() == 1)
        .and_then(|list| list[0].address.as_deref())
        .filter(|a| sipmta_rules::domain_of(a).is_some())
        .map(str::to_lowercase);
    let (text, form) = match (tel_values.pop(), from_raw.pop().and_then(|f| iptelnum(&f))) {
        (Some(v), _) => (v.trim().to_owned(), Form::Header),
        (None, Some(n)) => (n, Form::From),
        (None, None) => return Ok(None),
    };
    let tel = plan.normalise(&text).map_err(|_| Unreadable::BadNumber(text.clone()))?;
    Ok(Some(Claim { tel, form, from }))
}

/// The digits after `IPTELNUM-` in a From header value (display name or local part).
fn iptelnum(from: &str) -> Option<String> {
    let at = from.to_ascii_uppercase().find(IPTELNUM)? + IPTELNUM.len();
    let number: String = from[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    number.bytes().any(|b| b.is_ascii_digit()).then_some(number)
}

/// Whether a DKIM signing domain `d` vouches for `domain`: the same domain or a parent of it
/// (DMARC's relaxed alignment, RFC 7489 §3.1.1, without the public suffix list: a parent that
/// is a public suffix cannot publish keys for its children's mail in practice).
pub fn aligned(domain: &str, d: &str) -> bool {
    let (domain, d) = (domain.trim_end_matches('.').to_ascii_lowercase(), d.trim_end_matches('.').to_ascii_lowercase());
    !d.is_empty() && d.contains('.') && (domain == d || domain.ends_with(&format!(".{d}")))
}

/// Return `message` without any `X-Fastpath-Tel` header, for mail our own users submit: theirs
/// was a destination hint, already used for routing, and must not pass for our announcement.
pub fn strip(message: &[u8]) -> Option<Vec<u8>> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let spans: Vec<(usize, usize)> = parsed
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(HEADER))
        .map(|h| (h.offset_field as usize, h.offset_end as usize))
        .collect();
    if spans.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for (start, end) in spans {
        out.extend_from_slice(&message[at..start]);
        at = end;
    }
    out.extend_from_slice(&message[at..]);
    Some(out)
}

/// Our announcement, a complete header line.
pub fn header_line(tel: &E164) -> String {
    format!("{HEADER}: {tel}\r\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan() -> NumberPlan {
        NumberPlan::default()
    }

    #[test]
    fn the_header_form_is_read_and_normalised() {
        let m = b"From: Taro <Taro@A.example>\r\nX-Fastpath-Tel: 050-1111-2222\r\nSubject: x\r\n\r\nbody\r\n";
        let c = read(m, &plan()).unwrap().unwrap();
        assert_eq!(c.tel.0, "+815011112222");
        assert_eq!(c.form, Form::Header);
        assert_eq!(c.from.as_deref(), Some("taro@a.example"));
    }

    #[test]
    fn the_seeds_from_form_is_read() {
        let m = b"From: IPTELNUM-050999999 <fax@a.example>\r\nSubject: x\r\n\r\nbody\r\n";
        // 050 takes eight more digits: the seed's example number is too short for the plan.
        assert_eq!(read(m, &plan()), Err(Unreadable::BadNumber("050999999".into())));
        let m = b"From: IPTELNUM-050-1234-5678 <fax@a.example>\r\n\r\nbody\r\n";
        let c = read(m, &plan()).unwrap().unwrap();
        assert_eq!((c.tel.0.as_str(), c.form), ("+815012345678", Form::From));
        let bare = b"From: iptelnum-05012345678@a.example\r\n\r\n";
        assert_eq!(read(bare, &plan()).unwrap().unwrap().tel.0, "+815012345678");
    }

    #[test]
    fn two_copies_void_the_claim() {
        let m = b"X-Fastpath-Tel: +815011112222\r\nFrom: a@a.example\r\nX-Fastpath-Tel: +815033334444\r\n\r\n";
        assert_eq!(read(m, &plan()), Err(Unreadable::Ambiguous(HEADER)));
        let m = b"From: a@a.example\r\nFrom: IPTELNUM-05011112222 <b@a.example>\r\n\r\n";
        assert_eq!(read(m, &plan()), Err(Unreadable::Ambiguous("From")));
    }

    #[test]
    fn nothing_to_read_and_bad_numbers() {
        assert_eq!(read(b"From: a@a.example\r\nSubject: 050-1111-2222\r\n\r\n", &plan()), Ok(None));
        assert!(matches!(read(b"X-Fastpath-Tel: call me\r\n\r\n", &plan()), Err(Unreadable::BadNumber(_))));
    }

    #[test]
    fn alignment_is_the_domain_or_a_parent() {
        assert!(aligned("a.example", "A.example"));
        assert!(aligned("mx.a.example", "a.example"));
        assert!(!aligned("a.example", "mx.a.example"));
        assert!(!aligned("evila.example", "a.example"));
        assert!(!aligned("a.example", "example"), "a bare TLD never aligns");
    }

    #[test]
    fn strip_removes_every_copy_and_keeps_the_rest() {
        let m = b"From: a@a.example\r\nX-Fastpath-Tel: +815011112222\r\nSubject: s\r\nx-fastpath-tel:\r\n +815033334444\r\n\r\nX-Fastpath-Tel: body\r\n";
        let out = strip(m).unwrap();
        assert_eq!(out, b"From: a@a.example\r\nSubject: s\r\n\r\nX-Fastpath-Tel: body\r\n");
        assert_eq!(strip(b"From: a@a.example\r\n\r\n"), None);
    }
}
