//! The daemon's side of the admin API: bind and announce the listeners, publish the token,
//! serve one request per connection, and clean up at shutdown.
//!
//! Each connection gets [`REQUEST_TIMEOUT`] to send a whole request and as long again to take
//! the answer; at most [`MAX_CONNECTIONS`] are served at once (more get `503`). Store calls run
//! on the blocking pool: sled reads may touch the disk and password hashing is slow on purpose.
//! A user change is flushed before it is answered, so "added" on the CLI means durable.
//! A queue change (flush, hold, release, delete) is made by [`crate::queue_control`], durable
//! before it is answered, and then the queue manager is woken with each message changed so it
//! reschedules them at once.
//! A routing table change ([`tables`]) is checked and made by [`crate::tables`] and durable
//! before it is answered. Internal errors reach the client as a bland `500`; the detail goes to
//! the log.

mod explain;
mod learned;
mod pages;
mod tables;
mod users;

pub use learned::{LearnedRow, rows as learned_rows};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use sipmta_store::{QueueId, Store, StoreError, now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{Instrument, debug, error, info, warn};

use self::tables::Endpoint;
use super::http::{self, HttpError, Parsed, Request};
use super::{ApiError, Files, QueueEntry};
use crate::queue_control::{self, Action, Change, HistoryFilter};

/// Time a client has to send its whole request, and again to read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; the API is for one operator's CLI, not for load.
pub const MAX_CONNECTIONS: usize = 16;
/// How long shutdown waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(15);

/// The admin API with its listeners bound and its token published.
#[derive(Debug)]
pub struct AdminServer {
    listeners: Vec<TcpListener>,
    token: Token,
    files: Files,
}

/// The bearer token, kept only as an HMAC tag under a random key: ring's `hmac::verify` compares
/// in constant time (its `constant_time` module is deprecated), and comparing tags rather than
/// the tokens hides even where a wrong guess first differs, or how long it is.
struct Token {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh token: 32 random bytes as 64 hex digits, and its verifier.
    fn generate() -> Result<(String, Token)> {
        let rng = SystemRandom::new();
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let tag = hmac::sign(&key, text.as_bytes());
        Ok((text, Token { key, tag }))
    }

    fn verify(&self, presented: &str) -> bool {
        hmac::verify(&self.key, presented.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

impl AdminServer {
    /// Bind every address, announcing each ("admin listener on ADDR"), then write a fresh
    /// token and the bound addresses to the data directory. With no addresses the API is off:
    /// `None`, and files left by an earlier run are removed so the CLI does not try them.
    pub async fn bind(addrs: &[SocketAddr], data_dir: &Path) -> Result<Option<AdminServer>> {
        let files = Files::new(data_dir);
        if addrs.is_empty() {
            files.remove().context("removing a stale admin token")?;
            return Ok(None);
        }
        let mut listeners = Vec::new();
        for addr in addrs {
            let bound = crate::server::bind_tcp(*addr).with_context(|| format!("binding admin listener {addr}"))?;
            let local = bound.local_addr()?;
            info!(listener = "admin", addr = %local, "admin listener on {local}");
            listeners.push(bound);
        }
        let (text, token) = Token::generate()?;
        let bound: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        files.write(&text, &bound).with_context(|| format!("writing {}", files.token.display()))?;
        Ok(Some(AdminServer { listeners, token, files }))
    }

    /// The bound addresses (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serve until `stop` turns true, let requests in progress finish (within a bound), then
    /// remove the token and address files. `wake` is the queue manager's channel: queue changes
    /// send it the id of each message changed. `country_code` (config `routing.country_code`)
    /// completes the number plan that numbers given for the routing tables are checked with.
    pub async fn run(self, live: watch::Receiver<Arc<crate::smtp::Ctx>>) {
        let ctx = live.borrow().clone();
        let AdminServer { listeners, token, files } = self;
        let (store, wake, stop) = (ctx.store.clone(), ctx.accepted.clone(), ctx.shutdown.clone());
        let country_code = ctx.config.routing.country_code.clone();
        let shared = Arc::new(Shared { store, token, wake, country_code, ctx: live });
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let refusals = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut loops = tokio::task::JoinSet::new();
        for listener in listeners {
            loops.spawn(accept_loop(listener, shared.clone(), slots.clone(), refusals.clone(), stop.clone()));
        }
        while loops.join_next().await.is_some() {}
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        if tokio::time::timeout(DRAIN, slots.acquire_many(all)).await.is_err() {
            warn!("admin requests still running at shutdown were abandoned");
        }
        match files.remove() {
            Ok(()) => debug!("admin token removed"),
            Err(e) => warn!(error = %e, "cannot remove the admin token files"),
        }
    }
}

/// What every admin connection shares.
struct Shared {
    store: Store,
    token: Token,
    wake: mpsc::UnboundedSender<QueueId>,
    country_code: String,
    /// The daemon's context: its config and live routing tables (for `route explain`),
    /// replaced when the configuration is reloaded.
    ctx: watch::Receiver<Arc<crate::smtp::Ctx>>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(listener = "admin", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = crate::server::stopped(&mut stop) => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!(%peer, "admin connection limit reached, refusing connection");
            // Refusals get their own few slots; past those the connection is just dropped, so
            // a flood costs neither tasks nor the accept loop's time.
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let _refusal = refusal;
                    let bytes = answer(503, &[], &error_body("too many admin connections, try again"));
                    finish(stream, &bytes).await;
                });
            }
            continue;
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(
            async move {
                let _permit = permit;
                serve(stream, peer, &shared, stop).await;
            }
            .instrument(tracing::debug_span!("admin", %peer)),
        );
    }
}

/// One connection: read a request, answer it, close. A request still being read when
/// shutdown starts is answered `503` at once, so an idle client cannot hold up the shutdown;
/// one being handled is finished.
async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: &Shared, mut stop: watch::Receiver<bool>) {
    let read = tokio::select! {
        r = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream, &shared.token)) => r,
        () = crate::server::stopped(&mut stop) => {
            // No lingering here: shutdown should not wait on a client that sent nothing.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer(503, &[], &error_body("the daemon is shutting down")))).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let reply = match read {
        Err(_) => Some(Reply::error(408, "request not received within 10 s")),
        Ok(Ok(Some(request))) => Some(handle(request, peer, shared).await),
        Ok(Ok(None)) => None,
        Ok(Err(Read::Http(e))) => {
            debug!(error = %e, "bad admin request");
            Some(Reply::error(e.status(), e.to_string()))
        }
        Ok(Err(Read::Io(e))) => {
            debug!(error = %e, "admin connection failed");
            None
        }
    };
    let bytes = reply.map(|r| answer(r.status, &r.headers, &r.body)).unwrap_or_default();
    finish(stream, &bytes).await;
}

