//! The `[learning]` section: number exchange between sites (seed 004, second and third
//! embodiments). Mail we send carries our own number; mail we receive may teach us the
//! sender's, but only when the claim is authenticated (DKIM or SPF, or the SIP identity of the
//! fast-path call it came over), so a forged header cannot redirect anyone's mail.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Span;

/// Number exchange settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Learning {
    /// Put our own number (the first of `fastpath.numbers`) in an `X-Fastpath-Tel` header of
    /// the mail our users send to other sites, and of the DSNs we send, so the receiving site
    /// can learn it. A header the client wrote (a destination hint, routing rule 5) is
    /// replaced. Default: true (nothing is added while no own number is configured).
    pub announce: bool,
    /// Learn the numbers other sites announce (`X-Fastpath-Tel`, or the seed's
    /// `From: IPTELNUM-050...`) when the claim is authenticated: a DKIM signature that passes,
    /// is aligned with the From domain and covers the header, or an SPF pass for the MAIL FROM
    /// domain. Learned numbers never override the operator's tables. Default: true.
    pub learn: bool,
    /// How long a learned number is used after it was last confirmed; older entries are
    /// forgotten. Default `"90d"`.
    pub lifetime: Span,
    /// Also accept a number as proven when the message arrived over a fast-path call whose
    /// caller (the INVITE's From) is that number. Turn on only when the SIP server
    /// authenticates callers and checks their From (deploy/kamailio.cfg does; the built-in
    /// registrar authenticates REGISTER only). Default: false.
    pub trust_sip_identity: bool,
    /// How long the DKIM and SPF checks of one message may take (DNS included). The message
    /// is already accepted; its delivery waits for the check so that a DSN it asks for can
    /// use what it taught. Default `"10s"`.
    pub check_timeout: Span,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            announce: true,
            learn: true,
            lifetime: Span(Duration::from_secs(90 * 86_400)),
            trust_sip_identity: false,
            check_timeout: Span(Duration::from_secs(10)),
        }
    }
}

impl Learning {
    /// Add this section's problems to `errors`.
    pub fn validate(&self, errors: &mut Vec<String>) {
        if self.lifetime.0 < Duration::from_secs(1) {
            errors.push("learning.lifetime: must be at least 1s".into());
        }
        if self.check_timeout.0 < Duration::from_millis(100) {
            errors.push("learning.check_timeout: must be at least 100ms".into());
        }
    }
}
