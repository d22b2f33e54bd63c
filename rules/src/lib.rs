//! Routing decisions for sipmta, with no IO.
//!
//! This crate will hold the pure `decide` function of DESIGN.md "Routing rules": given an
//! envelope, a bounded view of the message and the routing tables (prefixes, address/domain ->
//! number, keyword -> number, learned numbers), it returns per recipient one [`Route`] and the
//! evidence that decided it, strongest evidence first. It never touches the network, the disk or
//! the clock, so it can be unit-tested and fuzzed alone; the store owns the tables and the daemon
//! feeds them in.
//!
//! Today it holds the vocabulary the rest of the workspace already shares: the route kinds and
//! the domain comparison used to tell local recipients from remote ones.

pub mod number;

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