/// Write the answer (if any) and close.
async fn finish(mut stream: TcpStream, bytes: &[u8]) {
    if !bytes.is_empty() && tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(bytes)).await.is_err() {
        debug!("admin client did not take its answer in time");
        return;
    }
    let _ = stream.shutdown().await;
    // Lingering close: if the client is still sending (a body we refused), closing with unread
    // data would reset the connection and could destroy the answer before it is read.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut sink = [0u8; 8192];
        let mut total = 0usize;
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            total += n;
            if total > 1 << 20 {
                break;
            }
        }
    })
    .await;
}

/// Why reading a request stopped.
enum Read {
    Http(HttpError),
    Io(std::io::Error),
}

/// Read until a whole request is buffered. `Ok(None)` if the client closed first. The parser
/// refuses a head or body beyond its limits ([`body_limit`]), so the buffer stays bounded.
async fn read_request(stream: &mut TcpStream, token: &Token) -> Result<Option<Request>, Read> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let limit = |request: &Request| body_limit(request, token);
    loop {
        match http::parse_request_with(&buf, &limit).map_err(Read::Http)? {
            Parsed::Complete(request, _) => return Ok(Some(request)),
            Parsed::Incomplete => {}
        }
        let n = stream.read(&mut chunk).await.map_err(Read::Io)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The largest body a request may have: [`tables::MAX_IMPORT`] for a table import that carries
/// the right token, [`http::MAX_BODY`] for everything else. The token is checked here, before
/// the body is read, so only the operator can make the daemon buffer that much.
fn body_limit(request: &Request, token: &Token) -> usize {
    let large = tables::is_import(request) || explain::is_explain(request);
    if large && presented_token(request).is_some_and(|t| token.verify(t)) { tables::MAX_IMPORT } else { http::MAX_BODY }
}

/// The bearer token a request presents. The scheme is case-insensitive (RFC 9110 §11.1).
fn presented_token(request: &Request) -> Option<&str> {
    let (scheme, token) = request.header("authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An answer before it is written.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply { status, headers: Vec::new(), body },
            Err(e) => {
                error!(error = %e, "cannot encode an admin answer");
                Reply::error(500, INTERNAL)
            }
        }
    }

    fn empty(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: Vec::new() }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply { status, headers: Vec::new(), body: error_body(message) }
    }

    fn with(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }
}

const INTERNAL: &str = "internal error; see the daemon's log";

fn error_body(message: impl Into<String>) -> Vec<u8> {
    serde_json::to_vec(&ApiError { error: message.into() }).unwrap_or_default()
}

fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    http::write_response(status, headers, body)
}

