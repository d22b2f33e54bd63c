//! The handover journal: recipients a next hop has just taken (its `250`), noted before our
//! durable record of it.
//!
//! Between a remote server's `250` and the commit that marks its recipients relayed or
//! delivered ([`Store::modify`], a group fsync) lies a window of a few milliseconds. A crash in
//! it makes the restart send the message again: a duplicate (RFC 5321 §6.1 allows it, but a
//! site killed under load had one or two per kill, bench/crash.sh). This journal closes that
//! window for process crashes: each handover is appended with one `write` before the commit, so
//! the kernel has it even if the process dies the next instant; [`Store::open`] applies what it
//! finds to recipients that are still pending. A power cut can lose the tail of the journal,
//! and then the message goes again, as it would without one. An entry only ever marks a
//! recipient finished after a real `250`, so replaying it can never lose mail.
//!
//! One line per recipient: `ID INDEX STATE REPLY`. The file is started afresh once it holds a
//! MiB, the previous one kept as `handover.old` until the next start: its entries were
//! committed long before.

use std::io::Write;
use std::sync::Mutex;

use crate::{QueueId, RcptState, Result, Store, StoreError, now};

const JOURNAL: &str = "handover.journal";
const OLD: &str = "handover.old";
const ROTATE_AT: u64 = 1 << 20;

/// The open journal.
#[derive(Debug)]
pub(crate) struct Journal(Mutex<Appender>);

/// The journal file and how long it is, kept here so that rotation needs no `fstat` per write.
#[derive(Debug)]
pub(crate) struct Appender {
    file: std::fs::File,
    len: u64,
}

impl Appender {
    fn open(dir: &std::path::Path) -> std::io::Result<Appender> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(JOURNAL))?;
        let len = file.metadata()?.len();
        Ok(Appender { file, len })
    }
}

impl Journal {
    pub(crate) fn open(dir: &std::path::Path) -> std::io::Result<Journal> {
        Ok(Journal(Mutex::new(Appender::open(dir)?)))
    }

