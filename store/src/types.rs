//! The spool's data model: queue ids, envelopes, per-recipient state and history events.
//!
//! Records are stored as JSON so an operator (or a later version) can read them without this
//! code; every field added later must carry `#[serde(default)]` so old spools keep loading.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sipmta_rules::Route;

/// A message's identity in the queue, shown as 16 upper-case hex digits.
///
/// Ids come from sled's `generate_id`, which is unique across restarts, so an id is never reused
/// for another message even after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueId(pub u64);

impl QueueId {
    /// The sled key: big-endian so iteration order is id order.
    pub fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Decode a sled key written by [`QueueId::key`].
    pub fn from_key(key: &[u8]) -> Option<QueueId> {
        Some(QueueId(u64::from_be_bytes(key.try_into().ok()?)))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl FromStr for QueueId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(QueueId)
    }
}

/// Seconds since the Unix epoch, the time unit of every stored record.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 3461 §4.3 `RET`: how much of the message a failure DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    /// The whole message.
    Full,
    /// Only the headers.
    Hdrs,
}

/// The body type declared with `BODY=` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// `BODY=7BIT` or no parameter.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// RFC 3461 §4.1 `NOTIFY`. `None` in [`Recipient::notify`] means the parameter was absent, which
/// RFC 3461 §4.1 lets the MTA treat as `FAILURE,DELAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notify {
    /// `SUCCESS`
    #[serde(default)]
    pub success: bool,
    /// `FAILURE`
    #[serde(default)]
    pub failure: bool,
    /// `DELAY`
    #[serde(default)]
    pub delay: bool,
    /// `NEVER` (exclusive with the others).
    #[serde(default)]
    pub never: bool,
}

/// Where the message came from, for the Received header, logs and policy decisions later.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    /// Which listener accepted it (`smtp`, `submission`, ...).
    pub listener: String,
    /// The client's address and port.
    pub peer: String,
    /// What the client said in EHLO/HELO.
    pub helo: String,
    /// The authenticated user, if any.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Whether the transaction ran over TLS.
    #[serde(default)]
    pub tls: bool,
}

/// Per-recipient delivery state (DESIGN.md "Relay queue and DSN").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptState {
    /// Waiting for its first attempt.
    Queued,
    /// A temporary failure; another attempt is scheduled.
    Deferred,
    /// Stored by the final server (locally, or by a fast-path peer).
    Delivered,
    /// Handed to a next hop that takes over responsibility.
    Relayed,
    /// Permanently failed.
    Failed,
    /// Gave up after the queue lifetime.
    Expired,
    /// Put on hold by the operator.
    Held,
}

impl RcptState {
    /// A finished recipient needs no more work; a message whose recipients are all finished can
    /// leave the spool.
    pub fn is_final(self) -> bool {
        matches!(self, RcptState::Delivered | RcptState::Relayed | RcptState::Failed | RcptState::Expired)
    }
}

impl fmt::Display for RcptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RcptState::Queued => "queued",
            RcptState::Deferred => "deferred",
            RcptState::Delivered => "delivered",
            RcptState::Relayed => "relayed",
            RcptState::Failed => "failed",
            RcptState::Expired => "expired",
            RcptState::Held => "held",
        };
        f.write_str(s)
    }
}

