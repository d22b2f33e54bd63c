//! Maildir delivery (<https://cr.yp.to/proto/maildir.html>): write in `tmp/`, fsync, rename
//! into `new/`, fsync the directory. A message is in the mailbox exactly when its name appears
//! in `new/`, so a crash never leaves half a message for the reader.
//!
//! Layout: `<root>/<domain>/<localpart>/{tmp,new,cur}`, both lower-cased. Lines are stored with
//! LF endings as Maildir readers (Dovecot, mutt) expect, after a `Return-Path` (RFC 5321 §4.4)
//! and a `Delivered-To` header.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::smtp::rcpt::is_safe_local_part;

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

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

/// Deliver one copy; returns the path of the new file.
pub fn deliver(root: &Path, address: &str, sender: &str, message: &[u8], hostname: &str) -> io::Result<PathBuf> {
    let dir = mailbox_dir(root, address)?;
    for sub in ["tmp", "new", "cur"] {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
    }
    let name = unique_name(hostname);
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let result = write_file(&tmp, address, sender, message).and_then(|()| fs::rename(&tmp, &new)).and_then(|()| sync_dir(&dir.join("new")));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| new)
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

/// `time.MusecPpidQn.host` as the Maildir description recommends; `/` and `:` in the host
/// name are escaped as it says.
fn unique_name(hostname: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    format!("{}.M{}P{}Q{n}.{host}", now.as_secs(), now.subsec_micros(), std::process::id())
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
        let path = deliver(root.path(), "Alice@LocalHost", "bob@example.org", b"Subject: hi\r\n\r\nbody\r\n", "mx/1:2").unwrap();
        assert!(path.starts_with(root.path().join("localhost/alice/new")));
        assert!(path.to_string_lossy().ends_with(".mx\\0571\\0722"));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "Return-Path: <bob@example.org>\nDelivered-To: Alice@LocalHost\nSubject: hi\n\nbody\n");
        assert_eq!(fs::read_dir(root.path().join("localhost/alice/tmp")).unwrap().count(), 0);
        assert!(root.path().join("localhost/alice/cur").is_dir());
    }

    #[test]
    fn null_sender_and_unique_names() {
        let root = tempfile::tempdir().unwrap();
        let a = deliver(root.path(), "x@localhost", "", b"a\r\n", "h").unwrap();
        let b = deliver(root.path(), "x@localhost", "", b"b\r\n", "h").unwrap();
        assert_ne!(a, b);
        assert!(fs::read_to_string(a).unwrap().starts_with("Return-Path: <>\n"));
    }

    #[test]
    fn unsafe_addresses_never_become_paths() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["../x@localhost", "x@../etc", "a/b@localhost", "x@", "nodomain", ".hidden@localhost"] {
            assert!(deliver(root.path(), bad, "", b"x", "h").is_err(), "{bad}");
        }
    }
}