    /// Start afresh with an empty file (the old one's entries are in the store).
    fn reopen(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let fresh = Appender::open(dir)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

impl Store {
    /// Note that the next hop took recipients `idxs` of `id`, which become `state`
    /// (`Relayed` or `Delivered`) with `reply`; call it before the [`Store::modify`] that records
    /// the same. Written to the kernel, not synced (see the module).
    pub fn note_handover(&self, id: QueueId, idxs: &[usize], state: RcptState, reply: &str) -> Result<()> {
        let reply: String = reply.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let lines: String = idxs.iter().map(|i| format!("{id} {i} {state} {reply}\n")).collect();
        let io = |source| StoreError::Io { context: "writing the handover journal".into(), source };
        let mut journal = self.inner.journal.0.lock().unwrap_or_else(|p| p.into_inner());
        journal.file.write_all(lines.as_bytes()).map_err(io)?;
        journal.len += lines.len() as u64;
        if journal.len >= ROTATE_AT {
            let dir = &self.inner.dir;
            std::fs::rename(dir.join(JOURNAL), dir.join(OLD)).map_err(io)?;
            *journal = Appender::open(dir).map_err(io)?;
        }
        Ok(())
    }

    /// Apply the journals a crash left (at open, before anything is delivered) and start
    /// afresh. Returns the recipients they finished (message, index).
    pub(crate) fn replay_handovers(&self) -> Result<Vec<(QueueId, usize)>> {
        let dir = &self.inner.dir;
        let mut finished = Vec::new();
        for name in [OLD, JOURNAL] {
            let text = match std::fs::read(dir.join(name)) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { context: format!("reading {name}"), source }),
            };
            for line in text.lines() {
                // A torn last line (the crash came mid-write) does not parse and is skipped.
                let mut fields = line.splitn(4, ' ');
                let (Some(id), Some(index), Some(state), Some(reply)) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
                    continue;
                };
                let (Ok(id), Ok(index)) = (id.parse::<QueueId>(), index.parse::<usize>()) else { continue };
                let state = match state {
                    "relayed" => RcptState::Relayed,
                    "delivered" => RcptState::Delivered,
                    _ => continue,
                };
                let mut applied = false;
                let env = self.modify_now(id, |e| {
                    applied = false;
                    if let Some(r) = e.recipients.get_mut(index).filter(|r| !r.state.is_final()) {
                        r.state = state;
                        r.attempts += 1;
                        r.updated = now();
                        r.last_reply = Some(reply.to_owned());
                        applied = true;
                    }
                })?;
                if applied {
                    finished.push((id, index));
                    let rcpt = env.and_then(|e| e.recipients.get(index).map(|r| r.address.clone()));
                    let text = format!("{state}: {reply} (the next hop's 250 came just before a crash; found in the handover journal)");
                    self.record(id, rcpt.as_deref(), text)?;
                }
            }
        }
        self.flush()?;
        for name in [OLD, JOURNAL] {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { context: format!("removing {name}"), source }),
            }
        }
        self.inner.journal.reopen(dir).map_err(|source| StoreError::Io { context: "opening the handover journal".into(), source })?;
        Ok(finished)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::tests::envelope;
    use crate::{RcptState, Store};

    #[tokio::test]
    async fn a_handover_noted_before_a_crash_finishes_its_recipient_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let id = store.accept(envelope(&["a@example.net", "b@example.net"]), b"Subject: x\r\n\r\nbody\r\n".to_vec()).await.unwrap();
        store.note_handover(id, &[0], RcptState::Relayed, "250 2.0.0 Ok: queued as X\r\n").unwrap();
        // The crash: the commit that would have recorded it never came.
        drop(store);
        // A torn line and entries that do not apply are passed over.
        let journal = dir.path().join(super::JOURNAL);
        let mut text = std::fs::read_to_string(&journal).unwrap();
        text.push_str(&format!("{id} 9 relayed 250 no such recipient\n{id} 1 queued 250 not a final state\n{id} 1 rel"));
        std::fs::write(&journal, text).unwrap();
        let (store, recovery) = Store::open(dir.path()).unwrap();
        assert_eq!(recovery.handovers, [(id, 0)]);
        let env = store.envelope(id).unwrap().unwrap();
        assert_eq!((env.recipients[0].state, env.recipients[1].state), (RcptState::Relayed, RcptState::Queued));
        assert_eq!(env.recipients[0].last_reply.as_deref(), Some("250 2.0.0 Ok: queued as X  "));
        let history = store.history(id).unwrap();
        assert!(
            history.iter().any(|e| e.recipient.as_deref() == Some("a@example.net") && e.text.contains("handover journal")),
            "{history:?}"
        );
        // Applied once: the journal starts afresh, and an entry for a finished recipient does nothing.
        assert!(std::fs::read(&journal).unwrap().is_empty());
        store.note_handover(id, &[0], RcptState::Relayed, "250 again").unwrap();
        drop(store);
        let (store, recovery) = Store::open(dir.path()).unwrap();
        assert!(recovery.handovers.is_empty());
        assert_eq!(store.envelope(id).unwrap().unwrap().recipients[0].attempts, 1);
    }

    #[tokio::test]
    async fn a_full_journal_is_rotated_and_both_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let first = store.accept(envelope(&["a@example.net"]), b"Subject: 1\r\n\r\n".to_vec()).await.unwrap();
        let second = store.accept(envelope(&["b@example.net"]), b"Subject: 2\r\n\r\n".to_vec()).await.unwrap();
        store.note_handover(first, &[0], RcptState::Delivered, "250 first").unwrap();
        let filler = "x".repeat(1000);
        while !dir.path().join(super::OLD).exists() {
            store.note_handover(first, &[0], RcptState::Delivered, &filler).unwrap();
        }
        store.note_handover(second, &[0], RcptState::Relayed, "250 second").unwrap();
        drop(store);
        let (store, recovery) = Store::open(dir.path()).unwrap();
        assert_eq!(recovery.handovers, [(first, 0), (second, 0)]);
        assert_eq!(store.envelope(first).unwrap().unwrap().recipients[0].last_reply.as_deref(), Some("250 first"));
        assert_eq!(store.envelope(second).unwrap().unwrap().recipients[0].state, RcptState::Relayed);
        assert!(!dir.path().join(super::OLD).exists());
    }
}
