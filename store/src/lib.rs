//! The sipmta store: spool, queue, users, history and routing tables in one sled database.
//!
//! # Durability contract
//!
//! sled keeps writes in memory and fsyncs on its own only every 500 ms, so nothing here relies
//! on that. The rules are:
//!
//! - [`Store::accept`] returns only after the message and its envelope are fsynced. It is the
//!   call that stands behind SMTP's `250` (RFC 5321 §6.1): if it returns `Ok`, the message
//!   survives a crash or `kill -9` from that moment on.
//! - [`Store::update`] and [`Store::remove`] are durable the same way when they return.
//! - Concurrent callers share flushes (group commit, see [`Store::commit`]): a caller waits for
//!   at most one flush that started after its write, never for a queue of flushes.
//! - [`Store::note_handover`] appends a next hop's `250` to the handover journal before the
//!   commit that records it, so that a process crash in between does not send it again; see
//!   `handover.rs`. [`Store::accept_once`] keeps a message's fingerprint with it so that the
//!   same message sent again is recognised (`resend.rs`).
//! - [`Store::record`] (history), the user calls and the routing table calls ([`routing`]) are
//!   written but not flushed; they reach the disk with the next commit or within sled's 500 ms.
//!   History and tracking records are kept for a retention period ([`retention`]).
//!   Losing the last half-second of history in a crash is acceptable, losing mail is not. The
//!   CLI and the admin API call [`Store::flush`] before they report a change to the operator.
//!
//! The message is written before its envelope, and the envelope is the commit record: a message
//! without an envelope is a reception that never got its `250`, and [`Store::open`] removes it.
//!
//! Message bodies are files in `spool/`, each fsynced before its envelope is written (see
//! [`spool`] for why sled alone is not enough). A commit flushes sled, then `fdatasync`s its
//! database file (sled's own flush ends in `sync_file_range`, which is no durability promise)
//! and the spool directory when a message file was created since its last sync, so one commit
//! covers every write before it.
//!
//! sled calls that may block on IO run on tokio's blocking pool in the async methods. Corrupt
//! records are reported as [`StoreError::Corrupt`], never as a panic.

mod disk;
mod error;
mod handover;
mod locations;
mod protocols;
mod resend;
mod retention;
pub mod routing;
mod spool;
mod types;
mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use error::StoreError;
pub use locations::LocationEntry;
pub use protocols::ProtocolEntry;
pub use resend::Fingerprint;
pub use retention::Pruned;
pub use routing::{Imported, Learned, Table, TableEntry};
pub use types::{Body, Envelope, Event, Notify, Origin, QueueId, RcptState, Recipient, Ret, Tracked, now};
pub use users::{UserRecord, normalise_name, verify_password};

/// A result with the store's error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const MESSAGES: &str = "messages";
const ENVELOPES: &str = "envelopes";
const USERS: &str = "users";
const HISTORY: &str = "history";
const TRACKING: &str = "tracking";
/// sled's page cache for [`Store::open`]: enough for the queue and recent history of a busy
/// site, far below sled's own default of 1 GiB.
pub const DEFAULT_CACHE: u64 = 64 << 20;

/// A handle on the store; cheap to clone, shared by every session.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    db: sled::Db,
    messages: sled::Tree,
    envelopes: sled::Tree,
    users: sled::Tree,
    history: sled::Tree,
    tracking: sled::Tree,
    recent: sled::Tree,
    protocols: sled::Tree,
    locations: sled::Tree,
    routes: sled::Tree,
    keywords: sled::Tree,
    prefixes: sled::Tree,
    learned: sled::Tree,
    meta: sled::Tree,
    spool: spool::Spool,
    journal: handover::Journal,
    /// Bumped by every routing-table write ([`Store::tables_generation`]).
    tables_generation: AtomicU64,
    /// sled's data file, fdatasync'ed at each commit.
    db_file: std::fs::File,
    /// Group commit: number of commits requested so far ...
    requested: AtomicU64,
    /// ... and the request count covered by the last completed flush.
    flushed: AtomicU64,
    flush_lock: tokio::sync::Mutex<()>,
}

