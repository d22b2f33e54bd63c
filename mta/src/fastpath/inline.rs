//! Inline mode (DESIGN.md "Real time"; issue 6 item 1): seed 004 promises that the result is
//! known at the time of sending, so the SMTP session that accepted a message with fast-path
//! recipients runs their attempt itself and keeps its client's DATA reply waiting, within
//! `fastpath.inline_budget`, for the final server's verdict.
//!
//! The message is spooled (durable) before anything starts. While the session's attempt runs it
//! holds a lease on the message, so the queue manager leaves its fast-path recipients alone
//! (local recipients are delivered meanwhile); when the attempt ends, whenever that is, the
//! lease is let go and the queue is woken to relay what fell back and to finish the message.
//!
//! A single recipient's permanent refusal comes back to the client as that `5xx` instead of a
//! DSN. Who tells the sender is settled by [`Claim`]: the attempt claims the refusal only while
//! the client still waits; once the session has given up waiting (budget spent), the attempt
//! sends the DSN as usual. Past the budget, or on any failure, the reply is the usual
//! "queued as" and the queue takes over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sipmta_store::QueueId;
use tracing::{debug, info};

use super::FastPath;
use crate::relay::attempt::RelayCtx;
use crate::relay::fast::{FastOutcome, FastResult, fast_recipients};
use crate::smtp::reply::Reply;

/// Messages whose fast-path recipients an SMTP session is delivering inline.
#[derive(Debug, Default)]
pub struct Leases(Mutex<HashSet<QueueId>>);

