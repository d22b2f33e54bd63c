//! Operator control of the queue: `flush`, `hold`, `release` and `delete`, and the history
//! across all messages. The admin API and the CLI's direct path (no daemon running) both call
//! these, so the two give the same results and the same errors.
//!
//! Invariants:
//! - Every envelope change goes through [`Store::modify`] and removal through
//!   [`Store::remove`], so an operator's change never overwrites a delivery result written at the
//!   same moment (and a result written after a `hold` keeps the recipient held; see
//!   `relay::attempt`).
//! - Each operation is durable when it returns, its history events included.
//! - These functions only change the store. Whoever runs them inside the daemon must then wake
//!   the queue manager with every id in [`Change::messages`] so it reschedules them from what the
//!   store now says; with no daemon there is nothing to wake.
//! - A deleted message leaves the spool without a DSN (like Postfix's `postsuper -d`); its history
//!   stays, ending with the operator's deletion.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sipmta_store::{QueueId, RcptState, Recipient, Store, StoreError, now};
use tracing::{info, warn};

/// An operator's action on queued mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pending recipients are due at once.
    Flush,
    /// Pending recipients are held: not attempted, but they still expire.
    Hold,
    /// Held recipients are pending again and due at once.
    Release,
    /// The message leaves the spool without a DSN.
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Flush => "flush",
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Delete => "delete",
        })
    }
}

/// What an action changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The action.
    pub action: Action,
    /// The message it was asked for; `None` for a flush of the whole queue.
    pub id: Option<QueueId>,
    /// The messages changed, in id order; empty when there was nothing to do.
    pub messages: Vec<Changed>,
}

impl Change {
    /// Recipients changed across all messages.
    pub fn recipients(&self) -> usize {
        self.messages.iter().map(|m| m.recipients.len()).sum()
    }
}

/// One message an action changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The message.
    pub id: QueueId,
    /// The recipients concerned (for `delete`, those that were not yet finished).
    pub recipients: Vec<String>,
}

