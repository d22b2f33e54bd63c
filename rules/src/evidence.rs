//! Why a recipient was routed the way it was: one closed enum, one variant per kind of
//! evidence in DESIGN.md "Routing rules", plus the reasons for `Local` and `Relay`.
//!
//! `Display` is the sentence an operator reads in `sipmta route explain` and `queue show`: it
//! names what matched (number, table key, keyword and its label), where (local part, domain,
//! header name, byte offset in the text) and, for a fast-path decision, the E.164 number. The
//! serde form is what the store keeps with the queue entry; variant and field names are
//! therefore part of the stored format.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::HeaderField;
use crate::number::E164;

/// The part of a recipient address a number was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressPart {
    /// Before the last `@`.
    LocalPart,
    /// After it.
    Domain,
}

/// Where in the message header or body evidence was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// In a header field's decoded value.
    Header(HeaderField),
    /// In the decoded text, at this byte offset.
    Text(usize),
}

/// How much of the message was read before concluding there was no evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "read")]
pub enum Examined {
    /// Only the envelope: no message was given.
    Envelope,
    /// The header fields and this many bytes of text; `truncated` when the bound cut it.
    Message {
        /// Bytes of decoded text scanned.
        text_bytes: usize,
        /// Whether the text went on past the bound.
        truncated: bool,
    },
}

/// What decided one recipient's route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// `Local`: the recipient's domain is one of ours.
    LocalDomain {
        /// The domain, as written in the address.
        domain: String,
    },
    /// `Local`: the address has no domain, which RFC 5321 §4.1.1.3 allows only for the
    /// local `postmaster`.
    Unqualified,
    /// `Fast`, rule 1: a prefixed number in the recipient address.
    NumberInAddress {
        /// Local part or domain.
        part: AddressPart,
        /// The number as written there.
        text: String,
        /// The number.
        tel: E164,
    },
    /// `Fast`, rule 2: an address-table row (the address, its domain or a `.parent` key).
    AddressTable {
        /// The row's key.
        key: String,
        /// The row's label.
        name: Option<String>,
        /// The row's number.
        tel: E164,
    },
    /// `Fast`, rule 3: a keyword in the recipient address.
    KeywordInAddress {
        /// The keyword as written in the table.
        keyword: String,
        /// The text that matched it (it may differ in case).
        matched: String,
        /// The row's label.
        name: Option<String>,
        /// The row's number.
        tel: E164,
    },
    /// `Fast`, rule 4: a number learned for this address.
    Learned {
        /// The learned address.
        address: String,
        /// The row's label.
        name: Option<String>,
        /// The learned number.
        tel: E164,
    },
    /// `Fast`, rules 5 and 6: a prefixed number in a header field or the text.
    NumberInMessage {
        /// Where.
        place: Place,
        /// The number as written there.
        text: String,
        /// The number.
        tel: E164,
    },
    /// `Fast`, rules 5 and 6: a keyword in a header field or the text.
    KeywordInMessage {
        /// Where.
        place: Place,
        /// The keyword as written in the table.
        keyword: String,
        /// The text that matched it.
        matched: String,
        /// The row's label.
        name: Option<String>,
        /// The row's number.
        tel: E164,
    },
    /// `Relay`: nothing in the envelope, and header/body evidence was not looked at because
    /// the non-local recipients are in several domains.
    MessageEvidenceIgnored {
        /// The non-local recipients' domains, lowercased and sorted.
        domains: Vec<String>,
    },
    /// `Relay`: no evidence anywhere.
    NoEvidence {
        /// What was read.
        examined: Examined,
    },
}

impl Evidence {
    /// The number this evidence routes to, if it is fast-path evidence.
    pub fn tel(&self) -> Option<&E164> {
        match self {
            Evidence::NumberInAddress { tel, .. }
            | Evidence::AddressTable { tel, .. }
            | Evidence::KeywordInAddress { tel, .. }
            | Evidence::Learned { tel, .. }
            | Evidence::NumberInMessage { tel, .. }
            | Evidence::KeywordInMessage { tel, .. } => Some(tel),
            Evidence::LocalDomain { .. }
            | Evidence::Unqualified
            | Evidence::MessageEvidenceIgnored { .. }
            | Evidence::NoEvidence { .. } => None,
        }
    }
}

