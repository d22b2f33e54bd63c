//! The thin tokio shell around [`Core`]: one UDP socket and one TCP listener on the same
//! address, one task owning the core (it reads the UDP socket, sleeps until the next timer,
//! and executes what the core asks to send), and a task pair per TCP connection.
//!
//! Invariants:
//! - the core is only touched by the protocol task, so it needs no lock;
//! - TCP connections are known by their remote address; a send to an address with an open
//!   connection reuses it (the flow a user agent registered over, or the connection a request
//!   came on, RFC 3261 §18.2.2), otherwise a new connection is made to the `connect` address;
//! - every task watches the shutdown token, so nothing outlives [`super::RegistrarHandle`];
//!   before it fires, shutdown drains: new calls and registrations get `503`, and the task
//!   ends once every forwarded request has had its answer (bounded by the handle);
//! - a connection closes after `idle` without a byte (the user agents ping every 30 s), on a
//!   framing error (the stream is out of sync), or when [`MAX_CONNECTIONS`] are open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::platform::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, debug, info_span, trace, warn};

use super::core::{ClientKey, Core, Now, Transmit};
use super::framing::{self, Frame};
use super::message::{Peer, Transport};

/// Open TCP connections at most; more are refused at accept.
const MAX_CONNECTIONS: usize = 1024;
/// Messages queued towards one connection before it counts as stuck and is closed.
const CONNECTION_QUEUE: usize = 64;
/// Bound on making an outbound TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the connection tasks tell the protocol task.
enum Event {
    Message { data: Vec<u8>, from: Peer },
    Connected { remote: SocketAddr, id: u64, writer: mpsc::Sender<Vec<u8>> },
    Closed { remote: SocketAddr, id: u64 },
    SendFailed { client: ClientKey },
}

/// Runs the registrar until `cancel` fires, or once `drain` has fired and the core has no
/// forwarded request left waiting for its answer.
pub(crate) async fn run(
    mut core: Core,
    udp: UdpSocket,
    tcp: TcpListener,
    idle: Duration,
    drain: CancellationToken,
    cancel: CancellationToken,
) {
    let (events_tx, mut events) = mpsc::channel::<Event>(1024);
    let ctx = Ctx { events: events_tx, cancel: cancel.clone(), idle, next_id: Arc::new(std::sync::atomic::AtomicU64::new(1)) };
    tokio::spawn(accept_loop(tcp, ctx.clone()));
    let mut connections: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        if core.draining && core.is_idle() {
            break;
        }
        let timer = core.next_timer();
        let out = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = drain.cancelled(), if !core.draining => {
                core.draining = true;
                continue;
            }
            received = udp.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    // Keep-alive datagrams (CRLF) and padding carry nothing (RFC 5626 §3.5.1).
                    if data.iter().all(u8::is_ascii_whitespace) { continue; }
                    core.on_message(data, Peer::new(Transport::Udp, from), Now::current())
                }
                Err(e) => {
                    // ICMP errors of earlier sends surface here on some systems; keep serving.
                    debug!(error = %e, "udp receive error");
                    continue;
                }
            },
            Some(event) = events.recv() => match event {
                Event::Message { data, from } => core.on_message(&data, from, Now::current()),
                Event::Connected { remote, id, writer } => { connections.insert(remote, (id, writer)); continue; }
                Event::Closed { remote, id } => {
                    if connections.get(&remote).is_some_and(|(known, _)| *known == id) { connections.remove(&remote); }
                    continue;
                }
                Event::SendFailed { client } => core.on_send_failed(&client, Now::current()),
            },
            _ = sleep_until(timer) => core.on_timer(Now::current()),
        };
        for transmit in out {
            send(&udp, &mut connections, &ctx, transmit).await;
        }
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What every connection task needs.
#[derive(Clone)]
struct Ctx {
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    idle: Duration,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

async fn send(udp: &UdpSocket, connections: &mut HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>, ctx: &Ctx, transmit: Transmit) {
    let Transmit { to, connect, data, client } = transmit;
    match to.transport {
        Transport::Udp => {
            if let Err(e) = udp.send_to(&data, to.addr).await {
                debug!(to = %to, error = %e, "udp send failed");
                if let Some(client) = client {
                    ctx.events.try_send(Event::SendFailed { client }).ok();
                }
            }
        }
        Transport::Tcp => {
            // The flow first; else a connection already made to the fallback address (a flow
            // that closed is replaced by one to the contact, reused for what follows).
            let writer = connections.get(&to.addr).or_else(|| connections.get(&connect)).map(|(_, writer)| writer.clone());
            let Some(writer) = writer else {
                tokio::spawn(dial(connect, data, client, ctx.clone()));
                return;
            };
            let data = match writer.try_send(data) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(to = %to, "connection not draining, closing it");
                    connections.retain(|_, (_, w)| !w.same_channel(&writer));
                    if let Some(client) = client {
                        ctx.events.try_send(Event::SendFailed { client }).ok();
                    }
                    return;
                }
                // The connection has just closed: dial, as when there is none.
                Err(mpsc::error::TrySendError::Closed(data)) => {
                    connections.retain(|_, (_, w)| !w.same_channel(&writer));
                    data
                }
            };
            tokio::spawn(dial(connect, data, client, ctx.clone()));
        }
    }
}

