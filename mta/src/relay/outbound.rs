//! Outbound SMTP over an established stream: open a session (greeting, EHLO, STARTTLS, AUTH)
//! and run transactions with a result per recipient. The relay queue uses it over TCP to MX
//! hosts and smarthosts; the fast path will use it over a SIP-negotiated stream.
//!
//! mail-send's `SmtpClient` reads replies, parses EHLO and does AUTH. Two things we do
//! ourselves: the DATA phase, because mail-send appends `CRLF.CRLF` even after a message that
//! already ends in CRLF (one extra empty line per hop), and pipelining (RFC 2920), where every
//! batch is read back with exactly as many replies as commands were sent, since mail-send's
//! single `read` discards whatever else arrived in the same segment.
//!
//! Timeouts are those of RFC 5321 §4.5.3.2.

use std::time::Duration;

use mail_send::{Credentials, SmtpClient};
use sipmta_store::{Body, Notify, Ret};
use smtp_proto::{EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Any stream we can run SMTP over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + ?Sized> Io for T {}

/// A boxed stream, so plain and TLS connections have one type.
pub type BoxIo = Box<dyn Io>;

/// RFC 5321 §4.5.3.2 timeouts (the RFC's values are the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (not in the RFC; ours).
    pub connect: Duration,
    /// Initial 220 (§4.5.3.2.1): 5 minutes.
    pub greeting: Duration,
    /// EHLO, MAIL, RCPT, RSET, STARTTLS, AUTH (§4.5.3.2.2-3): 5 minutes.
    pub command: Duration,
    /// DATA initiation (§4.5.3.2.4): 2 minutes.
    pub data_init: Duration,
    /// Each data block written (§4.5.3.2.5): 3 minutes.
    pub data_block: Duration,
    /// The reply to the final dot (§4.5.3.2.6): 10 minutes.
    pub data_end: Duration,
}

impl Timeouts {
    /// The RFC's timeouts with `connect`, each one cut to `cap` when given.
    pub fn capped(self, connect: Duration, cap: Option<Duration>) -> Timeouts {
        let cap = |d: Duration| cap.map_or(d, |c| d.min(c));
        Timeouts {
            connect,
            greeting: cap(self.greeting),
            command: cap(self.command),
            data_init: cap(self.data_init),
            data_block: cap(self.data_block),
            data_end: cap(self.data_end),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: min(5),
            command: min(5),
            data_init: min(2),
            data_block: min(3),
            data_end: min(10),
        }
    }
}

/// When to use STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never.
    None,
    /// When offered; a failed handshake falls back to a new plain connection.
    #[default]
    Opportunistic,
    /// Always; a server without STARTTLS is a failure.
    Required,
}

/// A server reply as we record and report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Reply code.
    pub code: u16,
    /// RFC 3463 status, from the reply or derived from the code.
    pub status: String,
    /// Reply text (lines joined with spaces).
    pub text: String,
}

impl Answer {
    /// An answer we make up ourselves (size limits, missing extensions).
    pub fn local(code: u16, status: &str, text: impl Into<String>) -> Answer {
        Answer { code, status: status.into(), text: text.into() }
    }

    fn from_response(r: &Response<String>) -> Answer {
        let status =
            if r.esc[0] != 0 { format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2]) } else { format!("{}.0.0", (r.code / 100).clamp(2, 5)) };
        Answer { code: r.code, status, text: r.message.replace(['\r', '\n'], " ").trim().to_owned() }
    }

    /// 2xx
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: do not retry.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// A failure before any recipient got an individual answer: every recipient of the attempt
/// shares it. Connection-level failures are transient (try the next host, retry later) unless
/// the server answered 5xx to something that is not about the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// TCP connect failed or timed out.
    #[error("connect to {host} failed: {reason}")]
    Connect {
        /// Host name and address.
        host: String,
        /// What the OS said.
        reason: String,
    },
    /// The server sent a negative reply outside a transaction (greeting, EHLO, STARTTLS, AUTH).
    #[error("{stage}: {answer}")]
    Rejected {
        /// What we were doing.
        stage: &'static str,
        /// The reply.
        answer: Answer,
    },
    /// TLS was required but not offered, or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection broke, timed out, or the server spoke nonsense.
    #[error("{stage}: {reason}")]
    Broken {
        /// What we were doing.
        stage: &'static str,
        /// What happened.
        reason: String,
    },
}

impl Failure {
    /// Whether retrying later could help. AUTH rejections and 5xx greetings are permanent for
    /// this host, but another host (the next MX or smarthost) may still take the message, so
    /// the caller decides per host list; this says only whether *this* failure is final.
    pub fn is_permanent(&self) -> bool {
        // A refused AUTH is our configuration's fault, not the message's: bouncing everyone's
        // mail over a wrong password would be worse than waiting for the operator (Postfix's
        // smtp_sasl_auth_soft_bounce does the same).
        matches!(self, Failure::Rejected { stage, answer } if *stage != "AUTH" && answer.is_permanent())
    }

    /// The status code a DSN should carry.
    pub fn status(&self) -> String {
        match self {
            Failure::Rejected { answer, .. } => answer.status.clone(),
            Failure::Tls(_) => "4.7.5".into(),
            Failure::Connect { .. } => "4.4.1".into(),
            Failure::Broken { .. } => "4.4.2".into(),
        }
    }
}

