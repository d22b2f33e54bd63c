//! The store's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually a running daemon) holds the store's lock.
    #[error("the store at {0} is in use by another process (is `sipmta serve` running?)")]
    Locked(PathBuf),
    /// sled reported an IO or internal error.
    #[error("store database error: {0}")]
    Db(#[from] sled::Error),
    /// A filesystem call outside sled failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be decoded. The record is left in place for inspection.
    #[error("corrupt record in tree {tree} at key {key}: {reason}")]
    Corrupt {
        /// The sled tree holding the record.
        tree: &'static str,
        /// The record's key, printed for the operator.
        key: String,
        /// Why decoding failed.
        reason: String,
    },
    /// A user to be added already exists.
    #[error("user {0} already exists")]
    UserExists(String),
    /// A user to be changed or removed does not exist.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// A user name that cannot be stored (empty, too long, control characters).
    #[error("invalid user name {0:?}: {1}")]
    InvalidUser(String, &'static str),
    /// A routing table key, keyword, name or prefix that cannot be stored.
    #[error("{value:?} is not a valid {what}: {reason}")]
    InvalidEntry {
        /// What it should have been ("address", "domain", "keyword", "name", "prefix").
        what: &'static str,
        /// What was given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A routing table entry to be removed does not exist.
    #[error("no such {table}: {key}")]
    NoSuchEntry {
        /// "route", "keyword" or "prefix".
        table: &'static str,
        /// The key, normalised as it would have been stored.
        key: String,
    },
    /// A queue entry that does not exist.
    #[error("no such message: {0}")]
    NoSuchMessage(String),
    /// A blocking task was cancelled or panicked; the operation may not have happened.
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// The disk (or the user's quota) is full: the SMTP server says `452 4.3.1` (RFC 3463).
    pub fn is_out_of_space(&self) -> bool {
        let io = match self {
            StoreError::Db(sled::Error::Io(e)) | StoreError::Io { source: e, .. } => e,
            _ => return false,
        };
        matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let full = StoreError::Io { context: "spooling".into(), source: std::io::Error::from_raw_os_error(28) };
        let quota = StoreError::Db(sled::Error::Io(std::io::Error::from_raw_os_error(122)));
        let other = StoreError::Io { context: "spooling".into(), source: std::io::Error::from_raw_os_error(5) };
        assert!(full.is_out_of_space() && quota.is_out_of_space());
        assert!(!other.is_out_of_space());
    }
}
