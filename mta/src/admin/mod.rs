//! The admin API: what `sipmta user ...`, `queue ...`, `route ...`, `keyword ...` and
//! `prefix ...` use while the daemon holds the store (sled lets only one process open it).
//! DESIGN.md "Operations".
//!
//! - [`http`]: the sans-IO HTTP/1.1 subset both sides speak;
//! - [`server`]: the daemon's listener (bound in `Server::start`, served in `Server::run`);
//! - [`client`]: the CLI's blocking client.
//!
//! Invariants: the API listens on loopback only (config validation refuses anything else,
//! since `POST /users` carries a password in clear text); every request needs
//! `Authorization: Bearer <token>`, where the token is 32 fresh random bytes per daemon start,
//! written to `<data_dir>/admin.token` with mode 0600, so only the daemon's user (and root) can
//! use the API. `<data_dir>/admin.addr` holds the bound addresses, one per line. Both files are
//! removed at a clean shutdown; after a crash they are stale, the connect fails and the CLI
//! opens the store itself.
//!
//! Endpoints (JSON bodies; errors are `{"error": "..."}`):
//! `GET /users`, `POST /users`, `PUT /users/{name}/password`, `DELETE /users/{name}`,
//! `GET /queue`, `GET /queue/{id}`, `GET /history?rcpt=ADDR&since=T` (both optional; `T` is
//! Unix seconds or a duration ago such as `2h`), and the queue changes, each answered with a
//! [`crate::queue_control::Change`] once durable, after which the queue manager is woken:
//! `POST /queue/flush` (every message), `POST /queue/{id}/flush`, `POST /queue/{id}/hold`,
//! `POST /queue/{id}/release`, `DELETE /queue/{id}` (no DSN). The routing tables:
//! `GET|POST /routes`, `DELETE /routes/{key}`, `POST /routes/import` (CSV body, up to 16 MiB),
//! `GET /routes/export` (CSV), the same under `/keywords`, and `GET|POST /prefixes`,
//! `DELETE /prefixes/{digits}` (see `server::tables`). Names in paths and queries are
//! percent-encoded.

pub mod client;
pub mod http;
pub mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sipmta_store::{Envelope, Event};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "admin.token";
/// The address file's name in the data directory.
pub const ADDR_FILE: &str = "admin.addr";

/// One user as `GET /users` lists it: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The (normalised) user name.
    pub name: String,
    /// When the user was created (Unix seconds).
    pub created: u64,
}

/// `POST /users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user name.
    pub name: String,
    /// The password in clear; hashed by the store, never logged.
    pub password: String,
}

/// `PUT /users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password in clear.
    pub password: String,
}

/// `GET /queue/{id}`: the envelope while the message is queued, and its history, which
/// outlives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The envelope, `None` once every recipient finished and the message left the spool.
    pub envelope: Option<Envelope>,
    /// The history, oldest first.
    pub history: Vec<Event>,
}

/// Every error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, in words for the operator.
    pub error: String,
}

/// Where the API's files live for a data directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// `<data_dir>/admin.token`.
    pub token: PathBuf,
    /// `<data_dir>/admin.addr`.
    pub addr: PathBuf,
}

impl Files {
    /// The files for `data_dir`.
    pub fn new(data_dir: &Path) -> Files {
        Files { token: data_dir.join(TOKEN_FILE), addr: data_dir.join(ADDR_FILE) }
    }

    /// Publish a token and the bound addresses. Each file is written under a temporary name
    /// (created 0600, so the token is never readable by others, even for a moment), fsynced and
    /// renamed into place, so a CLI reading concurrently sees the old file or the whole new one.
    /// The token goes first: whoever sees the new address also finds its token.
    pub fn write(&self, token: &str, addrs: &[SocketAddr]) -> std::io::Result<()> {
        write_private(&self.token, token.as_bytes())?;
        let lines: String = addrs.iter().map(|a| format!("{a}\n")).collect();
        write_private(&self.addr, lines.as_bytes())?;
        if let Some(dir) = self.token.parent() {
            // Make the renames themselves durable.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Remove both files; missing ones are fine (a second shutdown, a manual clean-up).
    pub fn remove(&self) -> std::io::Result<()> {
        for path in [&self.addr, &self.token] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Read the published token and addresses; `None` if either file is missing (no daemon, or
    /// its API is off).
    pub fn read(&self) -> std::io::Result<Option<(String, Vec<SocketAddr>)>> {
        let read = |path: &Path| match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
        };
        let (Some(token), Some(addrs)) = (read(&self.token)?, read(&self.addr)?) else {
            return Ok(None);
        };
        let addrs = addrs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        Ok(Some((token.trim().to_owned(), addrs)))
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash may have any mode; mode() applies only to files we create.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    // The umask can only take bits away from 0600; set it anyway so the mode is exact.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
pub(crate) mod tests;