/// What the next hop announced in EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// RFC 2920
    pub pipelining: bool,
    /// RFC 3461
    pub dsn: bool,
    /// RFC 6531
    pub smtputf8: bool,
    /// RFC 6152
    pub eight_bit: bool,
    /// RFC 3207
    pub starttls: bool,
    /// RFC 1870 (0: no limit announced)
    pub size: u64,
}

impl Caps {
    fn from_ehlo(e: &EhloResponse<String>) -> Caps {
        let has = |flag| e.capabilities & flag != 0;
        Caps {
            pipelining: has(EXT_PIPELINING),
            dsn: has(EXT_DSN),
            smtputf8: has(EXT_SMTP_UTF8),
            eight_bit: has(EXT_8BIT_MIME),
            starttls: has(EXT_START_TLS),
            size: if has(EXT_SIZE) { e.size as u64 } else { 0 },
        }
    }
}

/// How to open a session.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds a TlsConnector, which has no Debug
pub struct OpenOptions<'a> {
    /// Our name for EHLO.
    pub helo: &'a str,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// Connector for STARTTLS (verifying or not, chosen by the caller).
    pub connector: Option<&'a tokio_rustls::TlsConnector>,
    /// Name to present in SNI and to verify against.
    pub tls_name: &'a str,
    /// AUTH credentials (smarthosts).
    pub credentials: Option<(&'a str, &'a str)>,
    /// AUTH is allowed without TLS (the peer is on loopback).
    pub plain_auth_ok: bool,
    /// Timeouts.
    pub timeouts: Timeouts,
}

/// An open SMTP session to a next hop, ready for transactions.
pub struct Connection {
    client: SmtpClient<BoxIo>,
    /// What the server offers (after STARTTLS, the second EHLO's answer).
    pub caps: Caps,
    /// The server's name for logs and DSNs (`Remote-MTA`).
    pub remote: String,
    /// STARTTLS succeeded.
    pub tls: bool,
    /// Transactions run on this connection.
    pub transactions: usize,
    /// A transaction was started (MAIL accepted) and not finished with the reply to the final
    /// dot: the next one must start with RSET, or the server answers `503 nested MAIL`.
    open_transaction: bool,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("remote", &self.remote).field("tls", &self.tls).field("caps", &self.caps).finish_non_exhaustive()
    }
}

mod session;
mod transaction;

pub use transaction::{Outcome, Txn, TxnRcpt, envelope_id};

/// Dot-stuffing and the end-of-data mark for a message stored with CRLF line endings
/// (RFC 5321 §4.5.2): a line starting with `.` gets another, and the terminator is `.CRLF`
/// after a final CRLF (or `CRLF.CRLF` if the message does not end with one).
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut rest = message;
    // Copy whole runs between line starts that begin with a dot; only those get a byte more.
    if rest.first() == Some(&b'.') {
        out.push(b'.');
    }
    while let Some(pos) = memchr::memmem::find(rest, b"\n.") {
        out.extend_from_slice(&rest[..=pos]);
        out.push(b'.');
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// RFC 3461 §4 xtext: `+XX` for `+`, `=`, and anything outside `!`..`~`.
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The NOTIFY value for RCPT (RFC 3461 §4.1).
fn notify_param(n: &Notify) -> String {
    if n.never {
        return "NEVER".into();
    }
    let mut parts = Vec::new();
    if n.success {
        parts.push("SUCCESS");
    }
    if n.failure {
        parts.push("FAILURE");
    }
    if n.delay {
        parts.push("DELAY");
    }
    parts.join(",")
}

fn ret_param(ret: Ret) -> &'static str {
    match ret {
        Ret::Full => "FULL",
        Ret::Hdrs => "HDRS",
    }
}

fn body_is_8bit(body: Body) -> bool {
    body == Body::EightBitMime
}

#[cfg(test)]
mod scripted;
#[cfg(test)]
mod tests;

/// AUTH credentials in mail-send's form.
fn credentials(user: &str, pass: &str) -> Credentials<String> {
    Credentials::new(user.to_owned(), pass.to_owned())
}

/// Write with the data-block timeout.
async fn write_all(client: &mut SmtpClient<BoxIo>, bytes: &[u8], limit: Duration, stage: &'static str) -> Result<(), Failure> {
    for chunk in bytes.chunks(64 * 1024) {
        tokio::time::timeout(limit, client.stream.write_all(chunk))
            .await
            .map_err(|_| Failure::Broken { stage, reason: "timed out writing".into() })?
            .map_err(|e| Failure::Broken { stage, reason: e.to_string() })?;
    }
    tokio::time::timeout(limit, client.stream.flush())
        .await
        .map_err(|_| Failure::Broken { stage, reason: "timed out writing".into() })?
        .map_err(|e| Failure::Broken { stage, reason: e.to_string() })
}

/// Read `n` replies with a timeout.
async fn read_replies(client: &mut SmtpClient<BoxIo>, n: usize, limit: Duration, stage: &'static str) -> Result<Vec<Answer>, Failure> {
    let replies = tokio::time::timeout(limit, client.read_many(n))
        .await
        .map_err(|_| Failure::Broken { stage, reason: "timed out waiting for the reply".into() })?
        .map_err(|e| Failure::Broken { stage, reason: broken(&e) })?;
    Ok(replies.iter().map(Answer::from_response).collect())
}

fn broken(e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::UnparseableReply => "connection closed or unparseable reply".into(),
        other => other.to_string(),
    }
}
