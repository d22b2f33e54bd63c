//! Placing a call: INVITE with the SDP offer, within an answer budget (RFC 3261 §13.2).
//!
//! rsipstack's dialog layer runs the INVITE client transaction: it follows 100/180/183
//! (§13.2.2.1), answers 401/407 with a digest retry (§22.2, §22.3), ACKs a 2xx (§13.2.2.4)
//! and ACKs 3xx-6xx in the transaction (§17.1.1.3). This module adds the budget: when no final
//! answer arrives in time, it CANCELs the INVITE (§9.1). rsipstack defers that CANCEL until a
//! provisional response has arrived, as §9.1 requires, and if a 2xx crosses the CANCEL it ACKs
//! and BYEs that session itself (§15). We wait a short grace for the INVITE's final response
//! (normally `487`) so the ACK goes out before we return.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{self as rsip, StatusCodeKind};
use tracing::{info, warn};

use super::CallError;
use super::call::{Call, watch_dialog};
use super::stack::{Shared, Stack};

/// How long to wait for the CANCEL's and then the INVITE's final response (`487`, ACKed by
/// the transaction); past it both go on in the background and the call is a timeout anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(4);

/// Where an INVITE (or an OPTIONS probe) goes: the Request-URI, and the address it is sent to
/// (`None`: the configured outbound proxy, or the SIP domain).
pub(super) struct Target {
    pub uri: String,
    pub addr: Option<std::net::SocketAddr>,
}

impl Target {
    /// The address and transport the request goes to: `addr` with UDP, or TCP for a
    /// `;transport=tcp` URI (RFC 3261 §19.1.1); else the next hop of every request of ours.
    // rsipstack's own error (over 128 bytes) travels back into rsipstack calls; boxing it gains nothing.
    #[allow(clippy::result_large_err)]
    pub(super) fn destination(&self, shared: &Shared) -> Result<rsipstack::transport::SipAddr, rsipstack::Error> {
        match self.addr {
            Some(addr) => {
                let tcp = self.uri.to_ascii_lowercase().contains(";transport=tcp");
                let transport = if tcp { rsip::Transport::Tcp } else { rsip::Transport::Udp };
                Ok(rsipstack::transport::SipAddr { r#type: Some(transport), ..rsipstack::transport::SipAddr::from(addr) })
            }
            None => shared.next_hop(),
        }
    }
}

/// [`super::SipAgent::call`]: one `info` line per call with the outcome and timing.
pub(super) async fn call(stack: &Stack, number: &str, target: Target, offer_sdp: &str, budget: Duration) -> Result<Call, CallError> {
    let started = Instant::now();
    let result = place(&stack.shared, number, target, offer_sdp, budget).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(_) => info!(%number, outcome = "answered", elapsed_ms, "sip call"),
        Err(CallError::Rejected { code, reason }) => info!(%number, outcome = "rejected", code, %reason, elapsed_ms, "sip call"),
        Err(CallError::Timeout) => info!(%number, outcome = "timeout", budget_ms = budget.as_millis() as u64, elapsed_ms, "sip call"),
        Err(e) => info!(%number, outcome = "failed", error = %e, elapsed_ms, "sip call"),
    }
    result
}

async fn place(shared: &Arc<Shared>, number: &str, target: Target, offer_sdp: &str, budget: Duration) -> Result<Call, CallError> {
    fn protocol(e: impl std::fmt::Display) -> CallError {
        CallError::Protocol(e.to_string())
    }
    let domain = &shared.config.domain;
    let callee = rsip::Uri::try_from(target.uri.as_str()).map_err(protocol)?;
    let destination = target.destination(shared).map_err(protocol)?;
    let (caller_user, credential) = shared.caller();
    let caller = rsip::Uri::try_from(format!("sip:{caller_user}@{domain}").as_str()).map_err(protocol)?;
    let contact = shared.contact(&caller_user, shared.sip_transport()).map_err(protocol)?;
    let option = InviteOption {
        caller,
        callee,
        destination: Some(destination),
        content_type: Some("application/sdp".to_string()),
        offer: Some(offer_sdp.as_bytes().to_vec()),
        contact,
        credential,
        ..Default::default()
    };

    let (states_tx, states) = shared.dialogs.new_dialog_state_channel();
    let (dialog, mut invite) = shared.dialogs.do_invite_async(option, states_tx).map_err(protocol)?;
    let ended = watch_dialog(shared.clone(), states, number.to_string());

    let outcome = match tokio::time::timeout(budget, &mut invite).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let cancel = async {
                if let Err(e) = dialog.cancel().await {
                    warn!(%number, error = %e, "CANCEL failed");
                }
                if let Ok(Ok((_, Some(resp)))) = invite.await {
                    info!(%number, status = %resp.status_code, "INVITE ended after CANCEL");
                }
            };
            if tokio::time::timeout(CANCEL_GRACE, cancel).await.is_err() {
                warn!(%number, "no final response to the cancelled INVITE yet");
            }
            return Err(CallError::Timeout);
        }
    };
    let resp = match outcome {
        Ok(Ok((_, Some(resp)))) => resp,
        Ok(Ok((_, None))) => return Err(CallError::Transport("the INVITE transaction ended without a final response".into())),
        Ok(Err(e)) => return Err(map_error(e)),
        Err(join) => return Err(CallError::Protocol(format!("INVITE task failed: {join}"))),
    };
    if resp.status_code.kind() != StatusCodeKind::Successful {
        return Err(CallError::Rejected { code: resp.status_code.code(), reason: resp.status_code.text().to_string() });
    }
    let answer = String::from_utf8_lossy(&resp.body).into_owned();
    Ok(Call::new(shared.clone(), dialog, ended, number, answer))
}

/// rsipstack errors of an INVITE: transport and transaction failures versus the rest.
fn map_error(e: rsipstack::Error) -> CallError {
    match e {
        rsipstack::Error::TransportLayerError(..)
        | rsipstack::Error::TransactionError(..)
        | rsipstack::Error::DnsResolutionError(..)
        | rsipstack::Error::IoError(..) => CallError::Transport(e.to_string()),
        e => CallError::Protocol(e.to_string()),
    }
}
