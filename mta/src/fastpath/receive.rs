//! The receiving side of the fast path (DESIGN.md "Receiver (UAS)"; seed 004 R201-R207):
//! answer INVITEs for our numbers, get the stream (wait on our listener, or connect out when
//! `media_role = "active"`), check the FP/1 token, and run the same inbound SMTP session as
//! port 25 on it, with the `fastpath` listener kind: local domains only, never a relay.

use std::sync::Arc;

use sipfast::fp1::{Role, callee_handshake};
use sipfast::sdp::{Reach, SessionDescription, Transport, answer};
use sipfast::ua::Incoming;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use super::FastPath;
use crate::config::MediaRole;
use crate::relay::outbound::BoxIo;
use crate::smtp::{Ctx, Kind, SessionState, serve_connection};

/// Answer calls until the channel closes or `stop`.
pub async fn run(
    fp: Arc<FastPath>,
    mut incoming: mpsc::Receiver<Incoming>,
    live: watch::Receiver<Arc<Ctx>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let call = tokio::select! {
            c = incoming.recv() => match c { Some(c) => c, None => return },
            () = crate::server::stopped(&mut stop) => return,
        };
        let (fp, smtp) = (fp.clone(), live.borrow().clone());
        let span = info_span!("fastpath_call", number = %call.number, from = %call.from);
        tokio::spawn(answer_call(fp, smtp, call).instrument(span));
    }
}

async fn answer_call(fp: Arc<FastPath>, smtp: Arc<Ctx>, call: Incoming) {
    let cfg = &fp.config.fastpath;
    let call_from = call.from.clone();
    let protocols: Vec<&str> = cfg.protocols.iter().map(String::as_str).collect();
    let offer = match SessionDescription::parse(call.offer_sdp.as_bytes()) {
        Ok(o) => o,
        Err(e) => {
            info!(error = %e, "unreadable SDP offer; 488");
            let _ = call.reject(488).await;
            return;
        }
    };
    let reach = match cfg.media_role {
        MediaRole::Passive => Reach::Listen { addr: fp.advertise, port: fp.streams.local_addr().port() },
        MediaRole::Active => Reach::DialOut { addr: fp.advertise },
    };
    let ours = match answer(&offer, &protocols, reach) {
        Ok(a) => a,
        Err(rejection) => {
            info!(reason = %rejection, "offer refused");
            let _ = call.reject(rejection.sip_status()).await;
            return;
        }
    };
    // The passive side listens before its SDP goes out (RFC 4145): register the token first.
    let expected = matches!(ours.transport, Transport::Accept).then(|| fp.streams.expect(&ours.token));
    let dialog = match call.accept(&ours.sdp.encode()).await {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "could not answer the call");
            return;
        }
    };
    let preamble = cfg.preamble_timeout.0;
    let stream: Option<(BoxIo, Role, std::net::SocketAddr)> = match ours.transport {
        Transport::Accept => match expected {
            Some(e) => e.arrive(preamble).await.map(|(s, peer)| (Box::new(s) as BoxIo, Role::Passive, peer)),
            None => None,
        },
        Transport::Connect(addr) => match tokio::time::timeout(preamble, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Some((Box::new(s) as BoxIo, Role::Active, addr))
            }
            _ => None,
        },
    };
    let Some((stream, role, peer)) = stream else {
        info!("no fast-path stream arrived; hanging up");
        let _ = dialog.hangup().await;
        return;
    };
    let wanted: Vec<&str> = ours.protocols.iter().map(String::as_str).collect();
    match callee_handshake(stream, role, &ours.token, &wanted, preamble).await {
        Ok((stream, protocol)) if protocol == "smtp" => {
            info!(%peer, ?role, "fast-path SMTP session");
            let local = fp.streams.local_addr();
            let mut st = SessionState::new(Kind::FastPath, peer, local);
            st.sip_caller = caller_number(&call_from);
            // Ends when the caller says QUIT or the stream closes; a BYE meanwhile ends it too.
            tokio::select! {
                () = serve_connection(stream, smtp, st) => {}
                () = dialog.ended() => debug!("the caller hung up during the session"),
            }
        }
        Ok((_, protocol)) => info!(protocol, "fast-path protocol not served here"),
        Err(e) => info!(error = %e, "FP/1 handshake failed"),
    }
    if !dialog.is_ended() {
        let _ = dialog.hangup().await;
    }
}

/// The user part of a caller's From URI when it is an E.164 number
/// (`sip:+815011112222@example.jp;user=phone` gives `+815011112222`).
fn caller_number(uri: &str) -> Option<String> {
    let rest = uri.trim().trim_start_matches('<');
    let rest = rest.strip_prefix("sip:").or_else(|| rest.strip_prefix("sips:")).or_else(|| rest.strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '>']).next()?;
    let digits = user.strip_prefix('+')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::caller_number;

    #[test]
    fn the_caller_number_is_the_e164_user_part() {
        assert_eq!(caller_number("sip:+815011112222@sip.example;user=phone").as_deref(), Some("+815011112222"));
        assert_eq!(caller_number("<sips:+815011112222@sip.example>").as_deref(), Some("+815011112222"));
        assert_eq!(caller_number("sip:alice@sip.example"), None);
        assert_eq!(caller_number("sip:05011112222@sip.example"), None, "national form: not an identity we compare");
    }
}