/// What [`Store::open`] found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Envelopes in the queue.
    pub queued: usize,
    /// Messages without an envelope (receptions interrupted before `250`) that were removed.
    pub orphans_removed: usize,
    /// Recipients (message, index) a next hop had taken just before a crash, found in the
    /// handover journal and marked finished, so they are not sent again. What followed the
    /// record (DSN tracking) is the caller's to do.
    pub handovers: Vec<(QueueId, usize)>,
}

impl Store {
    /// Open (or create) the store under `dir` (the database lives in `dir/db`) and repair what a
    /// crash may have left: messages whose envelope was never written are removed.
    pub fn open(dir: &Path) -> Result<(Store, Recovery)> {
        Store::open_with_cache(dir, DEFAULT_CACHE)
    }

    /// [`Store::open`] with sled's page cache capped at `cache_bytes`. sled fills its cache
    /// with every page written until the cap (1 GiB by its default), so a daemon whose trees
    /// churn (messages in and out, history pruned) grows to it: the cap bounds that memory.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<(Store, Recovery)> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::Io { context: format!("creating data directory {}", dir.display()), source })?;
        let db_path = dir.join("db");
        // sled's flusher thread holds the lock for up to one flush interval (500 ms) after the
        // last handle is dropped, so a store closed a moment ago (a daemon that just exited, a
        // test reopening) can look locked: wait for that before calling it in use.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            // A larger segment keeps sled's log records inline: records over a quarter segment
            // would go to blob files that sled never syncs.
            match sled::Config::new().path(&db_path).segment_size(8 << 20).cache_capacity(cache_bytes).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io)) if io.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked(db_path.clone()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(other) => return Err(StoreError::Db(other)),
            }
        };
        let io = |context: String| move |source| StoreError::Io { context, source };
        let spool = spool::Spool::open(&dir.join("spool")).map_err(io(format!("opening the spool in {}", dir.display())))?;
        let db_file = std::fs::File::open(db_path.join("db")).map_err(io(format!("opening {}", db_path.join("db").display())))?;
        let journal = handover::Journal::open(dir).map_err(io(format!("opening the handover journal in {}", dir.display())))?;
        let store = Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                spool,
                journal,
                db_file,
                tables_generation: AtomicU64::new(0),
                messages: db.open_tree(MESSAGES)?,
                envelopes: db.open_tree(ENVELOPES)?,
                users: db.open_tree(USERS)?,
                history: db.open_tree(HISTORY)?,
                tracking: db.open_tree(TRACKING)?,
                recent: db.open_tree(resend::RECENT)?,
                routes: db.open_tree(routing::ROUTES)?,
                keywords: db.open_tree(routing::KEYWORDS)?,
                prefixes: db.open_tree(routing::PREFIXES)?,
                learned: db.open_tree(routing::LEARNED)?,
                meta: db.open_tree(routing::META)?,
                protocols: db.open_tree(protocols::PROTOCOLS)?,
                locations: db.open_tree(locations::LOCATIONS)?,
                db,
                requested: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
                flush_lock: tokio::sync::Mutex::new(()),
            }),
        };
        store.seed_prefixes()?;
        // recover() ends with a flush, which makes the seeded prefixes durable too.
        let recovery = store.recover()?;
        Ok((store, recovery))
    }

    fn recover(&self) -> Result<Recovery> {
        let io = |source| StoreError::Io { context: "recovering the spool".into(), source };
        let mut recovery = Recovery { queued: self.inner.envelopes.len(), ..Recovery::default() };
        // Spools written before message bodies moved to files: move them out of sled.
        for item in self.inner.messages.iter() {
            let (key, bytes) = item?;
            if let Some(id) = QueueId::from_key(&key)
                && self.inner.envelopes.contains_key(&key)?
            {
                self.inner.spool.write(id, &bytes).map_err(io)?;
            }
            self.inner.messages.remove(&key)?;
        }
        self.inner.spool.sync_dir().map_err(io)?;
        for id in self.inner.spool.ids().map_err(io)? {
            if !self.inner.envelopes.contains_key(id.key())? {
                self.inner.spool.remove(id).map_err(io)?;
                recovery.orphans_removed += 1;
            }
        }
        self.flush()?;
        recovery.handovers = self.replay_handovers()?;
        Ok(recovery)
    }

    /// Tells this open store from any other in the process: one daemon has one, but the tests
    /// run many daemons in one process, and process-wide records (the metrics' recent
    /// deliveries) are kept apart by it.
    pub fn instance(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A fresh queue id (for the Received header written before [`Store::accept`]).
    ///
    /// The arrival second fills the high 32 bits and sled's counter (unique within a run,
    /// advanced by a million at each restart) the low 32, so ids sort by arrival, read like
    /// Postfix's long queue ids, and are not reused even if a data directory is wiped. An id
    /// that is somehow taken already is skipped: spooling must never overwrite a message.
    pub fn next_id(&self) -> Result<QueueId> {
        loop {
            let counter = self.inner.db.generate_id()? & 0xFFFF_FFFF;
            let id = QueueId((now() << 32) | counter);
            if !self.inner.envelopes.contains_key(id.key())? && !self.inner.spool.exists(id) {
                return Ok(id);
            }
        }
    }

    /// Spool a received message under `envelope.id` (one is assigned when it is `QueueId(0)`),
    /// writing the message and then its envelope, and return after both are fsynced (group
    /// commit). On `Ok` the message is durable.
    pub async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Result<QueueId> {
        self.accept_once(envelope, message, None).await
    }

    /// [`Store::accept`], remembering the message's `fingerprint` with it (written after the
    /// envelope, so a fingerprint found after a crash always stands for a spooled message):
    /// [`Store::accepted_as`] then recognises the same message sent again.
    pub async fn accept_once(&self, mut envelope: Envelope, message: Vec<u8>, fingerprint: Option<Fingerprint>) -> Result<QueueId> {
        let this = self.clone();
        let id = blocking(move || {
            let id = if envelope.id == QueueId(0) { this.next_id()? } else { envelope.id };
            envelope.id = id;
            envelope.size = message.len() as u64;
            this.inner.spool.write(id, &message).map_err(|source| StoreError::Io { context: format!("spooling message {id}"), source })?;
            this.inner.envelopes.insert(id.key(), encode(&envelope))?;
            if let Some(fingerprint) = fingerprint {
                this.inner.recent.insert(fingerprint, &id.key())?;
            }
            Ok(id)
        })
        .await?;
        self.commit().await?;
        Ok(id)
    }

    /// Replace a message's envelope (state changes); durable when it returns.
    pub async fn update(&self, envelope: &Envelope) -> Result<()> {
        let this = self.clone();
        let bytes = encode(envelope);
        let id = envelope.id;
        blocking(move || {
            this.inner.envelopes.insert(id.key(), bytes)?;
            Ok(())
        })
        .await?;
        self.commit().await
    }

    /// Change a message's envelope atomically (compare-and-swap, retried on conflict) and make
    /// the change durable. `change` may run more than once, so it must only compute from its
    /// argument. Returns the new envelope, or `None` when the message is no longer queued.
    ///
    /// Every writer of envelopes goes through here (delivery workers, the queue manager, admin
    /// commands), so concurrent changes to different recipients of one message never overwrite
    /// each other.
    pub async fn modify<F>(&self, id: QueueId, change: F) -> Result<Option<Envelope>>
    where
        F: FnMut(&mut Envelope) + Send + 'static,
    {
        let this = self.clone();
        let result = blocking(move || this.modify_now(id, change)).await?;
        self.commit().await?;
        Ok(result)
    }

    fn modify_now<F: FnMut(&mut Envelope)>(&self, id: QueueId, mut change: F) -> Result<Option<Envelope>> {
        loop {
            let Some(old) = self.inner.envelopes.get(id.key())? else {
                return Ok(None);
            };
            let mut env = decode(ENVELOPES, id, &old)?;
            change(&mut env);
            let new = encode(&env);
            match self.inner.envelopes.compare_and_swap(id.key(), Some(&old), Some(new))? {
                Ok(()) => return Ok(Some(env)),
                Err(_) => continue, // someone else changed it meanwhile: redo on their version
            }
        }
    }

    /// Remove a message only if every recipient is finished, atomically with respect to
    /// [`Store::modify`]; durable when it returns. Returns whether it was removed.
    pub async fn remove_if_finished(&self, id: QueueId) -> Result<bool> {
        let this = self.clone();
        let removed = blocking(move || {
            loop {
                let Some(old) = this.inner.envelopes.get(id.key())? else {
                    return Ok(false);
                };
                if !decode(ENVELOPES, id, &old)?.is_finished() {
                    return Ok(false);
                }
                if this.inner.envelopes.compare_and_swap(id.key(), Some(&old), None as Option<&[u8]>)?.is_ok() {
                    return Ok(true);
                }
            }
        })
        .await?;
        if removed {
            self.commit().await?;
            self.unlink(id).await?;
        }
        Ok(removed)
    }

    /// Remove a message from the spool (finished, or deleted by the operator); durable when it
    /// returns. The envelope goes
    /// first so a crash in between leaves an orphan that [`Store::open`] cleans up, never an
    /// envelope without its message. History is kept (for `spool.history_retention`).
    pub async fn remove(&self, id: QueueId) -> Result<()> {
        let this = self.clone();
        blocking(move || {
            this.inner.envelopes.remove(id.key())?;
            Ok(())
        })
        .await?;
        self.commit().await?;
        self.unlink(id).await
    }

    /// Delete a message file once its envelope's removal is durable.
    async fn unlink(&self, id: QueueId) -> Result<()> {
        let this = self.clone();
        blocking(move || this.inner.spool.remove(id).map_err(|source| StoreError::Io { context: format!("removing message {id}"), source }))
            .await
    }

    /// The envelope of a queued message.
    pub fn envelope(&self, id: QueueId) -> Result<Option<Envelope>> {
        match self.inner.envelopes.get(id.key())? {
            Some(bytes) => decode(ENVELOPES, id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The stored message (with our Received header) of a queued message.
    pub fn message(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        self.inner.spool.read(id).map_err(|source| StoreError::Io { context: format!("reading message {id}"), source })
    }

    /// Every queued envelope in id order. A corrupt record is returned as an error in its place
    /// so one bad record does not hide the rest of the queue.
    pub fn queue(&self) -> impl Iterator<Item = Result<Envelope>> + '_ {
        self.inner.envelopes.iter().map(|item| {
            let (key, bytes) = item?;
            let id = QueueId::from_key(&key).unwrap_or(QueueId(0));
            decode(ENVELOPES, id, &bytes)
        })
    }

    /// Number of messages in the queue.
    pub fn queue_len(&self) -> usize {
        self.inner.envelopes.len()
    }

    /// Append a line to a message's history (not flushed by itself; see the contract above).
    pub fn record(&self, id: QueueId, recipient: Option<&str>, text: impl Into<String>) -> Result<()> {
        let event = Event { at: now(), recipient: recipient.map(str::to_owned), text: text.into() };
        let mut key = id.key().to_vec();
        key.extend_from_slice(&self.inner.db.generate_id()?.to_be_bytes());
        self.inner.history.insert(key, serde_json::to_vec(&event).unwrap_or_default())?;
        Ok(())
    }

    /// A message's history, oldest first.
    pub fn history(&self, id: QueueId) -> Result<Vec<Event>> {
        self.inner
            .history
            .scan_prefix(id.key())
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt { tree: HISTORY, key: id.to_string(), reason: e.to_string() })
            })
            .collect()
    }

    /// History events of every message that `keep` accepts, in the order they were recorded
    /// (sled's ids are increasing across messages and restarts, so the key's sequence half
    /// orders events even within one second). Only the kept events are held in memory.
    pub fn history_matching(&self, mut keep: impl FnMut(QueueId, &Event) -> bool) -> Result<Vec<(QueueId, Event)>> {
        let mut found = Vec::new();
        for item in self.inner.history.iter() {
            let (key, value) = item?;
            let corrupt = |reason: String| StoreError::Corrupt { tree: HISTORY, key: retention::hex(&key), reason };
            let (Some(id), Some(seq)) = (key.get(..8).and_then(QueueId::from_key), key.get(8..).and_then(|s| s.try_into().ok())) else {
                return Err(corrupt("key is not a queue id and a sequence number".into()));
            };
            let event: Event = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
            if keep(id, &event) {
                found.push((u64::from_be_bytes(seq), id, event));
            }
        }
        found.sort_by_key(|(seq, ..)| *seq);
        Ok(found.into_iter().map(|(_, id, event)| (id, event)).collect())
    }

    /// Remember a relayed message under the envelope id it was sent with, so a DSN naming that
    /// id in `Original-Envelope-Id` can be matched to it. Written with the next commit.
    pub fn track(&self, env_id: &str, tracked: &Tracked) -> Result<()> {
        self.inner.tracking.insert(env_id.as_bytes(), serde_json::to_vec(tracked).unwrap_or_default())?;
        Ok(())
    }

    /// The relayed message an envelope id belongs to.
    pub fn tracked(&self, env_id: &str) -> Result<Option<Tracked>> {
        match self.inner.tracking.get(env_id.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt {
                tree: TRACKING,
                key: env_id.to_owned(),
                reason: e.to_string(),
            }),
            None => Ok(None),
        }
    }

    /// Make every write so far durable, sharing the flush with concurrent callers.
    ///
    /// Each caller takes a ticket after its writes. Whoever holds the flush lock reads the
    /// newest ticket before flushing, so one flush covers every caller whose ticket it saw;
    /// those callers find their ticket covered when they get the lock and return at once.
    pub async fn commit(&self) -> Result<()> {
        let ticket = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = self.inner.flush_lock.lock().await;
        if self.inner.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let covered = self.inner.requested.load(Ordering::SeqCst);
        let this = self.clone();
        blocking(move || this.flush()).await?;
        self.inner.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Make every write so far durable, synchronously (the CLI and shutdown use it directly;
    /// [`Store::commit`] shares it between concurrent callers).
    pub fn flush(&self) -> Result<()> {
        let io = |what: &str| {
            let context = format!("syncing {what}");
            move |source| StoreError::Io { context, source }
        };
        self.inner.db.flush()?;
        self.inner.db_file.sync_data().map_err(io("the database"))?;
        self.inner.spool.sync_dir().map_err(io("the spool directory"))?;
        Ok(())
    }

    /// Octets available to unprivileged writers on the data directory's filesystem.
    pub fn free_space(&self) -> Result<u64> {
        disk::available(&self.inner.dir)
            .map_err(|source| StoreError::Io { context: format!("checking free space on {}", self.inner.dir.display()), source })
    }

    // ---- users -------------------------------------------------------------------------

    /// Add a user; fails if the name is taken.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        let record = UserRecord::new(name, password)?;
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.inner
            .users
            .compare_and_swap(record.name.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .map_err(|_| StoreError::UserExists(record.name.clone()))
    }

    /// Change a user's password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let key = normalise_name(name)?;
        let Some(old) = self.user(&key)? else {
            return Err(StoreError::NoSuchUser(key));
        };
        let record = UserRecord { hash: users::hash_password(password)?, ..old };
        self.inner.users.insert(key.as_bytes(), serde_json::to_vec(&record).unwrap_or_default())?;
        Ok(())
    }

    /// Remove a user.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let key = normalise_name(name)?;
        match self.inner.users.remove(key.as_bytes())? {
            Some(_) => Ok(()),
            None => Err(StoreError::NoSuchUser(key)),
        }
    }

    /// One user's record.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let key = normalise_name(name)?;
        match self.inner.users.get(key.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt { tree: USERS, key, reason: e.to_string() }),
            None => Ok(None),
        }
    }

    /// Whether a user exists (used for "known users only" local domains).
    pub fn user_exists(&self, name: &str) -> Result<bool> {
        match normalise_name(name) {
            Ok(key) => Ok(self.inner.users.contains_key(key.as_bytes())?),
            Err(_) => Ok(false),
        }
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.inner
            .users
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: USERS,
                    key: String::from_utf8_lossy(&v).into_owned(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Check a user's password on the blocking pool (PBKDF2 takes milliseconds on purpose).
    /// Unknown users and wrong passwords are both `Ok(false)`.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<bool> {
        let record = match normalise_name(name) {
            Ok(_) => self.user(name)?,
            Err(_) => None,
        };
        let password = password.to_owned();
        blocking(move || {
            Ok(match record {
                Some(r) => verify_password(&r.hash, &password),
                // Spend the same work for unknown users so timing does not reveal them.
                None => {
                    let _ = verify_password(users::DUMMY_HASH, &password);
                    false
                }
            })
        })
        .await
    }
}

fn encode(envelope: &Envelope) -> Vec<u8> {
    // Serialising our own plain structs cannot fail.
    serde_json::to_vec(envelope).unwrap_or_default()
}

fn decode(tree: &'static str, id: QueueId, bytes: &[u8]) -> Result<Envelope> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { tree, key: id.to_string(), reason: e.to_string() })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests;
