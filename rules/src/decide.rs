//! The routing decision: per recipient, `Local`, `Fast { tel }` or `Relay`, and why.
//!
//! Order (DESIGN.md "Routing rules", strongest first; the first that yields a number wins):
//! 0. a local domain is `Local`, whatever else the address says;
//! 1. a prefixed number in the recipient address, local part or domain;
//! 2. the address table: the exact address, its domain, then `.parent` keys;
//! 3. a keyword in the recipient address;
//! 4. the learned table;
//! 5. a number or keyword in `X-Fastpath-Tel`, `To`, `Cc`, `Subject` (in that order);
//! 6. a number or keyword in the decoded text.
//!
//! Within one header value or the text, the leftmost number or keyword wins, a number on a
//! tie. Rules 5 and 6 describe the message, not a recipient, so they apply only when every
//! non-local recipient is in one domain; otherwise the undecided recipients are relayed and
//! their evidence says why. The message is read at most once per call and only when some
//! non-local recipient is still undecided after rules 1-4; the text only when no header
//! decided. No IO, clock or randomness: the same inputs give the same decisions.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::evidence::{AddressPart, Evidence, Examined, Place};
use crate::find::Leftmost;
use crate::message::MessageView;
use crate::number::Found;
use crate::tables::Tables;
use crate::{Route, domain_of, normal_domain};

/// One recipient's route and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Where the recipient's copy goes.
    pub route: Route,
    /// Why.
    pub evidence: Evidence,
}

impl Decision {
    fn local(evidence: Evidence) -> Decision {
        Decision { route: Route::Local, evidence }
    }

    fn relay(evidence: Evidence) -> Decision {
        Decision { route: Route::Relay, evidence }
    }

    /// `Fast` to the evidence's number (every fast-path evidence carries one).
    fn fast(evidence: Evidence) -> Decision {
        match evidence.tel() {
            Some(tel) => Decision { route: Route::Fast { tel: tel.0.clone() }, evidence },
            None => Decision::relay(evidence),
        }
    }
}

/// Route every recipient, in order. `is_local` is asked about each recipient's domain (the
/// text after the last `@`, as written); an address without a domain is local. `view` is the
/// message, if the caller has it: without it rules 5 and 6 cannot apply.
pub fn decide(rcpts: &[String], is_local: &dyn Fn(&str) -> bool, view: Option<&MessageView>, tables: &Tables) -> Vec<Decision> {
    let (mut decided, domains) = envelope(rcpts, is_local, tables);
    if decided.iter().all(Option::is_some) {
        return decided.into_iter().flatten().collect();
    }
    let rest = if domains.len() > 1 {
        Decision::relay(Evidence::MessageEvidenceIgnored { domains: domains.into_iter().collect() })
    } else {
        match view {
            None => Decision::relay(Evidence::NoEvidence { examined: Examined::Envelope }),
            Some(view) => match message_evidence(view, tables) {
                Some(evidence) => Decision::fast(evidence),
                None => Decision::relay(Evidence::NoEvidence {
                    examined: Examined::Message { text_bytes: view.text().len(), truncated: view.is_truncated() },
                }),
            },
        }
    };
    decided.iter_mut().for_each(|d| _ = d.get_or_insert_with(|| rest.clone()));
    decided.into_iter().flatten().collect()
}

/// Whether [`decide`] would read the message for these recipients: some non-local recipient
/// has no envelope evidence and all non-local recipients share one domain. When this is
/// false the caller need not parse the message at all.
pub fn needs_message(rcpts: &[String], is_local: &dyn Fn(&str) -> bool, tables: &Tables) -> bool {
    let (decided, domains) = envelope(rcpts, is_local, tables);
    domains.len() <= 1 && decided.iter().any(Option::is_none)
}

/// Rules 0-4 for every recipient (`None`: undecided), and the non-local domains.
fn envelope(rcpts: &[String], is_local: &dyn Fn(&str) -> bool, tables: &Tables) -> (Vec<Option<Decision>>, BTreeSet<String>) {
    let mut domains = BTreeSet::new();
    let decided = rcpts
        .iter()
        .map(|rcpt| match domain_of(rcpt) {
            None => Some(Decision::local(Evidence::Unqualified)),
            Some(domain) if is_local(domain) => Some(Decision::local(Evidence::LocalDomain { domain: domain.to_string() })),
            Some(domain) => {
                domains.insert(normal_domain(domain));
                address_evidence(rcpt, tables).map(Decision::fast)
            }
        })
        .collect();
    (decided, domains)
}

/// Rules 1-4 for one non-local recipient.
fn address_evidence(rcpt: &str, tables: &Tables) -> Option<Evidence> {
    if let Some(found) = tables.plan().find_iter(rcpt).next() {
        // The domain starts after the last `@` (see `domain_of`).
        let at = rcpt.rfind('@').unwrap_or(rcpt.len());
        let part = if found.start < at { AddressPart::LocalPart } else { AddressPart::Domain };
        return Some(Evidence::NumberInAddress { part, text: rcpt[found.start..found.end].to_string(), tel: found.number });
    }
    if let Some(hit) = tables.lookup_address(rcpt) {
        return Some(Evidence::AddressTable { key: hit.key.to_string(), name: hit.entry.name.clone(), tel: hit.entry.tel.clone() });
    }
    if let Some(hit) = tables.first_keyword(rcpt) {
        return Some(Evidence::KeywordInAddress {
            keyword: hit.keyword.to_string(),
            matched: rcpt[hit.start..hit.end].to_string(),
            name: hit.entry.name.clone(),
            tel: hit.entry.tel.clone(),
        });
    }
    let (address, entry) = tables.lookup_learned(rcpt)?;
    Some(Evidence::Learned { address: address.to_string(), name: entry.name.clone(), tel: entry.tel.clone() })
}

/// Rules 5 and 6: the first header value with evidence, else the text.
fn message_evidence(view: &MessageView, tables: &Tables) -> Option<Evidence> {
    view.headers()
        .iter()
        .find_map(|(field, value)| text_evidence(value, Place::Header(*field), tables))
        .or_else(|| text_evidence(view.text(), Place::Text(0), tables))
}

/// The leftmost number or keyword in `text` (a number on a tie). For `Place::Text` the
/// offset is filled in with the match's.
fn text_evidence(text: &str, place: Place, tables: &Tables) -> Option<Evidence> {
    let at = |start: usize| match place {
        Place::Text(_) => Place::Text(start),
        header => header,
    };
    match tables.first_in_text(text)? {
        Leftmost::Number(Found { start, end, number }) => {
            Some(Evidence::NumberInMessage { place: at(start), text: text[start..end].to_string(), tel: number })
        }
        Leftmost::Keyword(hit) => Some(Evidence::KeywordInMessage {
            place: at(hit.start),
            keyword: hit.keyword.to_string(),
            matched: text[hit.start..hit.end].to_string(),
            name: hit.entry.name.clone(),
            tel: hit.entry.tel.clone(),
        }),
    }
}
