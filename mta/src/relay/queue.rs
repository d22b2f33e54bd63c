//! The queue manager: the one owner of the schedule.
//!
//! It keeps an in-memory due index (time, queue id), rebuilt from the store at start, and runs
//! an attempt for each message that falls due, a bounded number at a time, never two for the
//! same message. Anything that changes a message (a new reception, a DSN we queue, an operator's
//! flush, hold, release or delete) wakes it with the message's id and the message is
//! rescheduled from what the store says. When a message is due is decided by [`next_due`]:
//! the earliest retry of a pending recipient, the moment its delay warning is owed, and its
//! expiry, which also applies to held recipients.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sipmta_store::{Envelope, QueueId, RcptState, now};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

use super::attempt::{RelayCtx, attempt};
use crate::config::Relay;

/// When `env` next needs attention, or `None` when nothing is left to do.
pub fn next_due(env: &Envelope, relay: &Relay) -> Option<u64> {
    let expiry = env.received.saturating_add(relay.lifetime.0.as_secs());
    let warning = env.received.saturating_add(relay.delay_warning.0.as_secs());
    let mut due: Option<u64> = None;
    let mut take = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
    for r in &env.recipients {
        match r.state {
            RcptState::Queued | RcptState::Deferred => {
                take(r.next_attempt);
                if !r.delay_notified {
                    take(warning);
                }
                take(expiry);
            }
            RcptState::Held => take(expiry),
            _ => {}
        }
    }
    due
}

/// The schedule: each message at most once.
#[derive(Debug, Default)]
struct Schedule {
    due: BTreeSet<(u64, QueueId)>,
    at: HashMap<QueueId, u64>,
}

impl Schedule {
    fn set(&mut self, id: QueueId, when: Option<u64>) {
        if let Some(old) = self.at.remove(&id) {
            self.due.remove(&(old, id));
        }
        if let Some(t) = when {
            self.due.insert((t, id));
            self.at.insert(id, t);
        }
    }

    fn pop_due(&mut self, now: u64) -> Option<QueueId> {
        let &(t, id) = self.due.first()?;
        if t > now {
            return None;
        }
        self.due.pop_first();
        self.at.remove(&id);
        Some(id)
    }

    fn next(&self) -> Option<u64> {
        self.due.first().map(|(t, _)| *t)
    }
}

/// Run the manager until `stop`; attempts in progress finish before it returns. `live` holds
/// the delivery context, replaced when the configuration is reloaded: attempts started after
/// that use the new one, those in progress finish with theirs.
pub async fn run(mut live: watch::Receiver<Arc<RelayCtx>>, mut wake: mpsc::UnboundedReceiver<QueueId>, mut stop: watch::Receiver<bool>) {
    let mut ctx = live.borrow_and_update().clone();
    let mut relay = ctx.config.relay.clone();
    let mut parallel = relay.max_connections.max(1);
    let mut schedule = Schedule::default();
    let mut in_flight: HashSet<QueueId> = HashSet::new();
    let mut recheck: HashSet<QueueId> = HashSet::new();
    let mut tasks: JoinSet<QueueId> = JoinSet::new();
    let mut count = 0;
    for env in ctx.store.queue() {
        match env {
            Ok(env) => {
                // Every recipient finished but still spooled: the process died between
                // recording the last result and removing the message. An attempt now finds
                // nothing to send and removes it.
                schedule.set(env.id, Some(next_due(&env, &relay).unwrap_or(0)));
                count += 1;
            }
            Err(e) => error!(error = %e, "unreadable queue entry skipped"),
        }
    }
    info!(messages = count, "queue manager started");
    let mut reap = tokio::time::interval(ctx.pool.idle_for().max(Duration::from_secs(1)));
    let mut retired: Vec<Arc<RelayCtx>> = Vec::new();
    loop {
        if live.has_changed().unwrap_or(false) {
            // The old context's pool gets back the connections of attempts still running on
            // it: close them as they come idle (QUIT), or they would linger until shutdown.
            retired.push(std::mem::replace(&mut ctx, live.borrow_and_update().clone()));
            relay = ctx.config.relay.clone();
            parallel = relay.max_connections.max(1);
            reap = tokio::time::interval(ctx.pool.idle_for().max(Duration::from_secs(1)));
        }
        let now = now();
        while tasks.len() < parallel {
            let Some(id) = schedule.pop_due(now) else { break };
            if !in_flight.insert(id) {
                // Already being worked on; look again when that attempt ends.
                recheck.insert(id);
                continue;
            }
            let ctx = ctx.clone();
            tasks.spawn(async move {
                attempt(&ctx, id).await;
                id
            });
        }
        let sleep = match schedule.next() {
            Some(t) if tasks.len() < parallel => Duration::from_millis(t.saturating_sub(now) * 1000 + 5),
            _ => Duration::from_secs(60),
        };
        tokio::select! {
            Some(id) = wake.recv() => {
                if in_flight.contains(&id) {
                    recheck.insert(id);
                } else {
                    reschedule(&ctx, &mut schedule, id, &relay);
                }
            }
            Some(done) = tasks.join_next() => match done {
                Ok(id) => {
                    in_flight.remove(&id);
                    recheck.remove(&id);
                    reschedule(&ctx, &mut schedule, id, &relay);
                }
                Err(e) => error!(error = %e, "delivery attempt failed"),
            },
            _ = reap.tick() => {
                ctx.pool.reap(false);
                for old in &retired {
                    old.pool.reap(true);
                }
            }
            Ok(()) = live.changed() => {}
            _ = tokio::time::sleep(sleep) => {}
            () = crate::server::stopped(&mut stop) => break,
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            error!(error = %e, "delivery attempt failed");
        }
    }
    ctx.pool.reap(true);
    for old in &retired {
        old.pool.reap(true);
    }
}

