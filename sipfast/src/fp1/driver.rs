//! The FP/1 handshakes over a real stream: [`caller_handshake`] and [`callee_handshake`].
//!
//! Both run over any `AsyncRead + AsyncWrite + Unpin` stream that is already connected (the TCP
//! stream the SDP answer told them to open or accept) and return it when the preamble is done.
//!
//! **Nothing past the preamble is read.** Lines are read one octet at a time, so when a handshake
//! returns, the next octet in the stream is the first one of the negotiated protocol (the callee's
//! SMTP `220` greeting after `FP/1 OK smtp`). That costs one read call per octet for about a
//! hundred octets per session, which is nothing next to the connect, and it means no buffer has to
//! be handed back with the stream. Wrap the stream in a `BufReader` only *after* the handshake.
//!
//! **Time.** The whole exchange is bounded by one `timeout` ([`DEFAULT_TIMEOUT`], 10 s, DESIGN:
//! "10 s for connect + preamble"); pass what remains of the budget after connecting.
//!
//! **Refusals.** When this side finds the peer at fault it writes the matching `FP/1 ERR` line
//! (400, 403 or 415, see [`super::Refusal`]), shuts the stream down and returns the error; the
//! stream is dropped, which closes it. An `FP/1 ERR` from the peer ends the handshake the same way.
//!
//! **Shared listeners.** A passive side checks the `HELLO` against one token, so it expects the
//! connection to belong to one session: bind one listener per offer or answer (port 0) rather
//! than one listener for every session.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Line, ParseError, Refusal, Role, Token, is_protocol_name, parse_line};

/// DESIGN: 10 s for connect plus preamble.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the caller's handshake agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol the callee confirmed with `FP/1 OK`.
    pub protocol: String,
    /// Whether the caller asked `PROTOS?` (it did not when the protocol table knew the protocol):
    /// store `protocol` in the protocol table when this is true.
    pub asked: bool,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum Fp1Error {
    /// The preamble did not finish in time.
    #[error("FP/1 preamble not finished within {0:?}")]
    Timeout(Duration),
    /// The token check failed: the peer's `HELLO` did not carry the session's token (we answered
    /// `ERR 403`), its echo differed from ours, or it answered our `HELLO` with `ERR 403`.
    #[error("FP/1 token check failed")]
    BadToken,
    /// The peer refused with `FP/1 ERR` (other than the 403 and 415 that have their own variants).
    #[error("FP/1 peer refused: {code} {reason}")]
    Peer {
        /// The peer's code.
        code: u16,
        /// The peer's reason text.
        reason: String,
    },
    /// `USE` named a protocol the callee does not support: the callee answered `ERR 415`
    /// (caller side) or the caller asked for it (callee side, which answered `ERR 415`).
    /// Clear the protocol table entry for this number.
    #[error("FP/1 protocol {protocol} not supported by the callee")]
    UnsupportedProtocol {
        /// The protocol named in `USE`.
        protocol: String,
    },
    /// The callee's `PROTOS` list has nothing the caller wants (the caller sent `ERR 415`).
    #[error("FP/1 no common protocol; callee offers {offered:?}")]
    NoCommonProtocol {
        /// The callee's list.
        offered: Vec<String>,
    },
    /// The peer sent something that is not an FP/1 line (garbage, a line over 512 octets); we
    /// answered `ERR 400`.
    #[error("FP/1 protocol violation: {0}")]
    Invalid(#[source] ParseError),
    /// The peer sent a valid line out of order (for example `OK` naming another protocol, or
    /// `USE` from the callee); we answered `ERR 400`.
    #[error("FP/1 protocol violation: expected {expected}, got {got}")]
    Unexpected {
        /// What the handshake was waiting for.
        expected: &'static str,
        /// The verb that came instead.
        got: &'static str,
    },
    /// The peer closed the stream before the preamble ended.
    #[error("FP/1 peer closed the stream during the preamble")]
    Closed,
    /// Reading or writing failed.
    #[error("FP/1 I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The arguments cannot be written as FP/1 (a protocol name that is not a token, an empty
    /// list): a bug in the calling code, reported before anything is sent.
    #[error("FP/1 invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl Fp1Error {
    /// Whether a later attempt over the fast path may succeed: timeouts, resets, early closes and
    /// the peer's `5xx`. The others (token, protocol mismatch, violations) would fail the same way
    /// again. Either way the message falls back to the relay queue now (DESIGN "Fallback
    /// triggers"); this only says whether the number stays worth trying.
    pub fn is_transient(&self) -> bool {
        match self {
            Fp1Error::Timeout(_) | Fp1Error::Closed | Fp1Error::Io(_) => true,
            Fp1Error::Peer { code, .. } => *code >= 500,
            Fp1Error::BadToken
            | Fp1Error::UnsupportedProtocol { .. }
            | Fp1Error::NoCommonProtocol { .. }
            | Fp1Error::Invalid(_)
            | Fp1Error::Unexpected { .. }
            | Fp1Error::InvalidArgument(_) => false,
        }
    }

    /// Whether the protocol table entry for the number should be cleared (seed 004: when `USE`
    /// fails the caller records the failure and forgets the stored protocol).
    pub fn is_protocol_mismatch(&self) -> bool {
        matches!(self, Fp1Error::UnsupportedProtocol { .. } | Fp1Error::NoCommonProtocol { .. })
    }
}

/// The caller's side (it sent the INVITE). `role` is its end of the TCP connection per the SDP
/// answer; `token` is the one from its offer. With `known` (the protocol table's entry for the
/// number) it sends `USE` at once; otherwise it asks `PROTOS?` and uses the first of `wanted`
/// (its preference order) that the callee lists.
pub async fn caller_handshake<S>(
    mut stream: S,
    role: Role,
    token: &Token,
    known: Option<&str>,
    wanted: &[&str],
    timeout: Duration,
) -> Result<(S, Negotiated), Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(p) = known {
        if !is_protocol_name(p) {
            return Err(Fp1Error::InvalidArgument("known protocol is not a token"));
        }
    } else if wanted.is_empty() || !wanted.iter().all(|p| is_protocol_name(p)) {
        return Err(Fp1Error::InvalidArgument("wanted protocols must be a non-empty list of tokens"));
    }
    let result = tokio::time::timeout(timeout, caller_steps(&mut stream, role, token, known, wanted)).await;
    finish(stream, result, timeout)
}