/// The routes, after the path is split and its names decoded.
enum Route {
    Users,
    User(String),
    Password(String),
    Queue,
    FlushAll,
    Message(String),
    Control(String, Action),
    History,
    Protocols,
    Protocol(String),
    Table(Endpoint),
}

impl Route {
    /// The methods a route answers (for `405` and its `Allow` header, RFC 9110 §15.5.6).
    fn allow(&self) -> &'static str {
        match self {
            Route::Users => "GET, POST",
            Route::User(_) => "DELETE",
            Route::Password(_) => "PUT",
            Route::Queue | Route::History | Route::Protocols => "GET",
            Route::Protocol(_) => "DELETE",
            Route::Message(_) => "GET, DELETE",
            Route::FlushAll | Route::Control(..) => "POST",
            Route::Table(endpoint) => endpoint.allow(),
        }
    }
}

fn route(path: &str) -> Result<Route, Reply> {
    let not_found = || Reply::error(404, format!("no such endpoint: {path}"));
    let decode = |s: &str| http::percent_decode(s).ok_or_else(|| Reply::error(400, "malformed percent-encoding in the path"));
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    match segments.as_slice() {
        ["users"] => Ok(Route::Users),
        ["users", name] => Ok(Route::User(decode(name)?)),
        ["users", name, "password"] => Ok(Route::Password(decode(name)?)),
        ["queue"] => Ok(Route::Queue),
        // Not ambiguous: "flush" is not hexadecimal, so never a queue id.
        ["queue", "flush"] => Ok(Route::FlushAll),
        ["queue", id] => Ok(Route::Message(decode(id)?)),
        ["queue", id, "flush"] => Ok(Route::Control(decode(id)?, Action::Flush)),
        ["queue", id, "hold"] => Ok(Route::Control(decode(id)?, Action::Hold)),
        ["queue", id, "release"] => Ok(Route::Control(decode(id)?, Action::Release)),
        ["history"] => Ok(Route::History),
        ["protocols"] => Ok(Route::Protocols),
        ["protocols", number] => Ok(Route::Protocol(decode(number)?)),
        other => match Endpoint::parse(other, decode) {
            Some(endpoint) => endpoint.map(Route::Table),
            None => Err(not_found()),
        },
    }
}

/// Check the token, route, act. Never panics: every failure is a [`Reply`].
async fn handle(request: Request, peer: SocketAddr, shared: &Shared) -> Reply {
    let ctx = shared.ctx.borrow().clone();
    let page = pages::is_page(&request);
    if page && ctx.config.admin.open_pages {
        return pages::handle(&request, &ctx).await;
    }
    let presented = presented_token(&request);
    if !presented.is_some_and(|t| shared.token.verify(t)) {
        warn!(%peer, method = %request.method, path = %request.path, token = if presented.is_some() { "wrong" } else { "missing" }, "admin request refused: bad token");
        return Reply::error(401, "missing or wrong admin token").with("WWW-Authenticate", "Bearer");
    }
    if page {
        return pages::handle(&request, &ctx).await;
    }
    if learned::is_learned(&request) {
        return learned::handle(&request, &ctx).await;
    }
    let route = match route(&request.path) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let store = shared.store.clone();
    let wake = &shared.wake;
    if explain::is_explain(&request) {
        return explain::handle(&request, &ctx).await;
    }
    if let Route::Table(endpoint) = &route
        && let Some(reply) = tables::handle(&request, endpoint, store.clone(), &shared.country_code).await
    {
        return reply;
    }
    let reply = match (request.method.as_str(), &route) {
        ("GET", Route::Users) => users::list(store).await,
        ("POST", Route::Users) => users::add(store, &request.body).await,
        ("PUT", Route::Password(name)) => users::set_password(store, name.clone(), &request.body).await,
        ("DELETE", Route::User(name)) => users::remove(store, name.clone()).await,
        ("GET", Route::Queue) => list_queue(store).await,
        ("GET", Route::Message(id)) => show_message(store, id).await,
        ("DELETE", Route::Message(id)) => control(store, wake, Some(id), Action::Delete).await,
        ("POST", Route::Control(id, action)) => control(store, wake, Some(id), *action).await,
        ("POST", Route::FlushAll) => control(store, wake, None, Action::Flush).await,
        ("GET", Route::History) => history(store, &request.query).await,
        ("GET", Route::Protocols) => blocking(move || store.protocols()).await.map(|list| Reply::json(200, &protocol_list(list))),
        ("DELETE", Route::Protocol(number)) => {
            let number = number.clone();
            let key = number.clone();
            match blocking(move || store.remove_protocol(&key)).await {
                Ok(true) => {
                    info!(number = %number, "protocol table entry removed");
                    Ok(Reply::empty(204))
                }
                Ok(false) => Err(Reply::error(404, format!("no protocol table entry for {number}"))),
                Err(reply) => Err(reply),
            }
        }
        (method, route) => {
            return Reply::error(405, format!("{method} is not allowed here; use {}", route.allow())).with("Allow", route.allow());
        }
    };
    reply.unwrap_or_else(|e| e)
}

