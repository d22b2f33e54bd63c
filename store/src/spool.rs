//! Message bodies as files, one per queued message, made durable with fsync.
//!
//! sled 0.34 alone is not enough for "nothing lost after a 250": its flush ends in
//! `sync_file_range(2)` on Linux (no disk cache flush, no metadata), and values too large for
//! a log segment go to blob files that are never synced at all. So message bodies live here,
//! each written and `fsync`ed before its envelope (the commit record) is written to sled, and
//! [`Spool::sync_dir`] makes the new directory entries durable once per group commit.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::types::QueueId;

/// The spool directory.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    /// A file was created since the directory was last synced. Only creations need the sync:
    /// a removal that a crash undoes leaves a file without an envelope, which
    /// `Store::open` removes as an orphan. Commits that only change envelopes (most of them:
    /// delivery results, history) so skip a directory fsync.
    created: AtomicBool,
}

impl Spool {
    /// Open (create) the spool directory.
    pub(crate) fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        Ok(Spool { dir: dir.to_path_buf(), created: AtomicBool::new(true) })
    }

    fn path(&self, id: QueueId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Write a message and fsync it. The file is not reachable until its directory entry is
    /// synced ([`Spool::sync_dir`]) and its envelope is committed.
    /// A failed write (a full disk) removes what it wrote: the space is needed at once, not
    /// at the next start's orphan sweep.
    pub(crate) fn write(&self, id: QueueId, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(id);
        let written = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        // Set after the write: a sync that clears the flag later covers this entry.
        self.created.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Read a message; `None` when there is no file.
    pub(crate) fn read(&self, id: QueueId) -> io::Result<Option<Vec<u8>>> {
        match File::open(self.path(id)) {
            Ok(mut f) => {
                let mut buf = Vec::with_capacity(f.metadata().map(|m| m.len() as usize).unwrap_or(0));
                f.read_to_end(&mut buf)?;
                Ok(Some(buf))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a message file exists (without reading it).
    pub(crate) fn exists(&self, id: QueueId) -> bool {
        fs::symlink_metadata(self.path(id)).is_ok()
    }

    /// Remove a message file (gone already is fine).
    pub(crate) fn remove(&self, id: QueueId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Make the directory entries of files created so far durable (a no-op when none was).
    pub(crate) fn sync_dir(&self) -> io::Result<()> {
        if !self.created.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let synced = File::open(&self.dir).and_then(|d| d.sync_all());
        if synced.is_err() {
            self.created.store(true, Ordering::SeqCst);
        }
        synced
    }

    /// Every message file's id (files that are not ours are ignored).
    pub(crate) fn ids(&self) -> io::Result<Vec<QueueId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().filter(|n| n.len() == 16).and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}
