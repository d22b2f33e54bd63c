//! The byte layer under an SMTP session: buffered reads of command lines and DATA, queued
//! replies, timeouts and the shutdown signal. Generic over the stream so sessions run over TCP,
//! TLS or an in-memory duplex alike.
//!
//! Replies are queued and written when the session needs more input, so a pipelined batch
//! (RFC 2920 §3.1) gets its replies in one write and a lone command gets its reply at once.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::data::DataDecoder;
use super::reply::Reply;

/// What reading a command line produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A complete line, terminator included.
    Line(Vec<u8>),
    /// A line longer than the limit; it was discarded up to its end.
    TooLong,
    /// The client closed the connection.
    Eof,
    /// Nothing arrived within the idle timeout.
    Timeout,
    /// The server is shutting down and the session was idle.
    Shutdown,
}

/// What reading DATA produced.
#[derive(Debug, PartialEq, Eq)]
pub enum DataInput {
    /// The decoder found the end of data.
    Done,
    /// The client closed the connection mid-message.
    Eof,
    /// Nothing arrived within the idle timeout.
    Timeout,
}

/// A buffered SMTP connection.
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    idle: Duration,
}

const READ_CHUNK: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wrap a stream; every wait for input is bounded by `idle`.
    pub fn new(stream: S, idle: Duration) -> Conn<S> {
        Conn { stream, rbuf: Vec::with_capacity(READ_CHUNK), rpos: 0, wbuf: Vec::with_capacity(512), discarding: false, idle }
    }

    /// Queue a reply; it is written before the next wait for input or on [`Conn::flush`].
    pub fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.wbuf);
    }

    /// Write queued replies.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.stream.flush().await
    }

    /// Whether the client has sent bytes we have not consumed yet.
    pub fn has_buffered_input(&self) -> bool {
        self.rpos < self.rbuf.len()
    }

    /// Drop unconsumed input. After `220` to STARTTLS anything the client sent in plaintext
    /// must not be read as if it came over TLS (RFC 3207 §4.2, CVE-2011-0411).
    pub fn discard_buffered_input(&mut self) {
        self.rbuf.clear();
        self.rpos = 0;
    }

    /// Give the stream back (for the TLS handshake after STARTTLS).
    pub fn into_stream(self) -> S {
        self.stream
    }

    /// Read one command line of at most `max` octets. While `shutdown` is given, a shutdown
    /// signal ends the wait with [`Input::Shutdown`] (only idle sessions are interrupted).
    ///
    /// The whole line must arrive within the idle timeout, not just each piece of it: a client
    /// sending a byte now and then (slowloris) is closed like an idle one.
    pub async fn read_line(&mut self, max: usize, shutdown: Option<&mut watch::Receiver<bool>>) -> io::Result<Input> {
        let mut shutdown = shutdown;
        let deadline = tokio::time::Instant::now() + self.idle;
        loop {
            let avail = &self.rbuf[self.rpos..];
            match memchr::memchr(b'\n', avail) {
                Some(pos) if self.discarding => {
                    self.rpos += pos + 1;
                    self.discarding = false;
                    return Ok(Input::TooLong);
                }
                Some(pos) if pos + 1 > max => {
                    self.rpos += pos + 1;
                    return Ok(Input::TooLong);
                }
                Some(pos) => {
                    let line = avail[..=pos].to_vec();
                    self.rpos += pos + 1;
                    return Ok(Input::Line(line));
                }
                None if self.discarding || avail.len() >= max => {
                    // Keep memory bounded: drop what we have and look for the line's end.
                    self.discarding = true;
                    self.rpos = self.rbuf.len();
                }
                None => {}
            }
            match self.fill(shutdown.as_deref_mut(), Some(deadline)).await? {
                Fill::Data => {}
                Fill::Eof => return Ok(Input::Eof),
                Fill::Timeout => return Ok(Input::Timeout),
                Fill::Shutdown => return Ok(Input::Shutdown),
            }
        }
    }

    /// Read a line for an AUTH exchange (RFC 4954 §4): like a command line, never interrupted.
    pub async fn read_auth_line(&mut self, max: usize) -> io::Result<Input> {
        self.read_line(max, None).await
    }

    /// Feed DATA into `decoder` until it finds the end of data.
    pub async fn read_data(&mut self, decoder: &mut DataDecoder) -> io::Result<DataInput> {
        loop {
            if self.has_buffered_input() {
                let avail = &self.rbuf[self.rpos..];
                match decoder.feed(avail) {
                    Some(n) => {
                        self.rpos += n;
                        return Ok(DataInput::Done);
                    }
                    None => self.rpos = self.rbuf.len(),
                }
            }
            match self.fill(None, None).await? {
                Fill::Data => {}
                Fill::Eof => return Ok(DataInput::Eof),
                Fill::Timeout | Fill::Shutdown => return Ok(DataInput::Timeout),
            }
        }
    }

    /// Flush replies, then wait for more input: up to the idle timeout, and not past `deadline`.
    async fn fill(&mut self, shutdown: Option<&mut watch::Receiver<bool>>, deadline: Option<tokio::time::Instant>) -> io::Result<Fill> {
        self.flush().await?;
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > READ_CHUNK {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(READ_CHUNK);
        let wait = deadline.map_or(self.idle, |d| d.saturating_duration_since(tokio::time::Instant::now()).min(self.idle));
        let read = tokio::time::timeout(wait, self.stream.read_buf(&mut self.rbuf));
        let result = match shutdown {
            Some(rx) => {
                tokio::select! {
                    r = read => r,
                    // read_buf is cancel-safe: if shutdown wins, no input was consumed.
                    () = crate::server::stopped(rx) => return Ok(Fill::Shutdown),
                }
            }
            None => read.await,
        };
        match result {
            Err(_) => Ok(Fill::Timeout),
            Ok(Ok(0)) => Ok(Fill::Eof),
            Ok(Ok(_)) => Ok(Fill::Data),
            Ok(Err(e)) => Err(e),
        }
    }
}

