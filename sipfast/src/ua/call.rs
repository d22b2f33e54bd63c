//! An established call (a confirmed INVITE dialog, RFC 3261 §12) and its end (§15).
//!
//! A watcher task drains the dialog's state channel for as long as the dialog lives: it logs
//! provisional responses, answers the in-dialog requests the fast path has no use for
//! (OPTIONS `200`, re-INVITE/UPDATE `488`, anything else `405`), and when the dialog ends
//! (BYE from the peer, ours, or no ACK) removes it from the dialog layer and flags the end
//! that [`Call::ended`] waits for.
//!
//! Dropping a [`Call`] that is still up sends the BYE in the background, so a session never
//! outlives the code that used it.

use std::sync::Arc;
use std::time::Instant;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::StatusCode;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::SipError;
use super::stack::Shared;

/// An established call. The SDP answer is in [`Call::answer_sdp`]: the peer's answer for a
/// call we placed, our own for one we accepted.
pub struct Call {
    /// The SDP answer of this call's offer/answer exchange (RFC 3264).
    pub answer_sdp: String,
    number: String,
    started: Instant,
    dialog: InviteDialog,
    shared: Arc<Shared>,
    ended: watch::Receiver<bool>,
    done: bool,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("number", &self.number).field("dialog", &self.dialog.id().to_string()).finish()
    }
}

impl Call {
    pub(super) fn new(shared: Arc<Shared>, dialog: InviteDialog, ended: watch::Receiver<bool>, number: &str, answer_sdp: String) -> Call {
        Call { answer_sdp, number: number.to_string(), started: Instant::now(), dialog, shared, ended, done: false }
    }

    /// The number this call is with (the one called, or ours that was called).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// Sends BYE and waits for its final response (RFC 3261 §15.1.1). Ending a call the peer
    /// already ended is not an error.
    pub async fn hangup(mut self) -> Result<(), SipError> {
        self.done = true;
        let result = self.dialog.bye().await;
        self.shared.dialogs.remove_dialog(&self.dialog.id());
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => {
                info!(number = %self.number, elapsed_ms, "call hung up");
                Ok(())
            }
            Err(e) => {
                warn!(number = %self.number, elapsed_ms, error = %e, "BYE failed");
                Err(SipError::Transport(e.to_string()))
            }
        }
    }

    /// Resolves when the call has ended on the peer's side (its BYE, RFC 3261 §15.1.2) or by
    /// the stack (no ACK for our 2xx). Cancel-safe; returns at once if it has already ended.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        // An error means the watcher is gone, which only happens once the dialog has ended.
        ended.wait_for(|ended| *ended).await.ok();
    }

    /// Whether the call has ended (see [`Call::ended`]).
    pub fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done || self.is_ended() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let dialog = self.dialog.clone();
        let shared = self.shared.clone();
        let number = std::mem::take(&mut self.number);
        runtime.spawn(async move {
            if let Err(e) = dialog.bye().await {
                warn!(%number, error = %e, "BYE of a dropped call failed");
            }
            shared.dialogs.remove_dialog(&dialog.id());
        });
    }
}

/// Starts the watcher of a dialog's state channel; the receiver turns `true` when the dialog
/// has ended.
pub(super) fn watch_dialog(shared: Arc<Shared>, mut states: DialogStateReceiver, number: String) -> watch::Receiver<bool> {
    let (ended_tx, ended) = watch::channel(false);
    tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            match state {
                DialogState::Trying(_) => debug!(%number, "100 Trying"),
                DialogState::Early(_, resp) => debug!(%number, status = %resp.status_code, "provisional response"),
                DialogState::Confirmed(id, _) => debug!(%number, dialog = %id, "dialog confirmed"),
                DialogState::Options(_, _, handle) => {
                    handle.reply(StatusCode::OK).await.ok();
                }
                // The session is fixed once set up: no new offer is acceptable (RFC 3261 §14.2).
                DialogState::Updated(_, _, handle) => {
                    handle.reply(StatusCode::NotAcceptableHere).await.ok();
                }
                DialogState::Info(_, _, handle)
                | DialogState::Notify(_, _, handle)
                | DialogState::Refer(_, _, handle)
                | DialogState::Message(_, _, handle)
                | DialogState::Publish(_, _, handle) => {
                    handle.reply(StatusCode::MethodNotAllowed).await.ok();
                }
                DialogState::Terminated(id, reason) => {
                    debug!(%number, dialog = %id, ?reason, "dialog ended");
                    shared.dialogs.remove_dialog(&id);
                    break;
                }
                DialogState::Calling(_) | DialogState::WaitAck(_, _) => {}
            }
        }
        ended_tx.send_replace(true);
    });
    ended
}
