//! The SMTP session: its state, the command loop and the connection driver.
//!
//! A [`Session`] is generic over its stream. STARTTLS changes the stream's type, so it is not a
//! flag: [`Session::run`] returns [`Outcome::StartTls`] with the plain stream and the state, and
//! [`serve_connection`] performs the handshake and runs a new session over the TLS stream. Every
//! command's reply is produced by a handler as a [`Reply`] value; protocol errors from the parser
//! and read outcomes are mapped to replies in [`Session::run`] and [`parse_error_reply`] only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sipmta_store::{Body, Recipient, Ret};
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{Instrument, debug, info, info_span, warn};

use super::conn::{Conn, Input};
use super::reply::Reply;
use super::{Ctx, Kind};

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// A mail transaction in progress (between MAIL and the end of DATA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Reverse-path; empty for `<>`.
    pub sender: String,
    /// `BODY=`
    pub body: Body,
    /// `SMTPUTF8`
    pub smtputf8: bool,
    /// `RET=`
    pub ret: Option<Ret>,
    /// `ENVID=` (decoded)
    pub env_id: Option<String>,
    /// `SIZE=` as declared (0 when absent).
    pub declared_size: usize,
    /// Accepted recipients.
    pub recipients: Vec<Recipient>,
}

/// Everything a session knows that survives a STARTTLS upgrade (RFC 3207 §4.2 resets the
/// SMTP state but not who the client is).
#[derive(Debug, Clone)]
pub struct SessionState {
    /// Unique per process, for logs.
    pub id: u64,
    /// The listener.
    pub kind: Kind,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address on this connection.
    pub local: SocketAddr,
    /// The EHLO/HELO argument.
    pub helo: Option<String>,
    /// EHLO (not HELO) was used, so ESMTP parameters are allowed.
    pub esmtp: bool,
    /// `Some(description)` once TLS is up, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`.
    pub tls: Option<String>,
    /// The authenticated user.
    pub auth_user: Option<String>,
    /// The transaction in progress.
    pub tx: Option<Transaction>,
    /// Replies with a 5xx code so far.
    pub errors: usize,
    /// On a fast-path stream: the calling number (the INVITE's From user), for learning.
    pub sip_caller: Option<String>,
}

impl SessionState {
    /// State for a new connection.
    pub fn new(kind: Kind, peer: SocketAddr, local: SocketAddr) -> SessionState {
        SessionState {
            id: SESSION_IDS.fetch_add(1, Ordering::Relaxed),
            kind,
            peer,
            local,
            helo: None,
            esmtp: false,
            tls: None,
            auth_user: None,
            tx: None,
            errors: 0,
            sip_caller: None,
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Outcome<S> {
    /// The connection is finished.
    Closed,
    /// The client asked for TLS and got `220`: do the handshake on this stream.
    StartTls(S, Box<SessionState>),
}

/// What a handler tells the loop to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Close after flushing the queued reply.
    Close,
    /// Hand the stream to the TLS handshake.
    StartTls,
}

/// One SMTP session over a stream.
#[derive(Debug)]
pub struct Session<S> {
    pub(crate) conn: Conn<S>,
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) st: SessionState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session that has not greeted yet.
    pub fn new(stream: S, ctx: Arc<Ctx>, st: SessionState) -> Session<S> {
        let idle = ctx.config.limits.idle_timeout.0;
        Session { conn: Conn::new(stream, idle), ctx, st }
    }

    /// Greet and serve commands until the session ends. `greet` is false after STARTTLS
    /// (the client speaks first with EHLO, RFC 3207 §4.2).
    pub async fn run(mut self, greet: bool) -> Outcome<S> {
        if greet {
            if *self.ctx.shutdown.borrow() {
                self.conn.reply(&Reply::new(421, "4.3.2", format!("{} Service shutting down, try again later", self.ctx.config.hostname)));
                let _ = self.conn.flush().await;
                return Outcome::Closed;
            }
            let banner = format!("{} ESMTP sipmta", self.ctx.config.hostname);
            self.conn.reply(&Reply::bare(220, banner));
        }
        let max_line = self.ctx.config.limits.max_command_line;
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            // Only a session between transactions is interrupted by shutdown; an open
            // transaction may finish within the grace period (DESIGN.md "Operations").
            let idle = self.st.tx.is_none();
            let input = match self.conn.read_line(max_line, idle.then_some(&mut shutdown)).await {
                Ok(input) => input,
                Err(e) => {
                    debug!(error = %e, "connection error");
                    return Outcome::Closed;
                }
            };
            let next = match input {
                Input::Line(line) => self.command(&line).await,
                Input::TooLong => self.answer(Reply::new(500, "5.5.2", "Line too long (RFC 5321 §4.5.3.1.4)")),
                Input::Eof => {
                    debug!("client closed the connection");
                    return Outcome::Closed;
                }
                Input::Timeout => {
                    info!("idle timeout");
                    self.close_with(Reply::new(421, "4.4.2", format!("{} Idle timeout, closing connection", self.ctx.config.hostname)))
                }
                Input::Shutdown => self.close_with(Reply::new(
                    421,
                    "4.3.2",
                    format!("{} Service shutting down, try again later", self.ctx.config.hostname),
                )),
            };
            match next {
                Next::Continue => {}
                Next::Close => {
                    let _ = self.conn.flush().await;
                    return Outcome::Closed;
                }
                Next::StartTls => {
                    if let Err(e) = self.conn.flush().await {
                        debug!(error = %e, "connection error before TLS");
                        return Outcome::Closed;
                    }
                    self.conn.discard_buffered_input();
                    let mut st = self.st;
                    st.helo = None;
                    st.esmtp = false;
                    st.tx = None;
                    return Outcome::StartTls(self.conn.into_stream(), Box::new(st));
                }
            }
        }
    }