/// Make every pending (queued or deferred) recipient of `id`, or of every queued message when
/// `id` is `None`, due at once. A recipient counts even when it was due already, so the answer
/// does not depend on whether the manager got to it first.
pub async fn flush(store: &Store, id: Option<QueueId>) -> Result<Change, StoreError> {
    let ids = match id {
        Some(id) => vec![id],
        // Reading the whole queue may touch the disk for a while: off the async threads.
        None => {
            let store = store.clone();
            let scan = tokio::task::spawn_blocking(move || {
                let mut ids = Vec::new();
                for env in store.queue() {
                    match env {
                        Ok(env) if env.recipients.iter().any(Recipient::is_pending) => ids.push(env.id),
                        Ok(_) => {}
                        // One unreadable record must not keep the rest of the queue waiting.
                        Err(e) => warn!(error = %e, "flush: unreadable queue entry skipped"),
                    }
                }
                ids
            });
            scan.await.map_err(|e| StoreError::Task(e.to_string()))?
        }
    };
    let mut messages = Vec::new();
    for qid in ids {
        match change_recipients(store, qid, Recipient::is_pending, |r, _| r.next_attempt = 0).await {
            Ok(Some(changed)) => messages.push(changed),
            Ok(None) => {}
            // Gone meanwhile (delivered, expired): nothing left to flush there.
            Err(StoreError::NoSuchMessage(_)) if id.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    finish(store, Action::Flush, id, messages, "flushed by the operator").await
}

/// Put the pending recipients of `id` on hold.
pub async fn hold(store: &Store, id: QueueId) -> Result<Change, StoreError> {
    let changed = change_recipients(store, id, Recipient::is_pending, |r, now| {
        r.state = RcptState::Held;
        r.updated = now;
    })
    .await?;
    finish(store, Action::Hold, Some(id), changed.into_iter().collect(), "held by the operator").await
}

/// Release the held recipients of `id`: deferred and due at once.
pub async fn release(store: &Store, id: QueueId) -> Result<Change, StoreError> {
    let changed = change_recipients(
        store,
        id,
        |r| r.state == RcptState::Held,
        |r, now| {
            r.state = RcptState::Deferred;
            r.next_attempt = 0;
            r.updated = now;
        },
    )
    .await?;
    finish(store, Action::Release, Some(id), changed.into_iter().collect(), "released by the operator").await
}

/// Remove `id` from the spool without a DSN. The history event is written before the removal,
/// which makes both durable.
pub async fn delete(store: &Store, id: QueueId) -> Result<Change, StoreError> {
    let env = store.envelope(id)?.ok_or_else(|| no_such(id))?;
    let open: Vec<String> = env.recipients.iter().filter(|r| !r.state.is_final()).map(|r| r.address.clone()).collect();
    store.record(id, None, format!("deleted by the operator, no DSN sent ({} undelivered)", plural(open.len(), "recipient")))?;
    store.remove(id).await?;
    warn!(queue_id = %id, action = "delete", undelivered = open.len(), "message deleted by the operator; no DSN sent");
    Ok(Change { action: Action::Delete, id: Some(id), messages: vec![Changed { id, recipients: open }] })
}

/// Apply `change` to every recipient of `id` that `select` picks, atomically. `Ok(None)` when
/// none was picked (nothing is written then); an error when the message is not queued.
async fn change_recipients(
    store: &Store,
    id: QueueId,
    select: fn(&Recipient) -> bool,
    change: fn(&mut Recipient, u64),
) -> Result<Option<Changed>, StoreError> {
    let env = store.envelope(id)?.ok_or_else(|| no_such(id))?;
    if !env.recipients.iter().any(select) {
        return Ok(None);
    }
    let now = now();
    // `modify` may run the closure more than once; the last run is the one stored.
    let picked = Arc::new(Mutex::new(Vec::new()));
    let out = picked.clone();
    store
        .modify(id, move |env| {
            let mut picked = out.lock().unwrap_or_else(|p| p.into_inner());
            picked.clear();
            for r in env.recipients.iter_mut().filter(|r| select(r)) {
                change(r, now);
                picked.push(r.address.clone());
            }
        })
        .await?
        .ok_or_else(|| no_such(id))?;
    let recipients = std::mem::take(&mut *picked.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((!recipients.is_empty()).then_some(Changed { id, recipients }))
}

/// Record one event per changed recipient, make them durable, and log the action.
async fn finish(store: &Store, action: Action, id: Option<QueueId>, messages: Vec<Changed>, text: &str) -> Result<Change, StoreError> {
    for m in &messages {
        for rcpt in &m.recipients {
            store.record(m.id, Some(rcpt), text)?;
        }
        info!(queue_id = %m.id, action = %action, recipients = m.recipients.len(), "queue changed by the operator");
    }
    store.commit().await?;
    Ok(Change { action, id, messages })
}

fn no_such(id: QueueId) -> StoreError {
    StoreError::NoSuchMessage(id.to_string())
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// Which history events to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only events about this recipient (compared without regard to case), with the events
    /// about the whole message (reception, DSNs, deletion) of the messages concerned.
    pub rcpt: Option<String>,
    /// Only events at or after this time (Unix seconds).
    pub since: Option<u64>,
}

/// One history event with the message it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The message.
    pub id: QueueId,
    /// When it happened (Unix seconds).
    pub at: u64,
    /// The recipient concerned, if the event is about one.
    pub recipient: Option<String>,
    /// What happened.
    pub text: String,
}

/// History events across all messages (queued or gone), oldest first.
pub fn history(store: &Store, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, StoreError> {
    let since = filter.since.unwrap_or(0);
    let about = |rcpt: &str, event: &sipmta_store::Event| event.recipient.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(rcpt));
    let events = match filter.rcpt.as_deref().map(|r| r.trim_start_matches('<').trim_end_matches('>')) {
        None => store.history_matching(|_, e| e.at >= since)?,
        Some(rcpt) => {
            // First the messages that concern the recipient, then their events.
            let mut ids = HashSet::new();
            store.history_matching(|id, e| {
                if about(rcpt, e) {
                    ids.insert(id);
                }
                false
            })?;
            store.history_matching(|id, e| e.at >= since && (about(rcpt, e) || (e.recipient.is_none() && ids.contains(&id))))?
        }
    };
    Ok(events.into_iter().map(|(id, e)| HistoryEntry { id, at: e.at, recipient: e.recipient, text: e.text }).collect())
}

/// Parse `--since`: Unix seconds (`1700000000`), or how long ago as a duration (`90s`, `15m`,
/// `2h`, `1d`, `1w`, or a sum such as `1h30m`), counted back from `now`.
pub fn parse_since(text: &str, now: u64) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is neither Unix seconds nor a duration such as 2h or 1d");
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| bad());
    }
    let mut ago: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        ago = n.checked_mul(unit).and_then(|s| ago.checked_add(s)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(now.saturating_sub(ago))
}

#[cfg(test)]
mod tests;
