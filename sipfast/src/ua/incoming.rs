//! Requests we receive (RFC 3261 §8.2): new INVITEs for our numbers, OPTIONS, and in-dialog
//! requests routed to their dialog.
//!
//! One dispatch task reads the endpoint's new server transactions:
//! - a request with a To tag belongs to a dialog (§12.2.2): it goes to that dialog's handler
//!   (BYE ends the call), or gets `481` when no such dialog exists;
//! - an INVITE without a To tag is a new call (§13.3.1): `404` unless the Request-URI user
//!   is one of our numbers, `488` without an SDP offer (the offer/answer of RFC 3264 must be
//!   in the INVITE for the fast path), otherwise an [`Incoming`] on the channel. The server
//!   transaction (100 Trying, 2xx retransmission, ACK, CANCEL with `487`) runs in its own task;
//! - OPTIONS is answered by `options`: `404` for a number not ours, else `200` with Allow,
//!   Accept and our capability description (§11.2);
//! - other methods get `405` with Allow (§8.2.1); a stray ACK is dropped (§17.2.3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::dialog::{Dialog, DialogState, DialogStateReceiver};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{self as rsip, Header, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::SipError;
use super::call::{Call, watch_dialog};
use super::stack::Shared;

/// How long [`Incoming::accept`] waits for the ACK: the 2xx is retransmitted for 64*T1
/// (RFC 3261 §13.3.1.4), after which the stack gives up and BYEs.
const ACK_WAIT: Duration = Duration::from_secs(40);
/// How long an in-dialog request may wait for its dialog to be registered (see `find_dialog`).
const DIALOG_GRACE: Duration = Duration::from_millis(500);
/// Methods we answer (RFC 3261 §20.5), in `405` and OPTIONS answers.
pub(super) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS";

/// An INVITE for one of our numbers, waiting to be accepted or rejected. Dropping it unanswered
/// answers `480 Temporarily Unavailable`.
pub struct Incoming {
    /// The called number: the Request-URI user part, as the proxy delivered it.
    pub number: String,
    /// The caller: the From URI.
    pub from: String,
    /// The SDP offer of the INVITE.
    pub offer_sdp: String,
    dialog: InviteDialog,
    states: Option<DialogStateReceiver>,
    shared: Arc<Shared>,
    received: Instant,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").field("number", &self.number).field("from", &self.from).finish()
    }
}

impl Incoming {
    /// Answers `200 OK` with `answer_sdp` (Content-Type application/sdp) and waits for the ACK
    /// (RFC 3261 §13.3.1.4). Fails if the caller cancelled meanwhile or the ACK never came.
    pub async fn accept(mut self, answer_sdp: &str) -> Result<Call, SipError> {
        let Some(mut states) = self.states.take() else {
            return Err(SipError::Protocol("call already answered".into()));
        };
        let headers = vec![Header::ContentType("application/sdp".into())];
        self.dialog.accept(Some(headers), Some(answer_sdp.as_bytes().to_vec())).map_err(|e| SipError::Protocol(e.to_string()))?;
        let confirmed = tokio::time::timeout(ACK_WAIT, async {
            while let Some(state) = states.recv().await {
                match state {
                    DialogState::Confirmed(..) => return Ok(()),
                    DialogState::Terminated(_, reason) => return Err(format!("call ended before the ACK: {reason:?}")),
                    _ => {}
                }
            }
            Err("dialog gone before the ACK".to_string())
        })
        .await;
        let elapsed_ms = self.received.elapsed().as_millis() as u64;
        let failure = match confirmed {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(SipError::Protocol(why)),
            Err(_) => Some(SipError::Transport("no ACK for our 200 OK".into())),
        };
        if let Some(e) = failure {
            info!(number = %self.number, from = %self.from, outcome = "failed", error = %e, elapsed_ms, "sip incoming call");
            self.shared.dialogs.remove_dialog(&self.dialog.id());
            return Err(e);
        }
        info!(number = %self.number, from = %self.from, outcome = "accepted", elapsed_ms, "sip incoming call");
        let ended = watch_dialog(self.shared.clone(), states, self.number.clone());
        Ok(Call::new(self.shared.clone(), self.dialog.clone(), ended, &self.number, answer_sdp.to_string()))
    }

    /// Rejects the INVITE with a final 3xx-6xx `code`, e.g. 404, 486 or 488 (RFC 3261 §13.3.1.3).
    pub async fn reject(mut self, code: u16) -> Result<(), SipError> {
        if !(300..=699).contains(&code) {
            return Err(SipError::Protocol(format!("{code} is not a final non-2xx status")));
        }
        info!(number = %self.number, from = %self.from, outcome = "rejected", code, elapsed_ms = self.received.elapsed().as_millis() as u64, "sip incoming call");
        self.reject_now(StatusCode::from(code))
    }