/// The callee's side (it answered the INVITE). `supported` is the protocol list of its SDP
/// answer, in its preference order; it is what `PROTOS?` is answered with.
pub async fn callee_handshake<S>(
    mut stream: S,
    role: Role,
    token: &Token,
    supported: &[&str],
    timeout: Duration,
) -> Result<(S, String), Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if supported.is_empty() || !supported.iter().all(|p| is_protocol_name(p)) {
        return Err(Fp1Error::InvalidArgument("supported protocols must be a non-empty list of tokens"));
    }
    let result = tokio::time::timeout(timeout, callee_steps(&mut stream, role, token, supported)).await;
    finish(stream, result, timeout)
}

fn finish<S, T>(
    stream: S,
    result: Result<Result<T, Fp1Error>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<(S, T), Fp1Error> {
    match result {
        Ok(Ok(value)) => Ok((stream, value)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "fp1 handshake failed");
            Err(e)
        }
        Err(_) => {
            tracing::debug!(?timeout, "fp1 handshake timed out");
            Err(Fp1Error::Timeout(timeout))
        }
    }
}

async fn caller_steps<S>(stream: &mut S, role: Role, token: &Token, known: Option<&str>, wanted: &[&str]) -> Result<Negotiated, Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    hello(stream, role, token).await?;
    let (protocol, asked) = match known {
        Some(p) => (p.to_owned(), false),
        None => {
            send(stream, &Line::ProtosQuery).await?;
            let offered = match expect(stream, "PROTOS").await? {
                Line::Protos(list) => list,
                other => return Err(unexpected(stream, "PROTOS", &other).await),
            };
            match wanted.iter().find(|w| offered.iter().any(|o| o == *w)) {
                Some(p) => ((*p).to_owned(), true),
                None => {
                    refuse(stream, Refusal::UnsupportedProtocol).await;
                    return Err(Fp1Error::NoCommonProtocol { offered });
                }
            }
        }
    };
    send(stream, &Line::Use(protocol.clone())).await?;
    match expect(stream, "OK").await {
        Ok(Line::Ok(p)) if p == protocol => Ok(Negotiated { protocol, asked }),
        Ok(other) => Err(unexpected(stream, "OK", &other).await),
        Err(Fp1Error::Peer { code: 415, .. }) => Err(Fp1Error::UnsupportedProtocol { protocol }),
        Err(e) => Err(e),
    }
}

async fn callee_steps<S>(stream: &mut S, role: Role, token: &Token, supported: &[&str]) -> Result<String, Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    hello(stream, role, token).await?;
    let mut answered_query = false;
    loop {
        match expect(stream, "PROTOS? or USE").await? {
            Line::ProtosQuery if !answered_query => {
                answered_query = true;
                send(stream, &Line::Protos(supported.iter().map(|p| (*p).to_owned()).collect())).await?;
            }
            Line::Use(p) if supported.contains(&p.as_str()) => {
                send(stream, &Line::Ok(p.clone())).await?;
                return Ok(p);
            }
            Line::Use(protocol) => {
                refuse(stream, Refusal::UnsupportedProtocol).await;
                return Err(Fp1Error::UnsupportedProtocol { protocol });
            }
            other => return Err(unexpected(stream, "PROTOS? or USE", &other).await),
        }
    }
}

