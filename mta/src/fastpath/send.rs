//! The sending side of the fast path (DESIGN.md "Sender (UAC)"; seed 004 steps T201-T207):
//! OPTIONS first when the protocol table does not know the number ([`super::probe`]), then
//! offer SDP, INVITE the number within the answer budget, get the stream (connect, or wait
//! for the callee to connect when it is behind NAT), FP/1 (skipping `PROTOS?` when the
//! protocol table knows the number), then the same outbound SMTP transaction as relay.
//! An idle session to the number carries the next message (RSET first: it proves the session
//! alive before anything of the message is sent), see [`super::sessions`].
//!
//! Every failure before the transaction's answers is returned as a reason, and the caller moves
//! the recipients to the relay queue: nothing is lost, and nothing has been accepted twice,
//! because no final `250` was seen.

use std::time::Instant;

use sipfast::fp1::{Role, Token, caller_handshake};
use sipfast::sdp::{Offer, SessionDescription, Transport};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::FastPath;
use super::locate::{Target, locate};
use super::probe;
use super::sessions::Session;
use crate::config::MediaRole;
use crate::relay::outbound::{BoxIo, Connection, Failure, OpenOptions, Outcome, Timeouts, TlsPolicy, Txn};

/// A fast-path transaction's result: the final server's answers, or why the fast path could
/// not be used (the recipients then go to relay).
pub type Attempt = Result<Delivered, String>;

/// What the final server said, and how quickly.
#[derive(Debug)]
pub struct Delivered {
    /// Per-recipient answers from the final server.
    pub outcome: Outcome,
    /// Call setup (INVITE to stream ready) for a new session, `None` for a reused one.
    pub setup_ms: Option<u128>,
}

/// Deliver `txn` to the final server reached at `tel`: over an idle session if one is open,
/// else over a new one, at most `max_sessions_per_number` at a time.
pub async fn deliver(fp: &FastPath, tel: &str, txn: &Txn<'_>) -> Attempt {
    let _slot = fp.sessions.slot(tel).await;
    while let Some(mut session) = fp.sessions.take(tel) {
        // RSET first (pipelined with MAIL/RCPT/DATA): a stale session fails there, before any
        // of the message is sent.
        match session.conn.send_reset_first(txn).await {
            Ok(outcome) => {
                debug!(tel, transactions = session.conn.transactions, "reused fast-path session");
                fp.sessions.put(tel, session);
                return Ok(Delivered { outcome, setup_ms: None });
            }
            // Gone, or broken before the message went out: nothing was accepted, a new session
            // may try.
            Err(
                e @ (Failure::Rejected { stage: "RSET", .. }
                | Failure::Broken { stage: "RSET" | "RSET/MAIL/RCPT/DATA" | "MAIL" | "RCPT" | "MAIL/RCPT/DATA" | "DATA", .. }),
            ) => {
                debug!(tel, error = %e, "idle fast-path session is gone or broke before the message; opening a new one");
                session.close().await;
            }
            Err(e) => {
                session.close().await;
                return Err(format!("SMTP over the fast path to {tel}: {e}"));
            }
        }
    }
    let started = Instant::now();
    let mut session = open(fp, tel).await?;
    let setup_ms = started.elapsed().as_millis();
    crate::metrics::METRICS.fastpath_setup(started.elapsed());
    match session.conn.send(txn).await {
        Ok(outcome) => {
            info!(tel, setup_ms, "fast-path transaction done");
            fp.sessions.put(tel, session);
            Ok(Delivered { outcome, setup_ms: Some(setup_ms) })
        }
        Err(e) => {
            session.close().await;
            Err(format!("SMTP over the fast path to {tel}: {e}"))
        }
    }
}