    fn reject_now(&mut self, status: StatusCode) -> Result<(), SipError> {
        self.states = None;
        let result = self.dialog.reject(Some(status), None).map_err(|e| SipError::Protocol(e.to_string()));
        self.shared.dialogs.remove_dialog(&self.dialog.id());
        result
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if self.states.is_some() {
            debug!(number = %self.number, "incoming call dropped unanswered");
            self.reject_now(StatusCode::TemporarilyUnavailable).ok();
        }
    }
}

/// The dispatch task: see the module docs. Ends when the agent is cancelled.
pub(super) async fn dispatch(shared: Arc<Shared>, mut transactions: TransactionReceiver, calls: mpsc::Sender<Incoming>) {
    loop {
        let tx = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            tx = transactions.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
        };
        if let Err(e) = route(&shared, tx, &calls).await {
            warn!(error = %e, "failed to answer a SIP request");
        }
    }
}

async fn route(shared: &Arc<Shared>, mut tx: Transaction, calls: &mpsc::Sender<Incoming>) -> rsipstack::Result<()> {
    let in_dialog = tx.original.to_header()?.tag()?.is_some();
    if in_dialog {
        // Off the dispatch task: finding the dialog may take a moment (see `find_dialog`).
        let shared = shared.clone();
        tokio::spawn(async move {
            match find_dialog(&shared, &tx).await {
                Some(mut dialog) => {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        debug!(error = %e, "in-dialog request failed");
                    }
                }
                None if tx.original.method == Method::Ack => {}
                None => {
                    tx.reply(StatusCode::CallTransactionDoesNotExist).await.ok();
                }
            }
        });
        return Ok(());
    }
    match tx.original.method {
        Method::Invite => new_invite(shared, tx, calls).await,
        Method::Options => super::options::answer(shared, tx).await,
        Method::Ack => Ok(()),
        _ => tx.reply_with(StatusCode::MethodNotAllowed, vec![Header::Allow(ALLOW.into())], None).await,
    }
}

/// The dialog of an in-dialog request. rsipstack ACKs a 2xx inside the INVITE transaction and
/// only then registers the confirmed dialog, so a peer that sends BYE right after our ACK can
/// be faster than that registration: look again for a short while before answering `481`.
async fn find_dialog(shared: &Shared, tx: &Transaction) -> Option<Dialog> {
    let deadline = Instant::now() + DIALOG_GRACE;
    loop {
        if let Some(dialog) = shared.dialogs.match_dialog(tx) {
            return Some(dialog);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn new_invite(shared: &Arc<Shared>, mut tx: Transaction, calls: &mpsc::Sender<Incoming>) -> rsipstack::Result<()> {
    let number = tx.original.uri.auth.as_ref().map(|auth| auth.user.clone()).unwrap_or_default();
    let from = tx.original.from_header()?.uri().map(|uri| uri.to_string()).unwrap_or_default();
    if !shared.is_ours(&number) {
        info!(%number, %from, outcome = "not ours", code = 404, "sip incoming call");
        return tx.reply(StatusCode::NotFound).await;
    }
    if tx.original.body.is_empty() {
        info!(%number, %from, outcome = "no offer", code = 488, "sip incoming call");
        return tx.reply(StatusCode::NotAcceptableHere).await;
    }
    let offer_sdp = String::from_utf8_lossy(&tx.original.body).into_owned();
    let transport = tx.connection.as_ref().map_or(rsip::Transport::Udp, |c| c.transport());
    let (states_tx, states) = shared.dialogs.new_dialog_state_channel();
    let dialog = match shared.contact(&number, transport) {
        Ok(contact) => shared.dialogs.get_or_create_server_invite(&tx, states_tx, None, Some(contact)),
        Err(e) => Err(e),
    };
    let mut dialog = match dialog {
        Ok(dialog) => dialog,
        Err(e) => {
            // STYLE 6: the detail goes to the log, the peer gets a bland 500.
            warn!(%number, %from, error = %e, "cannot set up a dialog for an incoming INVITE");
            return tx.reply(StatusCode::ServerInternalError).await;
        }
    };
    let incoming = Incoming {
        number,
        from,
        offer_sdp,
        dialog: dialog.clone(),
        states: Some(states),
        shared: shared.clone(),
        received: Instant::now(),
    };
    // The server INVITE transaction: 100 Trying, our final response, then ACK or CANCEL.
    tokio::spawn(async move {
        if let Err(e) = dialog.handle(&mut tx).await {
            debug!(error = %e, "INVITE server transaction failed");
        }
    });
    match calls.try_send(incoming) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(mut incoming)) => {
            info!(number = %incoming.number, outcome = "busy", code = 486, "sip incoming call");
            incoming.reject_now(StatusCode::BusyHere).ok();
        }
        Err(mpsc::error::TrySendError::Closed(mut incoming)) => {
            info!(number = %incoming.number, outcome = "nobody listening", code = 480, "sip incoming call");
            incoming.reject_now(StatusCode::TemporarilyUnavailable).ok();
        }
    }
    Ok(())
}
