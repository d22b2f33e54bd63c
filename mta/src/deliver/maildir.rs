//! Maildir delivery (<https://cr.yp.to/proto/maildir.html>): write in `tmp/`, fsync, rename
//! into `new/`, fsync the directory. A message is in the mailbox exactly when its name appears
//! in `new/`, so a crash never leaves half a message for the reader.
//!
//! The name is made from the queue id and the recipient's index (the Maildir description only
//! asks for a name unique on the host): a process killed after the rename but before the result
//! was recorded tries the delivery again after its restart, finds the name in `new/` (or in
//! `cur/` with the `:2,` info of a message not yet flagged) and reports it delivered instead of
//! adding a second copy.
//!
//! Layout: `<root>/<domain>/<localpart>/{tmp,new,cur}`, both lower-cased. Lines are stored with
//! LF endings as Maildir readers (Dovecot, mutt) expect, after a `Return-Path` (RFC 5321 §4.4)
//! and a `Delivered-To` header.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::smtp::rcpt::is_safe_local_part;

/// The mailbox directory for an address, or an error when the address cannot name one safely.
pub fn mailbox_dir(root: &Path, address: &str) -> io::Result<PathBuf> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{address}: {why}"));
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| invalid("no domain"))?;
    // Checked at RCPT already; checked again because this becomes a path.
    if !is_safe_local_part(local) {
        return Err(invalid("local part is not a safe mailbox name"));
    }
    if !crate::config::is_domain(domain) {
        return Err(invalid("domain is not a safe directory name"));
    }
    Ok(root.join(domain.trim_end_matches('.').to_lowercase()).join(local.to_lowercase()))
}

/// Where [`deliver`] left the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub path: PathBuf,
    /// Found from an earlier attempt whose result was never recorded: nothing was written.
    pub earlier: bool,
}

/// Deliver one copy of message `key` (queue id and recipient index, unique on this host).
pub fn deliver(root: &Path, address: &str, sender: &str, message: &[u8], hostname: &str, key: &str) -> io::Result<Delivered> {
    let dir = mailbox_dir(root, address)?;
    for sub in ["tmp", "new", "cur"] {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
    }
    let name = file_name(key, hostname);
    let new = dir.join("new").join(&name);
    for seen in [new.clone(), dir.join("cur").join(format!("{name}:2,"))] {
        if seen.exists() {
            return Ok(Delivered { path: seen, earlier: true });
        }
    }
    let tmp = dir.join("tmp").join(&name);
    // Left by an attempt killed while writing: that copy was never in the mailbox.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = write_file(&tmp, address, sender, message).and_then(|()| fs::rename(&tmp, &new)).and_then(|()| sync_dir(&dir.join("new")));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| Delivered { path: new, earlier: false })
}

fn write_file(path: &Path, address: &str, sender: &str, message: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    let mut out = Vec::with_capacity(message.len() + 128);
    out.extend_from_slice(format!("Return-Path: <{sender}>\nDelivered-To: {address}\n").as_bytes());
    crlf_to_lf(message, &mut out);
    f.write_all(&out)?;
    f.sync_all()
}

/// The rename is durable only once the directory entry is.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `key.host`, with `/` and `:` in the host name escaped as the Maildir description says (and
/// in the key, which callers make from a queue id and an index).
fn file_name(key: &str, hostname: &str) -> String {
    let escape = |s: &str| s.replace('/', "\\057").replace(':', "\\072");
    format!("{}.{}", escape(key), escape(hostname))
}

/// Copy with CRLF turned into LF (the spool holds canonical CRLF only).
fn crlf_to_lf(input: &[u8], out: &mut Vec<u8>) {
    let mut rest = input;
    while let Some(pos) = memchr::memmem::find(rest, b"\r\n") {
        out.extend_from_slice(&rest[..pos]);
        out.push(b'\n');
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delivers_into_new_with_return_path() {
        let root = tempfile::tempdir().unwrap();
        let path =
            deliver(root.path(), "Alice@LocalHost", "bob@example.org", b"Subject: hi\r\n\r\nbody\r\n", "mx/1:2", "1A.0").unwrap().path;
        assert!(path.starts_with(root.path().join("localhost/alice/new")));
        assert!(path.to_string_lossy().ends_with("/new/1A.0.mx\\0571\\0722"), "{}", path.display());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "Return-Path: <bob@example.org>\nDelivered-To: Alice@LocalHost\nSubject: hi\n\nbody\n");
        assert_eq!(fs::read_dir(root.path().join("localhost/alice/tmp")).unwrap().count(), 0);
        assert!(root.path().join("localhost/alice/cur").is_dir());
    }

    #[test]
    fn null_sender_and_one_file_per_key() {
        let root = tempfile::tempdir().unwrap();
        let a = deliver(root.path(), "x@localhost", "", b"a\r\n", "h", "1A.0").unwrap();
        let b = deliver(root.path(), "x@localhost", "", b"b\r\n", "h", "1A.1").unwrap();
        assert_ne!(a.path, b.path);
        assert!(!a.earlier && !b.earlier);
        assert!(fs::read_to_string(&a.path).unwrap().starts_with("Return-Path: <>\n"));
    }

    #[test]
    fn a_delivery_repeated_after_a_crash_adds_no_second_copy() {
        let root = tempfile::tempdir().unwrap();
        let first = deliver(root.path(), "x@localhost", "", b"a\r\n", "h", "1A.0").unwrap();
        let again = deliver(root.path(), "x@localhost", "", b"a\r\n", "h", "1A.0").unwrap();
        assert_eq!(again, Delivered { path: first.path.clone(), earlier: true });
        assert_eq!(fs::read_dir(root.path().join("localhost/x/new")).unwrap().count(), 1);
        // Read by a client meanwhile (moved to cur/ with empty flags): still found.
        let cur = root.path().join("localhost/x/cur/1A.0.h:2,");
        fs::rename(&first.path, &cur).unwrap();
        assert_eq!(deliver(root.path(), "x@localhost", "", b"a\r\n", "h", "1A.0").unwrap(), Delivered { path: cur, earlier: true });
        // A half-written copy left in tmp/ by a killed attempt is replaced, not an obstacle.
        fs::write(root.path().join("localhost/x/tmp/1A.1.h"), "partial").unwrap();
        let other = deliver(root.path(), "x@localhost", "", b"b\r\n", "h", "1A.1").unwrap();
        assert!(!other.earlier);
        assert_eq!(fs::read_to_string(other.path).unwrap(), "Return-Path: <>\nDelivered-To: x@localhost\nb\n");
        assert_eq!(fs::read_dir(root.path().join("localhost/x/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn unsafe_addresses_never_become_paths() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["../x@localhost", "x@../etc", "a/b@localhost", "x@", "nodomain", ".hidden@localhost"] {
            assert!(deliver(root.path(), bad, "", b"x", "h", "1A.0").is_err(), "{bad}");
        }
    }
}