/// Set up a new session to `tel`: OPTIONS if its protocol is unknown, INVITE, stream, FP/1,
/// SMTP greeting and EHLO.
async fn open(fp: &FastPath, tel: &str) -> Result<Session, String> {
    let cfg = &fp.config.fastpath;
    let target = locate(&cfg.locators, &fp.static_map, &cfg.enum_suffix, &fp.resolver, tel).await?;
    probe::before_invite(fp, tel, &target).await?;
    let token = Token::generate().map_err(|_| "no randomness for the FP/1 token".to_owned())?;
    let protocols: Vec<&str> = cfg.protocols.iter().map(String::as_str).collect();
    // The passive side listens before its SDP goes out (RFC 4145): register the token first.
    let (offer, expected) = match cfg.media_role {
        MediaRole::Passive => {
            (Offer::new(fp.advertise, fp.streams.local_addr().port(), &protocols, token), Some(fp.streams.expect(&token)))
        }
        MediaRole::Active => (Offer::dial_out(fp.advertise, &protocols, token), None),
    };
    let call = match &target {
        Target::Proxy => fp.agent.call(tel, &offer.encode(), cfg.answer_budget.0).await,
        Target::Direct { uri, addr, via } => {
            debug!(tel, %uri, %addr, via, "calling a located SIP URI");
            fp.agent.call_uri(tel, uri, *addr, &offer.encode(), cfg.answer_budget.0).await
        }
    };
    let call = call.map_err(|e| match &target {
        Target::Proxy => format!("SIP call to {tel}: {e}"),
        Target::Direct { uri, via, .. } => format!("SIP call to {tel} at {uri} ({via}): {e}"),
    })?;
    let accepted = match SessionDescription::parse(call.answer_sdp.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|sdp| offer.read_answer(&sdp).map_err(|e| e.to_string()))
    {
        Ok(a) => a,
        Err(e) => {
            let _ = call.hangup().await;
            return Err(format!("unusable SDP answer from {tel}: {e}"));
        }
    };
    let preamble = cfg.preamble_timeout.0;
    let stream: Result<(BoxIo, Role), String> = match accepted.transport {
        Transport::Connect(addr) => match tokio::time::timeout(preamble, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok((Box::new(s) as BoxIo, Role::Active))
            }
            Ok(Err(e)) => Err(format!("connecting to {addr} for {tel}: {e}")),
            Err(_) => Err(format!("connecting to {addr} for {tel}: timed out")),
        },
        Transport::Accept => match expected {
            Some(expected) => match expected.arrive(preamble).await {
                Some((s, _)) => Ok((Box::new(s) as BoxIo, Role::Passive)),
                None => Err(format!("{tel} did not connect to us within {preamble:?}")),
            },
            None => Err(format!("{tel} answered active but we offered to dial out")),
        },
    };
    let (stream, role) = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = call.hangup().await;
            return Err(e);
        }
    };
    let known = fp.store.protocol(tel).ok().flatten().and_then(|e| e.protocol);
    let wanted: Vec<&str> = accepted.protocols.iter().map(String::as_str).filter(|p| *p == "smtp").collect();
    let handshake =
        caller_handshake(stream, role, &token, known.as_deref(), if wanted.is_empty() { &["smtp"] } else { &wanted }, preamble).await;
    let stream = match handshake {
        Ok((stream, negotiated)) => {
            let recorded =
                if negotiated.asked { fp.store.protocol_negotiated(tel, &negotiated.protocol) } else { fp.store.protocol_used(tel) };
            if let Err(e) = recorded {
                debug!(error = %e, "cannot update the protocol table");
            }
            if negotiated.protocol != "smtp" {
                let _ = call.hangup().await;
                return Err(format!("{tel} agreed on {} instead of smtp", negotiated.protocol));
            }
            stream
        }
        Err(e) => {
            if e.is_protocol_mismatch() {
                let _ = fp.store.protocol_failed(tel, &e.to_string());
            }
            let _ = call.hangup().await;
            return Err(format!("FP/1 with {tel}: {e}"));
        }
    };
    let opts = OpenOptions {
        helo: &fp.config.hostname,
        tls: TlsPolicy::Opportunistic,
        connector: Some(&fp.connectors.encrypt_only),
        tls_name: "fastpath.invalid",
        credentials: None,
        plain_auth_ok: false,
        timeouts: Timeouts::default(),
    };
    match Connection::open(stream, &format!("{tel} (fast path)"), &opts).await {
        Ok(conn) => Ok(Session { call, conn }),
        Err(e) => {
            if let Err(e) = call.hangup().await {
                debug!(error = %e, "BYE failed");
            }
            Err(format!("SMTP over the fast path to {tel}: {e}"))
        }
    }
}
