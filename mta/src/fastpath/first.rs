//! Deliver first, spool after: inline mode (see [`super::inline`]) for a message whose every
//! recipient goes by fast path to one number. The session runs the transaction from the
//! message in memory and touches the spool only if something is left to do.
//!
//! Why (RELIABILITY.md §1): when the fast path works, the final server's `250` is the durable
//! copy, and our reply follows at once. If the message were spooled first, a crash between the
//! spool write and our reply would leave the client without its `250` and our spool with a
//! copy. The client sends again, the restart delivers the spooled copy, and the final server
//! gets it twice. Delivered first, a crash before the final server's `250` leaves nothing
//! anywhere but the client's resend. Only a crash between that `250` and our reply, a few
//! microseconds, still duplicates. RFC 5321 §6.1 is kept either way: we answer `250` only
//! once the final server has the message, or once our spool does.
//!
//! What is left goes to the spool before the reply, with the results so far in its
//! envelope: recipients that fell back to relay (SIP failure, 4xx), and the whole message when
//! the budget runs out first. In that last case the attempt goes on under the lease and
//! records its results when the spool write has returned, as in [`super::inline`].

use std::sync::Arc;
use std::time::Instant;

use sipmta_rules::Route;
use sipmta_store::{Envelope, Fingerprint, StoreError, now};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::FastPath;
use super::inline::{Claim, Lease, reply_for};
use crate::relay::attempt::RelayCtx;
use crate::relay::fast::{FastOutcome, Sent, apply, fall_back, record, report, report_fallback, to_relay, transmit};
use crate::smtp::reply::Reply;

/// A message that goes first: every recipient by fast path to `tel`.
pub struct First {
    relay: Arc<RelayCtx>,
    fast: Arc<FastPath>,
    tel: String,
}

impl std::fmt::Debug for First {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("First").field("tel", &self.tel).finish_non_exhaustive()
    }
}

impl First {
    /// Whether `env` may go first: the fast path and inline mode are on, and every recipient
    /// is routed to the same number.
    pub fn eligible(relay: &Arc<RelayCtx>, env: &Envelope) -> Option<First> {
        let fast = relay.fast.as_ref().filter(|f| f.config.fastpath.inline)?;
        let mut tels = env.recipients.iter().map(|r| match &r.route {
            Route::Fast { tel } => Some(tel),
            _ => None,
        });
        let tel = tels.next()??;
        tels.all(|t| t == Some(tel)).then(|| First { relay: relay.clone(), fast: fast.clone(), tel: tel.clone() })
    }

