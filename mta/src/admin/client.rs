//! The CLI's side of the admin API: a small blocking HTTP/1.1 client over
//! `std::net::TcpStream` (the CLI is synchronous; one request per connection).
//!
//! [`Client::discover`] finds a running daemon through the files it publishes in the data
//! directory; a failed connect means there is none (the files are stale after a crash). Error
//! answers become [`ClientError::Api`] carrying the daemon's own message for the operator.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sipmta_rules::number::Prefix;
use sipmta_store::{Envelope, QueueId, Table, TableEntry};

use super::http::{self, Parsed, Response, percent_encode};
use super::{ApiError, Files, NewPassword, NewUser, QueueEntry, UserInfo};
use crate::queue_control::{Change, HistoryEntry, HistoryFilter};
use crate::tables::{self, EntrySet, ImportReport, NewEntry, NewPrefix, PrefixRemoved, PrefixSet};

/// How long to wait for a connection to a daemon on this machine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for an answer: adding a user hashes a password and flushes the store.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer accepted (a very long queue listing).
const MAX_ANSWER: usize = 256 << 20;
/// Content types of request bodies.
const JSON: &str = "application/json";
const CSV: &str = "text/csv; charset=utf-8";

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error; `message` is its own explanation.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The `error` field of the answer (or the status when there was none).
        message: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("admin API at {addr}: {source}")]
    Io {
        /// The daemon's address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not the HTTP or JSON we expect.
    #[error("admin API at {addr}: {detail}")]
    Protocol {
        /// The daemon's address.
        addr: SocketAddr,
        /// What was wrong with it.
        detail: String,
    },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A connection target for the admin API and the token to present.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    token: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `addr` presenting `token`.
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> Client {
        Client { addr, token: token.into() }
    }

    /// The daemon serving `data_dir`, if one runs: its token and address files exist and one
    /// of the addresses accepts a connection. An unreadable token file (the CLI run as another
    /// user) is an error rather than "no daemon", so the operator learns why.
    pub fn discover(data_dir: &Path) -> std::io::Result<Option<Client>> {
        let Some((token, addrs)) = Files::new(data_dir).read()? else {
            return Ok(None);
        };
        Ok(addrs.into_iter().find(|a| TcpStream::connect_timeout(a, CONNECT_TIMEOUT).is_ok()).map(|addr| Client::new(addr, token)))
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET /users`.
    pub fn users(&self) -> Result<Vec<UserInfo>, ClientError> {
        self.json("GET", "/users", None::<&()>)
    }

    /// `POST /users`: add a user, durable when it returns.
    pub fn add_user(&self, name: &str, password: &str) -> Result<UserInfo, ClientError> {
        self.json("POST", "/users", Some(&NewUser { name: name.into(), password: password.into() }))
    }

    /// `PUT /users/{name}/password`.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), ClientError> {
        self.call("PUT", &format!("/users/{}/password", percent_encode(name)), Some(&NewPassword { password: password.into() })).map(drop)
    }

    /// `DELETE /users/{name}`.
    pub fn remove_user(&self, name: &str) -> Result<(), ClientError> {
        self.call("DELETE", &format!("/users/{}", percent_encode(name)), None::<&()>).map(drop)
    }

    /// `GET /queue`.
    pub fn queue(&self) -> Result<Vec<Envelope>, ClientError> {
        self.json("GET", "/queue", None::<&()>)
    }

    /// `GET /queue/{id}`; `None` when the daemon knows no such message.
    pub fn message(&self, id: QueueId) -> Result<Option<QueueEntry>, ClientError> {
        match self.json("GET", &format!("/queue/{id}"), None::<&()>) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /queue/{id}/flush`, or `POST /queue/flush` for every message.
    pub fn flush(&self, id: Option<QueueId>) -> Result<Change, ClientError> {
        match id {
            Some(id) => self.json("POST", &format!("/queue/{id}/flush"), None::<&()>),
            None => self.json("POST", "/queue/flush", None::<&()>),
        }
    }

    /// `POST /queue/{id}/hold`.
    pub fn hold(&self, id: QueueId) -> Result<Change, ClientError> {
        self.json("POST", &format!("/queue/{id}/hold"), None::<&()>)
    }

    /// `POST /queue/{id}/release`.
    pub fn release(&self, id: QueueId) -> Result<Change, ClientError> {
        self.json("POST", &format!("/queue/{id}/release"), None::<&()>)
    }

    /// `DELETE /queue/{id}`: the message leaves the spool without a DSN.
    pub fn delete(&self, id: QueueId) -> Result<Change, ClientError> {
        self.json("DELETE", &format!("/queue/{id}"), None::<&()>)
    }

    /// `GET /history`, filtered.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, ClientError> {
        let mut query = Vec::new();
        if let Some(rcpt) = &filter.rcpt {
            query.push(format!("rcpt={}", percent_encode(rcpt)));
        }
        if let Some(since) = filter.since {
            query.push(format!("since={since}"));
        }
        let path = if query.is_empty() { "/history".to_owned() } else { format!("/history?{}", query.join("&")) };
        self.json("GET", &path, None::<&()>)
    }

    /// `GET /routes` or `GET /keywords`.
    pub fn entries(&self, table: Table) -> Result<Vec<TableEntry>, ClientError> {
        self.json("GET", &format!("/{}", tables::path(table)), None::<&()>)
    }

    /// `POST /routes` or `POST /keywords`: add or replace an entry, durable when it returns.
    pub fn add_entry(&self, table: Table, entry: &NewEntry) -> Result<EntrySet, ClientError> {
        self.json("POST", &format!("/{}", tables::path(table)), Some(entry))
    }

    /// `DELETE /routes/{key}` or `DELETE /keywords/{keyword}`: the entry removed.
    pub fn remove_entry(&self, table: Table, key: &str) -> Result<TableEntry, ClientError> {
        self.json("DELETE", &format!("/{}/{}", tables::path(table), percent_encode(key)), None::<&()>)
    }

    /// `POST /routes/import` or `POST /keywords/import` with CSV text: all or nothing.
    pub fn import(&self, table: Table, csv: &[u8]) -> Result<ImportReport, ClientError> {
        let path = format!("/{}/import", tables::path(table));
        let response = self.call_typed("POST", &path, CSV, csv)?;
        self.decode("POST", &path, &response)
    }

    /// `GET /routes/export` or `GET /keywords/export`: the CSV text.
    pub fn export(&self, table: Table) -> Result<String, ClientError> {
        let path = format!("/{}/export", tables::path(table));
        let response = self.call_typed("GET", &path, CSV, b"")?;
        String::from_utf8(response.body)
            .map_err(|_| ClientError::Protocol { addr: self.addr, detail: format!("{path}: the CSV is not UTF-8") })
    }

    /// `POST /routes/explain?rcpt=...` with an optional message: the daemon's decision.
    pub fn explain(&self, rcpt: &str, message: Option<&[u8]>) -> Result<crate::routing::Explanation, ClientError> {
        let path = format!("/routes/explain?rcpt={}", percent_encode(rcpt));
        let response = self.call_typed("POST", &path, "message/rfc822", message.unwrap_or_default())?;
        self.decode("POST", &path, &response)
    }

    /// `GET /learned`: the learned table.
    pub fn learned(&self) -> Result<Vec<crate::admin::server::LearnedRow>, ClientError> {
        self.json("GET", "/learned", None::<&()>)
    }

    /// `DELETE /learned/{address}`.
    pub fn forget(&self, address: &str) -> Result<(), ClientError> {
        self.call("DELETE", &format!("/learned/{}", percent_encode(address)), None::<&()>).map(drop)
    }

    /// `GET /protocols`: the protocol table.
    pub fn protocols(&self) -> Result<Vec<crate::admin::server::ProtocolRow>, ClientError> {
        self.json("GET", "/protocols", None::<&()>)
    }

    /// `DELETE /protocols/{number}`.
    pub fn remove_protocol(&self, number: &str) -> Result<(), ClientError> {
        self.call("DELETE", &format!("/protocols/{}", percent_encode(number)), None::<&()>).map(drop)
    }

    /// `GET /prefixes`.
    pub fn prefixes(&self) -> Result<Vec<Prefix>, ClientError> {
        self.json("GET", "/prefixes", None::<&()>)
    }

    /// `POST /prefixes`: add a prefix or change its length.
    pub fn add_prefix(&self, digits: &str, length: u8) -> Result<PrefixSet, ClientError> {
        self.json("POST", "/prefixes", Some(&NewPrefix { digits: digits.to_owned(), length }))
    }

    /// `DELETE /prefixes/{digits}`.
    pub fn remove_prefix(&self, digits: &str) -> Result<PrefixRemoved, ClientError> {
        self.json("DELETE", &format!("/prefixes/{}", percent_encode(digits)), None::<&()>)
    }

    /// Send one request with a JSON body and return the status and body as they came, error
    /// answers included (for tests and diagnostics).
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> Result<Response, ClientError> {
        self.raw_typed(method, path, JSON, body)
    }

    /// [`Client::raw`] with a body of another type (CSV for imports).
    pub fn raw_typed(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io { addr: self.addr, source };
        let mut stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).map_err(io)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
        let body = (!body.is_empty()).then_some(body);
        stream.write_all(&http::write_request(method, path, &self.addr.to_string(), &self.token, content_type, body)).map_err(io)?;
        // The daemon closes after its answer (Connection: close), so read to the end.
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER as u64 + 64 * 1024).read_to_end(&mut answer).map_err(io)?;
        let protocol = |detail: String| ClientError::Protocol { addr: self.addr, detail };
        match http::parse_response(&answer, MAX_ANSWER) {
            Ok(Parsed::Complete(response, _)) => Ok(response),
            Ok(Parsed::Incomplete) => Err(protocol("the answer ended early".into())),
            Err(e) => Err(protocol(format!("malformed answer: {e}"))),
        }
    }

    /// Send a request with an optional JSON body; error statuses become [`ClientError::Api`].
    fn call(&self, method: &str, path: &str, body: Option<&impl Serialize>) -> Result<Response, ClientError> {
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Protocol { addr: self.addr, detail: e.to_string() })?,
            None => Vec::new(),
        };
        self.call_typed(method, path, JSON, &body)
    }

    /// Send a request with a body of `content_type`; error statuses become [`ClientError::Api`].
    fn call_typed(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Response, ClientError> {
        let response = self.raw_typed(method, path, content_type, body)?;
        if response.status >= 400 {
            let message = serde_json::from_slice::<ApiError>(&response.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("the admin API answered {} {}", response.status, http::reason(response.status)));
            return Err(ClientError::Api { status: response.status, message });
        }
        Ok(response)
    }

    fn json<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&impl Serialize>) -> Result<T, ClientError> {
        let response = self.call(method, path, body)?;
        self.decode(method, path, &response)
    }

    fn decode<T: DeserializeOwned>(&self, method: &str, path: &str, response: &Response) -> Result<T, ClientError> {
        serde_json::from_slice(&response.body)
            .map_err(|e| ClientError::Protocol { addr: self.addr, detail: format!("unexpected answer to {method} {path}: {e}") })
    }
}