    /// Queue a reply, count errors, and close when there were too many.
    pub(crate) fn answer(&mut self, reply: Reply) -> Next {
        let failed = reply.code >= 500;
        self.conn.reply(&reply);
        if failed {
            self.st.errors += 1;
            if self.st.errors >= self.ctx.config.limits.max_errors {
                warn!(errors = self.st.errors, "too many errors, closing");
                return self.close_with(Reply::new(
                    421,
                    "4.7.0",
                    format!("{} Too many errors, closing connection", self.ctx.config.hostname),
                ));
            }
        }
        Next::Continue
    }

    fn close_with(&mut self, reply: Reply) -> Next {
        self.conn.reply(&reply);
        Next::Close
    }

    /// Parse one command line and run its handler.
    async fn command(&mut self, line: &[u8]) -> Next {
        let domain = self.ctx.config.local_domains.first().unwrap_or(&self.ctx.config.hostname);
        let qualified = super::rcpt::qualify_postmaster(line, domain);
        let line = qualified.as_deref().unwrap_or(line);
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(e) => {
                debug!(error = %e, "bad command");
                return self.answer(parse_error_reply(e));
            }
        };
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Mail { from } => {
                let reply = self.mail(from);
                self.answer(reply)
            }
            Request::Rcpt { to } => {
                let reply = self.rcpt(to);
                self.answer(reply)
            }
            Request::Data => self.data().await,
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, initial_response).await,
            Request::StartTls => self.starttls(),
            Request::Rset => {
                self.st.tx = None;
                self.answer(Reply::new(250, "2.0.0", "Ok"))
            }
            Request::Noop { .. } => self.answer(Reply::new(250, "2.0.0", "Ok")),
            Request::Quit => self.close_with(Reply::new(221, "2.0.0", format!("{} Bye", self.ctx.config.hostname))),
            Request::Vrfy { .. } => {
                let reply = self.vrfy();
                self.answer(reply)
            }
            Request::Help { .. } => self.answer(self.help()),
            Request::Expn { .. } => self.answer(Reply::new(502, "5.5.1", "EXPN not available")),
            Request::Lhlo { .. } | Request::Bdat { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.answer(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
    }
}

/// The one mapping from parser errors to replies (RFC 5321 §4.2.4, RFC 3463).
pub fn parse_error_reply(e: ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("Invalid {param} parameter")),
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", format!("Unsupported parameter {}", param.chars().take(40).collect::<String>()))
        }
        ParseError::ResponseTooLong => Reply::new(500, "5.5.2", "Line too long"),
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

/// Run one connection to its end: greeting, STARTTLS upgrade, or implicit TLS first for
/// `submissions`. Errors end the connection and are logged here, once.
pub async fn serve_connection<S>(stream: S, ctx: Arc<Ctx>, st: SessionState)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = info_span!("session", session_id = st.id, peer = %st.peer, listener = st.kind.name());
    async move {
        debug!("connected");
        if st.kind == Kind::Submissions {
            let Some(acceptor) = ctx.tls.clone() else {
                warn!("implicit TLS listener without TLS configuration");
                return;
            };
            match handshake(&acceptor, stream, &ctx).await {
                Ok(tls) => {
                    let mut st = st;
                    st.tls = Some(describe_tls(tls.get_ref().1));
                    let _ = Session::new(tls, ctx, st).run(true).await;
                }
                Err(e) => info!(error = %e, "TLS handshake failed"),
            }
            return;
        }
        match Session::new(stream, ctx.clone(), st).run(true).await {
            Outcome::Closed => {}
            Outcome::StartTls(stream, st) => {
                let mut st = *st;
                let Some(acceptor) = ctx.tls.clone() else { return };
                match handshake(&acceptor, stream, &ctx).await {
                    Ok(tls) => {
                        st.tls = Some(describe_tls(tls.get_ref().1));
                        debug!(tls = st.tls.as_deref(), "TLS established");
                        // The TLS session cannot ask for STARTTLS again, so this is final.
                        let _ = Session::new(tls, ctx, st).run(false).await;
                    }
                    Err(e) => info!(error = %e, "TLS handshake failed"),
                }
            }
        }
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// The TLS handshake, bounded by the idle timeout: a client that asks for TLS and then says
/// nothing must not hold a session slot.
async fn handshake<S>(acceptor: &tokio_rustls::TlsAcceptor, stream: S, ctx: &Ctx) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = ctx.config.limits.idle_timeout.0;
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}

fn describe_tls(conn: &rustls::ServerConnection) -> String {
    let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_else(|| "TLS".into());
    let cipher = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
    format!("{version} {cipher}").trim().to_owned()
}