    /// Deliver `env` (its id allocated, not spooled) and say what the DATA reply is: `Some` for
    /// a verdict, `None` for the usual "queued as" once it is spooled, `Err` when the spool
    /// write failed and nothing was accepted. `received` is when the final dot arrived.
    /// `fingerprint` goes to the spool with the message, if it gets there (see
    /// [`sipmta_store::Store::accept_once`]).
    pub async fn run(
        self,
        env: Envelope,
        message: Vec<u8>,
        received: Instant,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Option<Reply>, StoreError> {
        let First { relay, fast, tel } = self;
        let id = env.id;
        // Held until the results are recorded: should the message be spooled before that,
        // the queue must not start its recipients too.
        let lease = Lease::take(fast.clone(), relay.clone(), id);
        let budget = fast.config.fastpath.inline_budget.0.saturating_sub(received.elapsed());
        let message: Arc<[u8]> = message.into();
        // Who owns the results: the waiting session (claimed) or, once it gave up, the task.
        let owner = Arc::new(Claim::new());
        let (results_tx, mut results_rx) = oneshot::channel();
        let (spooled_tx, spooled_rx) = oneshot::channel::<bool>();
        let task = Task { relay: relay.clone(), fast, tel: tel.clone(), env: env.clone(), message: message.clone(), owner: owner.clone() };
        tokio::spawn(task.run(lease, results_tx, spooled_rx));
        let sent = match tokio::time::timeout(budget, &mut results_rx).await {
            Ok(Ok(sent)) => sent,
            // The task died (a panic): spool it untouched; the queue delivers it.
            Ok(Err(_)) => return spool(&relay, env, &message, fingerprint).await.map(|()| None),
            Err(_) if owner.give_up() => {
                info!(queue_id = %id, budget_ms = budget.as_millis() as u64, "fast path still busy at the inline budget; spooling and answering queued");
                let spooled = spool(&relay, env, &message, fingerprint).await;
                let _ = spooled_tx.send(spooled.is_ok());
                return spooled.map(|()| None);
            }
            // The results were handed over just as the budget ran out.
            Err(_) => match results_rx.await {
                Ok(sent) => sent,
                Err(_) => return spool(&relay, env, &message, fingerprint).await.map(|()| None),
            },
        };
        settle(&relay, &tel, env, &message, sent, received, fingerprint).await
    }
}

/// The transaction, in a task of its own so that it can outlive the session's budget.
struct Task {
    relay: Arc<RelayCtx>,
    fast: Arc<FastPath>,
    tel: String,
    env: Envelope,
    message: Arc<[u8]>,
    owner: Arc<Claim>,
}

impl Task {
    async fn run(self, _lease: Lease, results: oneshot::Sender<Result<Sent, String>>, spooled: oneshot::Receiver<bool>) {
        let idxs: Vec<usize> = (0..self.env.recipients.len()).collect();
        let sent = transmit(&self.fast, &self.env, &self.message, &self.tel, &idxs, None).await;
        if self.owner.claim() {
            let _ = results.send(sent);
            return;
        }
        // The session stopped waiting and spooled the message; record into that copy.
        let id = self.env.id;
        if spooled.await != Ok(true) {
            warn!(queue_id = %id, tel = %self.tel, "the message could not be spooled after the inline budget; the client was told to try again, so a final server that took it may get it twice");
            return;
        }
        match sent {
            Ok(sent) => {
                record(&self.relay, &self.env, &self.message, &self.tel, &sent).await;
            }
            Err(why) => fall_back(&self.relay, &self.env, &idxs, &why).await,
        }
        match self.relay.store.remove_if_finished(id).await {
            Ok(true) => info!(queue_id = %id, "removed from spool: all recipients finished"),
            Ok(false) => {}
            Err(e) => warn!(queue_id = %id, error = %e, "cannot remove finished message"),
        }
    }
}

/// The session owns the results: apply them to the envelope, spool it if anything is left
/// for the queue, and report.
async fn settle(
    relay: &RelayCtx,
    tel: &str,
    mut env: Envelope,
    message: &[u8],
    sent: Result<Sent, String>,
    received: Instant,
    fingerprint: Option<Fingerprint>,
) -> Result<Option<Reply>, StoreError> {
    let mut sent = match sent {
        Ok(sent) => sent,
        Err(why) => {
            let idxs: Vec<usize> = (0..env.recipients.len()).collect();
            to_relay(&mut env, &idxs, &why);
            let copy = env.clone();
            spool(relay, env, message, fingerprint).await?;
            report_fallback(relay, &copy, &idxs, &why);
            return Ok(None);
        }
    };
    // The waiting client gets a single recipient's refusal as its reply: no DSN.
    let single = env.recipients.len() == 1;
    for (_, outcome) in &mut sent.outcomes {
        if let FastOutcome::Failed { told_client, .. } = outcome {
            *told_client = single;
        }
    }
    apply(&mut env, tel, &sent.outcomes, now());
    let reply = reply_for(env.id, &sent.results(tel), received);
    if env.is_finished() {
        report(relay, &env, message, tel, &sent).await;
        return Ok(Some(reply.unwrap_or_else(|| {
            let delivered = sent.outcomes.iter().filter(|(_, o)| matches!(o, FastOutcome::Delivered(_))).count();
            Reply::new(
                250,
                "2.0.0",
                format!(
                    "Ok: {} delivered to {delivered} of {} recipients via fast path to {tel}; the final server refused the others",
                    env.id,
                    env.recipients.len()
                ),
            )
        })));
    }
    let copy = env.clone();
    spool(relay, env, message, fingerprint).await?;
    report(relay, &copy, message, tel, &sent).await;
    Ok(reply)
}

/// Spool the message, durable when it returns.
async fn spool(relay: &RelayCtx, env: Envelope, message: &[u8], fingerprint: Option<Fingerprint>) -> Result<(), StoreError> {
    let id = env.id;
    match relay.store.accept_once(env, message.to_vec(), fingerprint).await {
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(queue_id = %id, error = %e, "cannot spool what the fast path left; the client is told to try again");
            Err(e)
        }
    }
}