impl Leases {
    /// Whether `id` is held by an inline attempt.
    pub fn held(&self, id: QueueId) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    fn take(&self, id: QueueId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    fn release(&self, id: QueueId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// Lets the lease go and wakes the queue when the attempt ends, even by panic.
struct Lease {
    fast: Arc<FastPath>,
    relay: Arc<RelayCtx>,
    id: QueueId,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.fast.inline.release(self.id);
        let _ = self.relay.wake.send(self.id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    GaveUp,
    Claimed,
}

/// Whether the waiting client or a DSN tells the sender about a permanent refusal.
#[derive(Debug)]
pub struct Claim(Mutex<Phase>);

impl Claim {
    fn new() -> Claim {
        Claim(Mutex::new(Phase::Waiting))
    }

    /// The attempt's side: true when the client is still waiting and will get the refusal.
    pub fn claim(&self) -> bool {
        let mut phase = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Waiting {
            *phase = Phase::Claimed;
            true
        } else {
            false
        }
    }

    /// The session's side when its budget is spent: true if it may stop waiting (nothing was
    /// claimed); false when the attempt has claimed a refusal that the client must get.
    fn give_up(&self) -> bool {
        let mut phase = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *phase == Phase::Claimed {
            return false;
        }
        *phase = Phase::GaveUp;
        true
    }
}

/// Whether `id` gets an inline attempt: the fast path is on, inline mode too, and the message
/// has fast-path recipients. Takes the lease when it does; call before waking the queue.
pub fn start(relay: &Arc<RelayCtx>, id: QueueId, has_fast: bool) -> Option<Arc<FastPath>> {
    let fast = relay.fast.as_ref()?;
    if !has_fast || !fast.config.fastpath.inline {
        return None;
    }
    fast.inline.take(id);
    Some(fast.clone())
}

/// Run the inline attempt for `id` (leased by [`start`]) and say what the DATA reply should
/// be, or `None` for the usual "queued as". `received` is when the final dot arrived.
pub async fn verdict(relay: Arc<RelayCtx>, fast: Arc<FastPath>, id: QueueId, received: Instant) -> Option<Reply> {
    let lease = Lease { fast: fast.clone(), relay: relay.clone(), id };
    let (env, message) = match (relay.store.envelope(id), relay.store.message(id)) {
        (Ok(Some(env)), Ok(Some(message))) => (env, message),
        _ => return None, // the lease goes, the queue looks at it
    };
    let single = env.recipients.len() == 1;
    // The budget counts from the final dot: spooling already used some of it.
    let budget = fast.config.fastpath.inline_budget.0.saturating_sub(received.elapsed());
    let claim = Arc::new(Claim::new());
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let attempt_claim = claim.clone();
    // A task of its own: past the budget it goes on, and the queue waits for its lease.
    tokio::spawn(async move {
        let _lease = lease;
        let mut early = Some(tx);
        let results = fast_recipients(&relay, &fast, &env, &message, single.then_some(&*attempt_claim), &mut early).await;
        if let Some(tx) = early {
            let _ = tx.send(results);
        }
        // Finished by the fast path alone: nothing is left for the queue to attempt.
        match relay.store.remove_if_finished(id).await {
            Ok(true) => info!(queue_id = %id, "removed from spool: all recipients finished"),
            Ok(false) => {}
            Err(e) => tracing::warn!(queue_id = %id, error = %e, "cannot remove finished message"),
        }
    });
    let results = match tokio::time::timeout(budget, &mut rx).await {
        Ok(Ok(results)) => results,
        Ok(Err(_)) => return None,
        Err(_) if claim.give_up() => {
            info!(queue_id = %id, budget_ms = budget.as_millis() as u64, "fast path still busy at the inline budget; answering queued");
            return None;
        }
        // A refusal was claimed for this client: its result is being written now.
        Err(_) => rx.await.ok()?,
    };
    let reply = reply_for(id, &results, received);
    debug!(queue_id = %id, reply = ?reply.as_ref().map(|r| r.code), "inline verdict");
    reply
}

/// The DATA reply for the inline results: all delivered, one refused, or `None` (queued).
fn reply_for(id: QueueId, results: &[FastResult], received: Instant) -> Option<Reply> {
    let ms = received.elapsed().as_millis();
    match results {
        [] => None,
        [FastResult { tel, outcome: FastOutcome::Failed { answer, told_client: true }, .. }] => Some(Reply {
            code: answer.code,
            enhanced: Some(answer.status.clone().into()),
            text: format!("final server via fast path to {tel}: {}", clip(&answer.text)).into(),
        }),
        _ if results.iter().all(|r| matches!(r.outcome, FastOutcome::Delivered(_))) => {
            let mut tels: Vec<&str> = results.iter().map(|r| r.tel.as_str()).collect();
            tels.dedup();
            let last = results.iter().rev().find_map(|r| match &r.outcome {
                FastOutcome::Delivered(a) => Some(format!("{} {} {}", a.code, a.status, clip(&a.text))),
                _ => None,
            });
            Some(Reply::new(
                250,
                "2.0.0",
                format!(
                    "Ok: delivered as {id} via fast path to {} in {ms} ms (final server: {})",
                    tels.join(", "),
                    last.unwrap_or_default()
                ),
            ))
        }
        _ => None,
    }
}

/// The final server's text, short enough for one reply line (RFC 5321 §4.5.3.1.5).
fn clip(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= 200 { clean } else { clean.chars().take(200).collect::<String>() + "..." }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::relay::outbound::Answer;

    fn result(outcome: FastOutcome) -> FastResult {
        FastResult { index: 0, tel: "+815022222222".into(), setup_ms: Some(4), outcome }
    }

    #[test]
    fn a_refusal_goes_to_the_client_only_while_it_waits() {
        let waiting = Claim::new();
        assert!(waiting.claim(), "the client still waits: it gets the refusal");
        assert!(!waiting.give_up(), "and the session must then wait for the reply it was promised");
        let late = Claim::new();
        assert!(late.give_up(), "budget spent first");
        assert!(!late.claim(), "so the refusal goes out as a DSN");
    }

    #[test]
    fn the_reply_carries_the_verdict_or_says_queued() {
        let id = QueueId(7);
        let now = Instant::now();
        let ok = result(FastOutcome::Delivered(Answer::local(250, "2.0.0", "Ok: queued as X")));
        let reply = reply_for(id, std::slice::from_ref(&ok), now).unwrap();
        assert_eq!(reply.code, 250);
        assert!(reply.text.contains(&format!("delivered as {id} via fast path to +815022222222 in ")), "{}", reply.text);
        assert!(reply.text.ends_with("(final server: 250 2.0.0 Ok: queued as X)"), "{}", reply.text);
        let refused = result(FastOutcome::Failed { answer: Answer::local(550, "5.1.1", "no such user\r\n"), told_client: true });
        let reply = reply_for(id, &[refused], now).unwrap();
        assert_eq!((reply.code, reply.enhanced.as_deref()), (550, Some("5.1.1")));
        assert_eq!(reply.text, "final server via fast path to +815022222222: no such user");
        // A refusal that a DSN reports, a fallback, or a mix: the usual "queued as".
        let dsn = result(FastOutcome::Failed { answer: Answer::local(550, "5.1.1", "x"), told_client: false });
        assert!(reply_for(id, &[dsn], now).is_none());
        let relaying = result(FastOutcome::Relaying("486 Busy Here".into()));
        assert!(reply_for(id, &[ok, relaying], now).is_none());
        assert!(reply_for(id, &[], now).is_none());
    }

    #[test]
    fn the_final_servers_text_is_clipped_to_one_line() {
        assert_eq!(clip("a\r\nb"), "ab");
        assert_eq!(clip(&"x".repeat(300)).len(), 203);
    }
}
