//! Session transcripts over in-memory streams: every verb and reply path, without sockets.
//!
//! [`Harness`] builds a real context (store in a temp dir, TLS acceptor); [`Client`] speaks to
//! a session running [`serve_connection`] over `tokio::io::duplex`. `script` runs a transcript
//! where `C:` lines are sent and `S:` lines are expected (a trailing `*` matches a prefix).

#![allow(clippy::unwrap_used)]

mod auth_tls;
mod limits;
mod policy;
mod resend;
mod routing;
mod verbs;

use std::sync::Arc;
use std::time::Duration;

use sipmta_store::{Envelope, QueueId, Store};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::{Ctx, Kind, SessionState, serve_connection};
use crate::config::{ByteSize, Config};

pub(super) struct Harness {
    pub _dir: tempfile::TempDir,
    pub ctx: Arc<Ctx>,
    pub accepted: mpsc::UnboundedReceiver<QueueId>,
    pub shutdown: watch::Sender<bool>,
}

pub(super) fn harness() -> Harness {
    harness_with(|_| {})
}

pub(super) fn harness_with(adjust: impl FnOnce(&mut Config)) -> Harness {
    let crate::testutil::SessionCtx { dir, ctx, accepted, shutdown } = crate::testutil::session_ctx(adjust);
    Harness { _dir: dir, ctx, accepted, shutdown }
}

impl Harness {
    /// A client connected to a new session on `kind`, seen as coming from `peer`.
    pub fn client(&self, kind: Kind, peer: &str) -> Client<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let st = SessionState::new(kind, peer.parse().unwrap(), "127.0.0.1:25".parse().unwrap());
        tokio::spawn(serve_connection(server, self.ctx.clone(), st));
        Client { io: BufReader::new(client) }
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// The envelope of the message whose id is in a `250 ... queued as ID` reply.
    pub fn envelope_of(&self, reply: &str) -> Envelope {
        let id: QueueId = reply.rsplit(' ').next().unwrap().parse().unwrap();
        self.store().envelope(id).unwrap().unwrap()
    }

    pub fn message_of(&self, reply: &str) -> String {
        let id: QueueId = reply.rsplit(' ').next().unwrap().parse().unwrap();
        String::from_utf8(self.store().message(id).unwrap().unwrap()).unwrap()
    }

    /// Add a user directly in the store.
    pub fn user(&self, name: &str, password: &str) {
        self.store().add_user(name, password).unwrap();
    }
}

pub(super) struct Client<S> {
    pub io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// One reply line without CRLF, `<eof>` when the server closed.
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line))
            .await
            .expect("server did not answer within 10 s")
            .unwrap();
        if n == 0 { "<eof>".into() } else { line.trim_end_matches(['\r', '\n']).to_owned() }
    }

    /// A whole (possibly multi-line) reply, lines joined with `\n`.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let last = line == "<eof>" || line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub async fn send(&mut self, raw: &[u8]) {
        self.io.get_mut().write_all(raw).await.unwrap();
    }

    /// Send a command, return its reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Run a transcript: `C: text` sends a line, `S: text` expects one reply line.
    pub async fn script(&mut self, script: &str) {
        for (n, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            if let Some(c) = line.strip_prefix("C:") {
                self.send(format!("{}\r\n", c.trim_start()).as_bytes()).await;
            } else if let Some(expected) = line.strip_prefix("S:") {
                let expected = expected.trim_start();
                let got = self.line().await;
                let ok = match expected.strip_suffix('*') {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == expected,
                };
                assert!(ok, "transcript step {n}: expected {expected:?}, got {got:?}");
            } else {
                panic!("transcript line must start with C: or S: ({line:?})");
            }
        }
    }

    /// Greeting plus EHLO; returns the EHLO reply.
    pub async fn hello(&mut self) -> String {
        let greeting = self.reply().await;
        assert!(greeting.starts_with("220 mx.test ESMTP"), "{greeting}");
        let ehlo = self.cmd("EHLO client.example").await;
        assert!(ehlo.starts_with("250-mx.test greets client.example"), "{ehlo}");
        ehlo
    }

    /// MAIL, RCPTs and DATA with `body` (already CRLF-terminated lines); returns the final reply.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], body: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(r.starts_with("250 "), "MAIL: {r}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(r.starts_with("250 "), "RCPT {rcpt}: {r}");
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354 "), "DATA: {r}");
        self.send(body.as_bytes()).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

pub(super) const LOOPBACK: &str = "127.0.0.1:40000";
pub(super) const REMOTE: &str = "192.0.2.55:40000";
pub(super) const MESSAGE: &str = "From: a@example.org\r\nTo: postmaster@localhost\r\nSubject: test\r\n\r\nHello.\r\n";
