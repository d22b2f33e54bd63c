//! Delivery status notifications (RFC 3464): the reports we send about a spooled message, and
//! the reports other MTAs send back about mail we relayed.
//!
//! Everything here is pure: bytes and values in, bytes and values out, no IO and no clock (the
//! caller passes `now`). That keeps the queue code, which decides *when* a report is due, apart
//! from the format, and lets the format be unit-tested and fuzzed alone.
//!
//! - [`wanted`] and [`may_send_to`] are the policy: whether a recipient's NOTIFY asks for a
//!   report of this kind (RFC 3461 §4.1), and whether a report may go to the sender at all.
//! - [`build`] turns a [`Report`] into a complete RFC 5322 message (RFC 3462 multipart/report,
//!   RFC 3464 message/delivery-status, RFC 6533 global types for SMTPUTF8 mail).
//! - [`mdn`] does the same for the RFC 8098 receipts a sender asks for with
//!   `Disposition-Notification-To`: the policy ([`mdn::should_send`]) and the format.
//! - [`parse`] reads a DSN that came back into a [`ParsedDsn`], for DSN tracking (DESIGN.md
//!   "Relay queue and DSN"): a relayed message's final outcome may be known only from it.
//!
//! Invariants of [`build`]'s output: every line ends with CRLF, no line is longer than 998
//! octets (RFC 5322 §2.1.1), and nothing taken from the envelope or a remote reply can inject a
//! header line or a MIME boundary. The caller sends it to the original reverse-path (RFC 3464
//! §2) with the null reverse-path as its own sender (RFC 5321 §4.5.5, §6.1), so that a failing
//! report never causes another one.

mod build;
pub mod mdn;
mod parse;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

use sipmta_store::{Envelope, Notify};

pub use build::build;
pub use parse::{ParsedAction, ParsedDsn, ParsedRecipient, parse};

/// RFC 3464 §2.3.3 `Action`: what happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Permanently undeliverable; the MTA has given up.
    Failed,
    /// Not delivered yet; still being retried.
    Delayed,
    /// Delivered to the recipient's mailbox (locally, or by a fast-path peer that stored it).
    Delivered,
    /// Passed to a next hop that does not send DSNs; no further reports will come.
    Relayed,
    /// Delivered to a list or alias that forwards it to further addresses.
    Expanded,
}

impl Action {
    /// The RFC 3464 §2.3.3 keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// Read a keyword; RFC 3464 §2.3.3 values are case-insensitive.
    pub fn from_keyword(s: &str) -> Option<Action> {
        [Action::Failed, Action::Delayed, Action::Delivered, Action::Relayed, Action::Expanded]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The RFC 3463 status class used when the caller gave none: failures are permanent (5),
    /// delays transient (4), the rest success (2).
    fn default_status(self) -> &'static str {
        match self {
            Action::Failed => "5.0.0",
            Action::Delayed => "4.0.0",
            Action::Delivered | Action::Relayed | Action::Expanded => "2.0.0",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to report about one recipient (one RFC 3464 §2.3 per-recipient block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address we tried (becomes `Final-Recipient`).
    pub final_recipient: String,
    /// The ORCPT parameter in its stored `addr-type;address` form (becomes `Original-Recipient`).
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// RFC 3463 enhanced status code, e.g. `5.1.1`; an empty or malformed one is replaced by the
    /// class default for the action (`5.0.0`, `4.0.0`, `2.0.0`).
    pub status: String,
    /// The host name of the remote MTA that gave the answer, e.g. `mx.example.net`.
    pub remote_mta: Option<String>,
    /// The remote reply, e.g. `550 5.1.1 <x@y>: user unknown`, or our own reason in words.
    pub diagnostic: Option<String>,
    /// When the last delivery attempt was made (Unix seconds).
    pub last_attempt: Option<u64>,
    /// When we will give up (Unix seconds); written only for [`Action::Delayed`].
    pub will_retry_until: Option<u64>,
}

/// Everything [`build`] needs for one DSN to one sender.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Our host name, as in `Reporting-MTA` and the `MAILER-DAEMON@` address.
    pub reporting_mta: &'a str,
    /// The original message's envelope; the report goes to its sender.
    pub envelope: &'a Envelope,
    /// The original message as stored (CRLF line endings).
    pub message: &'a [u8],
    /// The recipients to report on. Usually all of one action, but mixing is allowed.
    pub recipients: Vec<RecipientReport>,
    /// Above this size in octets a failure report returns only the header section.
    pub max_returned: usize,
}

/// Whether a recipient's NOTIFY parameter asks for a report with this action (RFC 3461 §4.1).
///
/// - `NEVER`: no report of any kind.
/// - An explicit list: only the kinds listed. `SUCCESS` covers `delivered`, `relayed` and
///   `expanded` (RFC 3461 §4.1, §5.2.2: a relayed or expanded message is the last success we
///   can report), `FAILURE` covers `failed`, `DELAY` covers `delayed`. A list with nothing set
///   cannot come from the SMTP grammar and asks for nothing.
/// - No NOTIFY: RFC 3461 §4.1 lets the MTA act as if `FAILURE` or `FAILURE,DELAY` was given; we
///   choose `FAILURE,DELAY`, as Postfix and Sendmail do, so a sender hears about mail stuck for
///   hours instead of only after the queue lifetime.
pub fn wanted(notify: Option<Notify>, action: Action) -> bool {
    let Some(n) = notify else {
        return matches!(action, Action::Failed | Action::Delayed);
    };
    if n.never {
        return false;
    }
    match action {
        Action::Failed => n.failure,
        Action::Delayed => n.delay,
        Action::Delivered | Action::Relayed | Action::Expanded => n.success,
    }
}

/// Whether a DSN may be sent to this reverse-path at all.
///
/// The only rule in the RFCs is that a message with the null reverse-path (which DSNs and other
/// notifications themselves use) never gets one (RFC 5321 §4.5.5, §6.1), so a failing
/// notification cannot start a loop. The store keeps the null sender as the empty string; `<>`
/// is accepted as the same thing in case a caller passes the wire form. Senders that merely
/// look like robots (`MAILER-DAEMON@...`) are not filtered: no RFC says to, and such mail
/// carries `<>` anyway when it follows the rules.
pub fn may_send_to(sender: &str) -> bool {
    let s = sender.trim();
    !(s.is_empty() || s == "<>")
}
