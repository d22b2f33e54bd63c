//! Retention: forgetting the history of finished messages and the DSN tracking records once
//! they are old enough.
//!
//! Both trees gain records with every message and sled keeps a tree's pages in memory (a cache
//! cap does not change that much: its index stays resident), so without pruning the daemon's
//! memory grows with every message it ever handled (RELIABILITY.md §5). The daemon calls these
//! now and then (`spool.history_retention`, `relay.tracking_retention`); the long-term record of
//! what happened is the log.

use crate::types::{Event, QueueId, Tracked};
use crate::{HISTORY, Result, Store, StoreError, TRACKING};

/// What one pass of [`Store::prune_history`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Messages whose whole history was removed.
    pub messages: usize,
    /// History events removed.
    pub events: usize,
}

impl Store {
    /// Remove the history of every message that arrived before `cutoff` (Unix seconds), is no
    /// longer queued and has had no event since `cutoff` (a late DSN keeps its message's history
    /// for another period). Not flushed: losing a pruning in a crash only means doing it again.
    ///
    /// Queue ids begin with their arrival second ([`Store::next_id`]), so only the keys below
    /// `cutoff`'s first id are read: a pass costs what it removes plus what it keeps of old
    /// messages, not the whole tree.
    pub fn prune_history(&self, cutoff: u64) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let end = QueueId(cutoff << 32).key();
        let mut group: Option<(QueueId, Vec<sled::IVec>, bool)> = None;
        for item in self.inner.history.range(..end) {
            let (key, value) = item?;
            let Some(id) = key.get(..8).and_then(QueueId::from_key) else {
                return Err(StoreError::Corrupt {
                    tree: HISTORY,
                    key: hex(&key),
                    reason: "key is not a queue id and a sequence number".into(),
                });
            };
            if group.as_ref().is_some_and(|(current, ..)| *current != id) {
                self.finish_group(group.take(), &mut pruned)?;
            }
            let event: Event =
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt { tree: HISTORY, key: hex(&key), reason: e.to_string() })?;
            let (_, keys, recent) = group.get_or_insert_with(|| (id, Vec::new(), false));
            keys.push(key);
            *recent |= event.at >= cutoff;
        }
        self.finish_group(group, &mut pruned)?;
        Ok(pruned)
    }

    fn finish_group(&self, group: Option<(QueueId, Vec<sled::IVec>, bool)>, pruned: &mut Pruned) -> Result<()> {
        let Some((id, keys, recent)) = group else { return Ok(()) };
        if recent || self.inner.envelopes.contains_key(id.key())? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for key in &keys {
            batch.remove(key);
        }
        self.inner.history.apply_batch(batch)?;
        pruned.messages += 1;
        pruned.events += keys.len();
        Ok(())
    }

    /// Remove the tracking records of messages relayed before `cutoff` (Unix seconds): a DSN
    /// that comes later is no longer matched to its message, and one sent to that message's
    /// bounce address (`relay.return_path_rewrite`) is refused at RCPT. Not flushed, like
    /// [`Store::prune_history`].
    pub fn prune_tracking(&self, cutoff: u64) -> Result<usize> {
        let mut removed = 0;
        for item in self.inner.tracking.iter() {
            let (key, value) = item?;
            let tracked: Tracked = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                tree: TRACKING,
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?;
            if tracked.at < cutoff && self.inner.tracking.compare_and_swap(&key, Some(&value), None::<&[u8]>)?.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A binary key as hex, for error messages.
pub(crate) fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}