/// One recipient of a spooled message and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The forward-path as received (RFC 5321 §4.1.2 `Mailbox`), source route removed.
    pub address: String,
    /// RFC 3461 §4.2 `ORCPT`, as `addr-type;address` with xtext decoded.
    #[serde(default)]
    pub orcpt: Option<String>,
    /// RFC 3461 §4.1 `NOTIFY`, `None` when absent.
    #[serde(default)]
    pub notify: Option<Notify>,
    /// The routing decision for this recipient.
    pub route: Route,
    /// Delivery state.
    pub state: RcptState,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The last answer or error, as the operator should see it.
    #[serde(default)]
    pub last_reply: Option<String>,
    /// When `state` last changed (Unix seconds).
    #[serde(default)]
    pub updated: u64,
    /// Earliest time of the next attempt (Unix seconds); 0 means "as soon as possible".
    #[serde(default)]
    pub next_attempt: u64,
    /// A `delayed` DSN was sent (or was not wanted) for this recipient; it is sent once.
    #[serde(default)]
    pub delay_notified: bool,
    /// The host that answered last (`mx.example.net`), for DSNs and `queue show`.
    #[serde(default)]
    pub remote_mta: Option<String>,
    /// What a DSN that came back from further down the line said about this recipient.
    #[serde(default)]
    pub remote_dsn: Option<String>,
    /// Why the route was chosen (the rules' evidence, for `queue show`).
    #[serde(default)]
    pub evidence: Option<String>,
}

impl Recipient {
    /// A new recipient waiting for its first attempt.
    pub fn new(address: impl Into<String>, route: Route) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            route,
            state: RcptState::Queued,
            attempts: 0,
            last_reply: None,
            updated: now(),
            next_attempt: 0,
            delay_notified: false,
            remote_mta: None,
            remote_dsn: None,
            evidence: None,
        }
    }

    /// Still needs an attempt (not finished, not on hold).
    pub fn is_pending(&self) -> bool {
        matches!(self.state, RcptState::Queued | RcptState::Deferred)
    }
}

/// A spooled message's envelope: everything SMTP said about it, plus per-recipient state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The queue id; `QueueId(0)` until [`crate::Store::accept`] assigns one.
    pub id: QueueId,
    /// When the message was accepted (Unix seconds).
    pub received: u64,
    /// The reverse-path; empty for the null sender `<>`.
    pub sender: String,
    /// RFC 3461 §4.4 `ENVID`, xtext decoded.
    #[serde(default)]
    pub env_id: Option<String>,
    /// RFC 3461 §4.3 `RET`.
    #[serde(default)]
    pub ret: Option<Ret>,
    /// RFC 6152 body type.
    #[serde(default)]
    pub body: Body,
    /// RFC 6531 `SMTPUTF8` was given.
    #[serde(default)]
    pub smtputf8: bool,
    /// Size of the stored message in octets (with our Received header).
    pub size: u64,
    /// Who sent it.
    pub origin: Origin,
    /// The recipients, in RCPT order.
    pub recipients: Vec<Recipient>,
}

impl Envelope {
    /// All recipients are in a final state.
    pub fn is_finished(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }
}

/// One line of a message's history, shown by `sipmta queue show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (Unix seconds).
    pub at: u64,
    /// The recipient concerned, if the event is about one.
    #[serde(default)]
    pub recipient: Option<String>,
    /// What happened, in words an operator can read.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_round_trip_through_text_and_keys() {
        let id = QueueId(0x0123_4567_89AB_CDEF);
        assert_eq!(id.to_string(), "0123456789ABCDEF");
        assert_eq!("0123456789ABCDEF".parse::<QueueId>().ok(), Some(id));
        assert_eq!(QueueId::from_key(&id.key()), Some(id));
        assert!(QueueId::from_key(b"short").is_none());
    }

    #[test]
    fn final_states() {
        assert!(RcptState::Delivered.is_final());
        assert!(RcptState::Failed.is_final());
        assert!(!RcptState::Queued.is_final());
        assert!(!RcptState::Held.is_final());
    }
}

/// What we remember about a relayed message so DSNs that come back for it can be matched
/// (DESIGN.md "DSN tracking"): kept after the message leaves the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The original queue id.
    pub id: QueueId,
    /// The original reverse-path.
    pub sender: String,
    /// Each relayed recipient with its NOTIFY, to decide what to pass on to the sender.
    pub recipients: Vec<(String, Option<Notify>)>,
    /// When it was relayed (Unix seconds).
    pub at: u64,
}