enum Fill {
    Data,
    Eof,
    Timeout,
    Shutdown,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn lines_are_split_and_overlong_ones_dropped() {
        let (mut client, server) = duplex(1 << 16);
        let mut conn = Conn::new(server, Duration::from_secs(5));
        let mut long = vec![b'A'; 100];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        client.write_all(b"EHLO x\r\n").await.unwrap();
        client.write_all(&long).await.unwrap();
        assert_eq!(conn.read_line(64, None).await.unwrap(), Input::Line(b"EHLO x\r\n".to_vec()));
        assert_eq!(conn.read_line(64, None).await.unwrap(), Input::TooLong);
        assert_eq!(conn.read_line(64, None).await.unwrap(), Input::Line(b"NOOP\r\n".to_vec()));
        drop(client);
        assert_eq!(conn.read_line(64, None).await.unwrap(), Input::Eof);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_buffer_is_discarded_in_pieces() {
        let (mut client, server) = duplex(1 << 20);
        let mut conn = Conn::new(server, Duration::from_secs(5));
        let writer = tokio::spawn(async move {
            client.write_all(&vec![b'x'; 200_000]).await.unwrap();
            client.write_all(b"\r\nQUIT\r\n").await.unwrap();
            client
        });
        assert_eq!(conn.read_line(512, None).await.unwrap(), Input::TooLong);
        assert_eq!(conn.read_line(512, None).await.unwrap(), Input::Line(b"QUIT\r\n".to_vec()));
        assert!(conn.rbuf.capacity() < 200_000, "memory stays bounded");
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout() {
        let (_client, server) = duplex(64);
        let mut conn = Conn::new(server, Duration::from_secs(300));
        assert_eq!(conn.read_line(512, None).await.unwrap(), Input::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_dribbled_a_byte_at_a_time_times_out_as_a_whole() {
        let (mut client, server) = duplex(64);
        let mut conn = Conn::new(server, Duration::from_secs(300));
        let dribble = tokio::spawn(async move {
            // One byte every 200 s: each gap is under the idle timeout, the line never is.
            for b in b"NOOP NOOP NOOP" {
                client.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_secs(200)).await;
            }
            client
        });
        let start = tokio::time::Instant::now();
        assert_eq!(conn.read_line(512, None).await.unwrap(), Input::Timeout);
        assert_eq!(start.elapsed(), Duration::from_secs(300));
        dribble.abort();
    }

    #[tokio::test]
    async fn shutdown_interrupts_only_when_asked() {
        let (_client, server) = duplex(64);
        let mut conn = Conn::new(server, Duration::from_secs(300));
        let (tx, mut rx) = watch::channel(false);
        tx.send(true).unwrap();
        assert_eq!(conn.read_line(512, Some(&mut rx)).await.unwrap(), Input::Shutdown);
    }

    #[tokio::test]
    async fn replies_are_flushed_before_waiting() {
        let (mut client, server) = duplex(1024);
        let mut conn = Conn::new(server, Duration::from_secs(5));
        conn.reply(&Reply::new(250, "2.0.0", "Ok"));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let n = client.read(&mut buf).await.unwrap();
            client.write_all(b"QUIT\r\n").await.unwrap();
            (String::from_utf8_lossy(&buf[..n]).into_owned(), client)
        });
        assert_eq!(conn.read_line(512, None).await.unwrap(), Input::Line(b"QUIT\r\n".to_vec()));
        assert_eq!(reader.await.unwrap().0, "250 2.0.0 Ok\r\n");
    }
}