/// The `HELLO` exchange: the active side sends and checks the echo; the passive side checks and
/// echoes (RFC 4145 roles, DESIGN "FP/1 preamble").
async fn hello<S>(stream: &mut S, role: Role, token: &Token) -> Result<(), Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match role {
        Role::Active => {
            send(stream, &Line::Hello(*token)).await?;
            match expect(stream, "HELLO").await {
                Ok(Line::Hello(echo)) if echo.ct_eq(token) => Ok(()),
                Ok(Line::Hello(_)) | Err(Fp1Error::Invalid(ParseError::BadToken)) => {
                    refuse(stream, Refusal::BadToken).await;
                    Err(Fp1Error::BadToken)
                }
                Err(Fp1Error::Peer { code: 403, .. }) => Err(Fp1Error::BadToken),
                Ok(other) => Err(unexpected(stream, "HELLO", &other).await),
                Err(e) => Err(e),
            }
        }
        Role::Passive => match expect(stream, "HELLO").await {
            Ok(Line::Hello(theirs)) if theirs.ct_eq(token) => send(stream, &Line::Hello(*token)).await,
            Ok(Line::Hello(_)) | Err(Fp1Error::Invalid(ParseError::BadToken)) => {
                tracing::debug!("fp1 hello with a wrong token");
                refuse(stream, Refusal::BadToken).await;
                Err(Fp1Error::BadToken)
            }
            Ok(other) => Err(unexpected(stream, "HELLO", &other).await),
            Err(e) => Err(e),
        },
    }
}

/// Reads the next line. A peer's `ERR` becomes [`Fp1Error::Peer`]; an unparsable line is
/// refused with `ERR 400` — except a bad `HELLO` token, which the caller of this refuses with
/// 403.
async fn expect<S>(stream: &mut S, expected: &'static str) -> Result<Line, Fp1Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match read_line(stream).await {
        Ok(Line::Err { code, reason }) => Err(Fp1Error::Peer { code, reason }),
        Ok(line) => Ok(line),
        Err(Fp1Error::Invalid(ParseError::BadToken)) if expected == "HELLO" => Err(Fp1Error::Invalid(ParseError::BadToken)),
        Err(Fp1Error::Invalid(e)) => {
            refuse(stream, Refusal::BadRequest).await;
            Err(Fp1Error::Invalid(e))
        }
        Err(e) => Err(e),
    }
}

/// Reads one line, one octet at a time, so nothing after its LF is consumed.
async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Line, Fp1Error> {
    let mut buf = Vec::with_capacity(64);
    loop {
        let octet = match stream.read_u8().await {
            Ok(octet) => octet,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Fp1Error::Closed),
            Err(e) => return Err(Fp1Error::Io(e)),
        };
        buf.push(octet);
        match parse_line(&buf) {
            Ok((line, _)) => {
                tracing::trace!(line = %String::from_utf8_lossy(&buf).trim_end(), "fp1 <");
                return Ok(line);
            }
            Err(ParseError::Incomplete) => {}
            Err(e) => {
                tracing::trace!(partial = %String::from_utf8_lossy(&buf), "fp1 < invalid");
                return Err(Fp1Error::Invalid(e));
            }
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, line: &Line) -> Result<(), Fp1Error> {
    // Every line we send is built from checked arguments, so this only fails on a bug.
    let wire = line.encode().map_err(|_| Fp1Error::InvalidArgument("line cannot be encoded"))?;
    tracing::trace!(line = %String::from_utf8_lossy(&wire).trim_end(), "fp1 >");
    stream.write_all(&wire).await?;
    stream.flush().await?;
    Ok(())
}

/// Refuses the peer with an `FP/1 ERR` line and closes our sending half. Best effort: the peer may
/// be gone already, and the handshake fails either way.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, refusal: Refusal) {
    let _ = send(stream, &refusal.line()).await;
    let _ = stream.shutdown().await;
}

/// A valid line out of order: refuse with 400 and describe it.
async fn unexpected<S: AsyncWrite + Unpin>(stream: &mut S, expected: &'static str, got: &Line) -> Fp1Error {
    refuse(stream, Refusal::BadRequest).await;
    Fp1Error::Unexpected { expected, got: got.verb() }
}

#[cfg(test)]
mod tests;