/// Run a store call on the blocking pool, mapping its errors to answers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, Reply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(e)),
        Err(e) => {
            error!(error = %e, "admin store task failed");
            Err(Reply::error(500, INTERNAL))
        }
    }
}

/// Operator mistakes are answered with the store's own words, so the CLI prints the same
/// message whether it went through the API or opened the store itself.
fn store_error(e: StoreError) -> Reply {
    match e {
        StoreError::UserExists(_) => Reply::error(409, e.to_string()),
        StoreError::NoSuchUser(_) | StoreError::NoSuchMessage(_) | StoreError::NoSuchEntry { .. } => Reply::error(404, e.to_string()),
        StoreError::InvalidUser(..) | StoreError::InvalidEntry { .. } => Reply::error(400, e.to_string()),
        other => {
            error!(error = %other, "admin request failed");
            Reply::error(500, INTERNAL)
        }
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::error(400, format!("malformed JSON body: {e}")))
}

async fn list_queue(store: Store) -> Result<Reply, Reply> {
    let queue = blocking(move || store.queue().collect::<Result<Vec<_>, _>>()).await?;
    Ok(Reply::json(200, &queue))
}

fn queue_id(id: &str) -> Result<QueueId, Reply> {
    id.parse().map_err(|_| Reply::error(400, format!("{id:?} is not a queue id")))
}

async fn show_message(store: Store, id: &str) -> Result<Reply, Reply> {
    let qid = queue_id(id)?;
    let entry = blocking(move || Ok(QueueEntry { envelope: store.envelope(qid)?, history: store.history(qid)? })).await?;
    if entry.envelope.is_none() && entry.history.is_empty() {
        return Err(Reply::error(404, format!("no such message: {id}")));
    }
    Ok(Reply::json(200, &entry))
}

/// A queue change for one message (`id`) or, for a flush, the whole queue (`None`); then wake the
/// manager for each message changed so it acts on the new state at once.
async fn control(store: Store, wake: &mpsc::UnboundedSender<QueueId>, id: Option<&str>, action: Action) -> Result<Reply, Reply> {
    let id = id.map(queue_id).transpose()?;
    // On a task of its own: the change is durable once made, so it must be finished and
    // answered even if this connection's task is dropped half-way.
    let task = tokio::spawn(async move {
        match (action, id) {
            (Action::Flush, id) => queue_control::flush(&store, id).await,
            (Action::Hold, Some(id)) => queue_control::hold(&store, id).await,
            (Action::Release, Some(id)) => queue_control::release(&store, id).await,
            (Action::Delete, Some(id)) => queue_control::delete(&store, id).await,
            // Only flush has a whole-queue route.
            (Action::Hold | Action::Release | Action::Delete, None) => Err(StoreError::NoSuchMessage("(none given)".into())),
        }
    });
    let change: Change = match task.await {
        Ok(result) => result.map_err(store_error)?,
        Err(e) => {
            error!(error = %e, "admin queue task failed");
            return Err(Reply::error(500, INTERNAL));
        }
    };
    for m in &change.messages {
        // The manager is gone only during shutdown, when it rebuilds from the store next start.
        let _ = wake.send(m.id);
    }
    Ok(Reply::json(200, &change))
}

/// `GET /history?rcpt=ADDR&since=T`, `T` as `queue_control::parse_since` takes it.
/// `GET /protocols` answers a list of `{number, ...entry}`.
fn protocol_list(list: Vec<(String, sipmta_store::ProtocolEntry)>) -> Vec<ProtocolRow> {
    list.into_iter().map(|(number, entry)| ProtocolRow { number, entry }).collect()
}

/// One row of the protocol table as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProtocolRow {
    /// The number in E.164.
    pub number: String,
    /// What we know about it.
    #[serde(flatten)]
    pub entry: sipmta_store::ProtocolEntry,
}

async fn history(store: Store, query: &str) -> Result<Reply, Reply> {
    let pairs = http::query_pairs(query).ok_or_else(|| Reply::error(400, "malformed percent-encoding in the query"))?;
    let mut filter = HistoryFilter::default();
    for (name, value) in pairs {
        match name.as_str() {
            "rcpt" => filter.rcpt = Some(value),
            "since" => filter.since = Some(queue_control::parse_since(&value, now()).map_err(|e| Reply::error(400, e))?),
            other => return Err(Reply::error(400, format!("unknown query parameter {other:?}; use rcpt and since"))),
        }
    }
    let entries = blocking(move || queue_control::history(&store, &filter)).await?;
    Ok(Reply::json(200, &entries))
}