/// How many domains `MessageEvidenceIgnored` lists before "and N more".
const DOMAINS_SHOWN: usize = 5;

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::LocalDomain { domain } => write!(f, "local domain {domain}"),
            Evidence::Unqualified => f.write_str("address without a domain: delivered locally (RFC 5321 4.1.1.3)"),
            Evidence::NumberInAddress { part, text, tel } => {
                let part = match part {
                    AddressPart::LocalPart => "local part",
                    AddressPart::Domain => "domain",
                };
                write!(f, "number {text} in the recipient's {part} -> {tel}")
            }
            Evidence::AddressTable { key, name, tel } => write!(f, "address table entry {key}{} -> {tel}", Label(name)),
            Evidence::KeywordInAddress { keyword, matched, name, tel } => {
                write!(f, "keyword {keyword:?}{}{} in the recipient address -> {tel}", Label(name), Written(keyword, matched))
            }
            Evidence::Learned { address, name, tel } => write!(f, "learned table entry {address}{} -> {tel}", Label(name)),
            Evidence::NumberInMessage { place, text, tel } => write!(f, "number {text} {} -> {tel}", At(place)),
            Evidence::KeywordInMessage { place, keyword, matched, name, tel } => {
                write!(f, "keyword {keyword:?}{}{} {} -> {tel}", Label(name), Written(keyword, matched), At(place))
            }
            Evidence::MessageEvidenceIgnored { domains } => {
                write!(f, "header/body evidence ignored: recipients are in {} domains (", domains.len())?;
                for (i, d) in domains.iter().take(DOMAINS_SHOWN).enumerate() {
                    write!(f, "{}{d}", if i > 0 { ", " } else { "" })?;
                }
                if domains.len() > DOMAINS_SHOWN {
                    write!(f, " and {} more", domains.len() - DOMAINS_SHOWN)?;
                }
                f.write_str(")")
            }
            Evidence::NoEvidence { examined: Examined::Envelope } => {
                f.write_str("no number, table entry or keyword for this recipient (message not examined)")
            }
            Evidence::NoEvidence { examined: Examined::Message { text_bytes, truncated } } => {
                write!(f, "no number, table entry or keyword in the address, headers or text ({text_bytes} bytes of text scanned")?;
                f.write_str(if *truncated { ", the rest not)" } else { ")" })
            }
        }
    }
}

/// ` (label)` when there is one.
struct Label<'a>(&'a Option<String>);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

/// `, written "kyoto"` when the text differs from the keyword (in case).
struct Written<'a>(&'a str, &'a str);

impl fmt::Display for Written<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == self.1 { Ok(()) } else { write!(f, ", written {:?},", self.1) }
    }
}

/// `in Subject` or `in the text at byte 1234`.
struct At<'a>(&'a Place);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Place::Header(field) => write!(f, "in {}", field.name()),
            Place::Text(offset) => write!(f, "in the text at byte {offset}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tel() -> E164 {
        E164("+815012345678".into())
    }

    #[test]
    fn sentences_name_what_where_and_the_number() {
        let cases = [
            (
                Evidence::NumberInAddress { part: AddressPart::LocalPart, text: "050-1234-5678".into(), tel: tel() },
                "number 050-1234-5678 in the recipient's local part -> +815012345678",
            ),
            (
                Evidence::AddressTable { key: "efg.com".into(), name: Some("Kyoto office".into()), tel: tel() },
                "address table entry efg.com (Kyoto office) -> +815012345678",
            ),
            (
                Evidence::KeywordInAddress { keyword: "KYOTO".into(), matched: "kyoto".into(), name: None, tel: tel() },
                "keyword \"KYOTO\", written \"kyoto\", in the recipient address -> +815012345678",
            ),
            (
                Evidence::Learned { address: "taro@efg.com".into(), name: None, tel: tel() },
                "learned table entry taro@efg.com -> +815012345678",
            ),
            (
                Evidence::KeywordInMessage {
                    place: Place::Header(HeaderField::Subject),
                    keyword: "KYOTOBRANCHOFFICE".into(),
                    matched: "KYOTOBRANCHOFFICE".into(),
                    name: None,
                    tel: tel(),
                },
                "keyword \"KYOTOBRANCHOFFICE\" in Subject -> +815012345678",
            ),
            (
                Evidence::NumberInMessage { place: Place::Text(120), text: "０５０－１２３４－５６７８".into(), tel: tel() },
                "number ０５０－１２３４－５６７８ in the text at byte 120 -> +815012345678",
            ),
            (
                Evidence::MessageEvidenceIgnored { domains: vec!["a.example".into(), "b.example".into()] },
                "header/body evidence ignored: recipients are in 2 domains (a.example, b.example)",
            ),
            (
                Evidence::NoEvidence { examined: Examined::Message { text_bytes: 262144, truncated: true } },
                "no number, table entry or keyword in the address, headers or text (262144 bytes of text scanned, the rest not)",
            ),
        ];
        for (evidence, sentence) in cases {
            assert_eq!(evidence.to_string(), sentence);
        }
        let many = Evidence::MessageEvidenceIgnored { domains: (0..7).map(|i| format!("d{i}.example")).collect() };
        assert!(many.to_string().ends_with("d4.example and 2 more)"), "{many}");
    }
}