fn reschedule(ctx: &RelayCtx, schedule: &mut Schedule, id: QueueId, relay: &Relay) {
    // An SMTP session is delivering it inline; it wakes us with the id when it lets go.
    if ctx.fast.as_ref().is_some_and(|f| f.inline.held(id)) {
        schedule.set(id, None);
        return;
    }
    match ctx.store.envelope(id) {
        Ok(Some(env)) => schedule.set(id, next_due(&env, relay)),
        Ok(None) => schedule.set(id, None),
        Err(e) => error!(queue_id = %id, error = %e, "unreadable queue entry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipmta_rules::Route;
    use sipmta_store::{Body, Origin, Recipient};

    fn env(states: &[(RcptState, u64, bool)]) -> Envelope {
        Envelope {
            id: QueueId(1),
            received: 1000,
            sender: "a@example.org".into(),
            env_id: None,
            ret: None,
            body: Body::SevenBit,
            smtputf8: false,
            size: 0,
            origin: Origin::default(),
            recipients: states
                .iter()
                .map(|&(state, next, warned)| Recipient {
                    state,
                    next_attempt: next,
                    delay_notified: warned,
                    ..Recipient::new("x@remote.example", Route::Relay)
                })
                .collect(),
        }
    }

    #[test]
    fn due_is_the_earliest_of_retry_warning_and_expiry() {
        let relay = Relay::default();
        let warning = 1000 + 4 * 3600;
        let expiry = 1000 + 5 * 86_400;
        assert_eq!(next_due(&env(&[(RcptState::Queued, 0, false)]), &relay), Some(0));
        assert_eq!(next_due(&env(&[(RcptState::Deferred, 99_999, false)]), &relay), Some(warning));
        assert_eq!(next_due(&env(&[(RcptState::Deferred, 99_999, true)]), &relay), Some(99_999));
        assert_eq!(next_due(&env(&[(RcptState::Deferred, 10_000_000, true)]), &relay), Some(expiry));
        assert_eq!(next_due(&env(&[(RcptState::Held, 0, false)]), &relay), Some(expiry), "held mail still expires");
        assert_eq!(next_due(&env(&[(RcptState::Relayed, 0, false), (RcptState::Failed, 0, false)]), &relay), None);
    }

    #[test]
    fn the_schedule_keeps_each_message_once() {
        let mut s = Schedule::default();
        s.set(QueueId(1), Some(50));
        s.set(QueueId(2), Some(10));
        s.set(QueueId(1), Some(5));
        assert_eq!(s.next(), Some(5));
        assert_eq!(s.pop_due(7), Some(QueueId(1)));
        assert_eq!(s.pop_due(7), None);
        s.set(QueueId(2), None);
        assert_eq!(s.next(), None);
    }
}