/// Connects to `addr`, sends `first` on the new connection and serves it.
async fn dial(addr: SocketAddr, first: Vec<u8>, client: Option<ClientKey>, ctx: Ctx) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return dial_failed(addr, &e.to_string(), client, &ctx).await,
        Err(_) => return dial_failed(addr, "timed out", client, &ctx).await,
    };
    let span = info_span!("sip_connection", peer = %addr, direction = "out");
    serve(stream, addr, Some(first), ctx).instrument(span).await;
}

async fn dial_failed(addr: SocketAddr, error: &str, client: Option<ClientKey>, ctx: &Ctx) {
    debug!(%addr, error, "tcp connect failed");
    if let Some(client) = client {
        ctx.events.send(Event::SendFailed { client }).await.ok();
    }
}

async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off a little instead of spinning.
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%remote, "too many SIP connections, refusing one");
            continue;
        };
        let span = info_span!("sip_connection", peer = %remote, direction = "in");
        let ctx = ctx.clone();
        tokio::spawn(
            async move {
                serve(stream, remote, None, ctx).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Serves one connection: frames in, writes out, until it closes, idles or shutdown.
async fn serve(stream: TcpStream, remote: SocketAddr, first: Option<Vec<u8>>, ctx: Ctx) {
    stream.set_nodelay(true).ok();
    let id = ctx.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CONNECTION_QUEUE);
    if let Some(first) = first {
        tx.try_send(first).ok();
    }
    if ctx.events.send(Event::Connected { remote, id, writer: tx.clone() }).await.is_err() {
        return;
    }
    debug!("connection open");
    let cancel = ctx.cancel.clone();
    let write_task = tokio::spawn(async move {
        loop {
            let data = tokio::select! {
                _ = cancel.cancelled() => break,
                data = rx.recv() => match data { Some(data) => data, None => break },
            };
            let written = tokio::select! {
                _ = cancel.cancelled() => break,
                written = writer.write_all(&data) => written,
            };
            if let Err(e) = written {
                debug!(error = %e, "tcp write failed");
                break;
            }
        }
        writer.shutdown().await.ok();
    });
    let cancel = ctx.cancel.clone();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => break,
            read = tokio::time::timeout(ctx.idle, reader.read(&mut chunk)) => read,
        };
        let n = match read {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(error = %e, "tcp read failed");
                break;
            }
            Err(_) => {
                debug!(idle_secs = ctx.idle.as_secs(), "idle connection closed");
                break;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut broken = false;
        loop {
            match framing::next_frame(&mut buf) {
                Ok(Some(Frame::Message(data))) => {
                    let event = Event::Message { data, from: Peer::new(Transport::Tcp, remote) };
                    if ctx.events.send(event).await.is_err() {
                        broken = true;
                        break;
                    }
                }
                // RFC 5626 §4.4.1: the pong is a single CRLF.
                Ok(Some(Frame::Ping)) => {
                    trace!("keep-alive ping answered");
                    tx.send(b"\r\n".to_vec()).await.ok();
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "stream out of sync, closing");
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            break;
        }
    }
    ctx.events.send(Event::Closed { remote, id }).await.ok();
    drop(tx);
    write_task.await.ok();
    debug!("connection closed");
}
