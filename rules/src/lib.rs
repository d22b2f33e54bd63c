//! Routing decisions for sipmta, with no IO.
//!
//! [`decide`] is DESIGN.md "Routing rules" as a pure function: given the envelope's recipients,
//! a predicate for local domains, a bounded [`MessageView`] of the message and the routing
//! [`Tables`] (number prefixes, address/domain -> number, keyword -> number, learned numbers), it
//! returns per recipient one [`Route`] and the [`Evidence`] that decided it, strongest evidence
//! first. It never touches the network, the disk or the clock, and uses no randomness, so it
//! can be unit-tested and fuzzed alone; the store owns the tables and the daemon feeds them in.
//!
//! Modules: [`number`] (prefixes, E.164, finding numbers in text), [`tables`] (building and
//! looking up the tables), `keywords` (the multi-pattern keyword matcher), `find` (the first
//! number or keyword in a header or body, both in one pass), `scan` (the byte classification
//! under both scanners), [`message`] (the parts of a message that are read), [`evidence`]
//! (why), `decide` (the precedence).

mod decide;
pub mod evidence;
mod find;
mod keywords;
pub mod message;
pub mod number;
mod scan;
pub mod tables;

pub use decide::{Decision, decide, needs_message};
pub use evidence::{AddressPart, Evidence, Examined, Place};
pub use message::{DEFAULT_SCAN_LIMIT, HeaderField, MessageView};
pub use number::{E164, NumberPlan, Prefix};
pub use tables::{Entry, RulesError, TableData, TableName, Tables};

use serde::{Deserialize, Serialize};

/// Where one recipient's copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// A domain this site delivers itself (Maildir or LMTP).
    Local,
    /// Straight to the final server over a SIP session to this E.164 number.
    Fast {
        /// The destination's IP telephone number in E.164 form, e.g. `+815012345678`.
        tel: String,
    },
    /// Hop-by-hop SMTP relay through the queue.
    Relay,
}

/// The domain part of an address (after the last `@`), or `None` for an unqualified one.
///
/// The last `@` decides because a quoted local part may itself contain `@`
/// (RFC 5321 §4.1.2 `Quoted-string`), and the parser hands us the local part unquoted.
pub fn domain_of(address: &str) -> Option<&str> {
    let (_, domain) = address.rsplit_once('@')?;
    (!domain.is_empty()).then_some(domain)
}

/// Domain names compare without regard to ASCII case (RFC 5321 §2.4) and without a trailing
/// root dot.
pub fn same_domain(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A domain in the form tables and domain sets compare: lowercase, no trailing root dot.
pub(crate) fn normal_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_after_the_last_at() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("x@evil.example@localhost"), Some("localhost"));
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of("user@"), None);
    }

    #[test]
    fn domains_compare_case_insensitively() {
        assert!(same_domain("LocalHost", "localhost"));
        assert!(same_domain("example.com.", "EXAMPLE.com"));
        assert!(!same_domain("example.com", "example.org"));
    }
}
