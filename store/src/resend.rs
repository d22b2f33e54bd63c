//! Messages sent again (RFC 5321 §6.1): when a connection breaks between the final dot and
//! our `250`, the client cannot know that the message was accepted and sends it again. A kill
//! of the daemon, or of a next hop that is also sipmta, leaves every client in that window
//! doing so. The store remembers a fingerprint of each accepted message (sender, recipients and
//! content, Message-ID included; see the session's `fingerprint`) for a short window, so that
//! the second copy can be answered `250` with the first one's id instead of being delivered
//! twice.
//!
//! Keys are the 32-byte fingerprints, values the queue id; the id begins with its arrival
//! second, which dates the entry.

use crate::{QueueId, Result, Store};

/// The tree of recent fingerprints.
pub(crate) const RECENT: &str = "recent";

/// A message's fingerprint (SHA-256, computed by the caller).
pub type Fingerprint = [u8; 32];

impl Store {
    /// The message accepted with `fingerprint` at or after `since` (Unix seconds), if any.
    pub fn accepted_as(&self, fingerprint: &Fingerprint, since: u64) -> Result<Option<QueueId>> {
        let Some(value) = self.inner.recent.get(fingerprint)? else { return Ok(None) };
        Ok(QueueId::from_key(&value).filter(|id| id.0 >> 32 >= since))
    }

    /// Forget one fingerprint: the message it names was refused to its client after all (the
    /// inline fast path's verdict), so the same message sent again must be tried again.
    pub fn forget_fingerprint(&self, fingerprint: &Fingerprint) -> Result<()> {
        self.inner.recent.remove(fingerprint)?;
        Ok(())
    }

    /// Forget fingerprints of messages accepted before `cutoff` (Unix seconds). Not flushed,
    /// like the other retention calls. Returns how many were removed.
    pub fn prune_recent(&self, cutoff: u64) -> Result<usize> {
        let mut removed = 0;
        for item in self.inner.recent.iter() {
            let (key, value) = item?;
            let old = QueueId::from_key(&value).is_none_or(|id| id.0 >> 32 < cutoff);
            if old && self.inner.recent.compare_and_swap(&key, Some(&value), None::<&[u8]>)?.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::tests::envelope;
    use crate::{Store, now};

    #[tokio::test]
    async fn a_fingerprint_names_its_message_until_it_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let (one, two) = ([1u8; 32], [2u8; 32]);
        let id = store.accept_once(envelope(&["bob@localhost"]), b"Subject: x\r\n\r\nbody\r\n".to_vec(), Some(one)).await.unwrap();
        assert_eq!(store.accepted_as(&one, now() - 60).unwrap(), Some(id));
        assert_eq!(store.accepted_as(&two, 0).unwrap(), None, "another message");
        assert_eq!(store.accepted_as(&one, now() + 60).unwrap(), None, "older than the window");
        // Survives a restart: it is written with the envelope, which the accept made durable.
        drop(store);
        let (store, _) = Store::open(dir.path()).unwrap();
        assert_eq!(store.accepted_as(&one, 0).unwrap(), Some(id));
        assert_eq!(store.prune_recent(now() - 60).unwrap(), 0, "still in the window");
        assert_eq!(store.prune_recent(now() + 60).unwrap(), 1);
        assert_eq!(store.accepted_as(&one, 0).unwrap(), None);
        let id = store.accept_once(envelope(&["bob@localhost"]), b"Subject: y\r\n\r\nbody\r\n".to_vec(), Some(two)).await.unwrap();
        assert_eq!(store.accepted_as(&two, 0).unwrap(), Some(id));
        store.forget_fingerprint(&two).unwrap();
        assert_eq!(store.accepted_as(&two, 0).unwrap(), None);
    }
}
