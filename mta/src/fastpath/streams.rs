//! The one TCP listener for every fast-path stream, in both directions.
//!
//! Whoever expects a connection (the passive side of a call, DESIGN.md "Fast path") registers
//! the call's FP/1 token first and then sends its SDP, so RFC 4145's rule that the passive side
//! listens before its SDP is sent always holds. The listener reads each new connection's first
//! line (`FP/1 HELLO <token>`, at most 512 octets, within the preamble timeout), hands the
//! connection to the call waiting for that token with the line put back in front of it (the
//! FP/1 handshake then reads it as usual), and answers `FP/1 ERR 403 bad-token` to anything
//! else: a connection without a valid token never reaches SMTP (issue 8: "the FP/1 listener
//! refuses connections without the right token").

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use sipfast::fp1::{Line, Refusal, Token, parse_line};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tracing::{debug, info};

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// `prefix` is read first, then `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind { prefix, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let pos = self.pos;
            buf.put_slice(&self.prefix[pos..pos + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection handed to the call that expected it.
pub type Arrived = (Rewind<TcpStream>, SocketAddr);

type Waiting = Arc<Mutex<HashMap<[u8; 16], oneshot::Sender<Arrived>>>>;

/// The listener's registry of calls waiting for a connection.
#[derive(Debug, Clone)]
pub struct Streams {
    local: SocketAddr,
    waiting: Waiting,
}

/// A registered expectation; dropping it (the call ended or gave up) forgets the token.
#[derive(Debug)]
pub struct Expected {
    key: [u8; 16],
    waiting: Waiting,
    rx: Option<oneshot::Receiver<Arrived>>,
}

impl Expected {
    /// The connection for this token, or `None` when `limit` passes first.
    pub async fn arrive(mut self, limit: Duration) -> Option<Arrived> {
        let rx = self.rx.take()?;
        tokio::time::timeout(limit, rx).await.ok()?.ok()
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

impl Streams {
    /// Bind the listener.
    pub async fn bind(addr: SocketAddr) -> io::Result<(Streams, TcpListener)> {
        let listener = crate::server::bind_tcp(addr)?;
        let local = listener.local_addr()?;
        Ok((Streams { local, waiting: Arc::default() }, listener))
    }

    /// Where the listener is.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Expect a connection for `token` (register before the SDP that invites it is sent).
    pub fn expect(&self, token: &Token) -> Expected {
        let key = token_key(token);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(key, tx);
        Expected { key, waiting: self.waiting.clone(), rx: Some(rx) }
    }

    /// Accept connections until `stop`; each is matched to its call by its HELLO line.
    pub async fn run(self, listener: TcpListener, preamble: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        debug!(error = %e, "fast-path stream accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = crate::server::stopped(&mut stop) => return,
            };
            let _ = stream.set_nodelay(true);
            let waiting = self.waiting.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(preamble, first_line(stream)).await {
                    Ok(Ok((stream, line, Some(token)))) => {
                        let sender = waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&token_key(&token));
                        match sender {
                            Some(tx) => {
                                let _ = tx.send((Rewind::new(line, stream), peer));
                            }
                            None => refuse(stream, peer).await,
                        }
                    }
                    Ok(Ok((stream, _, None))) => refuse(stream, peer).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "fast-path stream closed before its HELLO"),
                    Err(_) => info!(%peer, "fast-path stream sent no HELLO in time; closed"),
                }
            });
        }
    }
}

fn token_key(token: &Token) -> [u8; 16] {
    *token.as_bytes()
}

/// Read up to and including the first LF (at most 512 octets); the token if it is a HELLO.
async fn first_line(mut stream: TcpStream) -> io::Result<(TcpStream, Vec<u8>, Option<Token>)> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < sipfast::fp1::MAX_LINE && !line.ends_with(b"\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    let token = match parse_line(&line) {
        Ok((Line::Hello(token), _)) => Some(token),
        _ => None,
    };
    Ok((stream, line, token))
}

async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    info!(%peer, "fast-path stream without a known token refused");
    if let Ok(line) = Refusal::BadToken.line().encode() {
        let _ = stream.write_all(&line).await;
    }
    let _ = stream.shutdown().await;
}
