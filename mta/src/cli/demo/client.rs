//! The demo's mail client: one SMTP transaction over plain TCP, each line printed as it goes,
//! and the time from the final `.` to the server's reply measured.
//!
//! It is deliberately small and talks raw SMTP so the newcomer sees exactly what a mail client
//! sees; replies are read whole (every `NNN-` continuation up to the `NNN ` line, RFC 5321
//! §4.2.1).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long any one reply may take. The server's own inline budget is 5 s by default.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What one transaction ended with.
#[derive(Debug)]
pub struct Sent {
    /// The reply to the final `.` (its last line).
    pub reply: String,
    /// Its code.
    pub code: u16,
    /// From writing the final `.` to having that reply.
    pub after_dot: Duration,
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Read one whole reply and return its last line, printed when `show` (the last line of a
    /// long EHLO answer is enough to follow along).
    async fn reply(&mut self, show: bool) -> Result<(u16, String)> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut line))
                .await
                .context("no reply from the server within 30 s")?
                .context("reading the server's reply")?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            let line = line.trim_end().to_owned();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).with_context(|| format!("not an SMTP reply: {line:?}"))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            if show && !more {
                println!("      S: {line}");
            }
            if !more {
                return Ok((code, line));
            }
        }
    }

    /// Send a command line and expect a reply in `want` (its first digit).
    async fn command(&mut self, line: &str, want: u16) -> Result<(u16, String)> {
        println!("      C: {line}");
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.context("sending a command")?;
        let (code, text) = self.reply(true).await?;
        if code / 100 != want / 100 {
            bail!("the server answered {line:?} with {text:?}");
        }
        Ok((code, text))
    }
}

/// One message from `from` to `to` through the server at `addr`, with `subject` and `body`.
pub async fn send(addr: SocketAddr, from: &str, to: &str, subject: &str, body: &str) -> Result<Sent> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let (r, w) = stream.into_split();
    let mut c = Client { reader: BufReader::new(r), writer: w };
    let (code, greeting) = c.reply(false).await?;
    if code != 220 {
        bail!("greeting: {greeting}");
    }
    c.command("EHLO client.demo", 250).await?;
    c.command(&format!("MAIL FROM:<{from}>"), 250).await?;
    c.command(&format!("RCPT TO:<{to}>"), 250).await?;
    c.command("DATA", 354).await?;
    let message = message(from, to, subject, body);
    println!("      C: ({} bytes: Subject: {subject})", message.len());
    c.writer.write_all(&crate::relay::outbound::stuff(message.as_bytes())).await.context("sending the message")?;
    println!("      C: .");
    let dot = Instant::now();
    let (code, reply) = c.reply(true).await?;
    let after_dot = dot.elapsed();
    // QUIT politely; the verdict is already in hand.
    let _ = c.writer.write_all(b"QUIT\r\n").await;
    let _ = tokio::time::timeout(Duration::from_secs(2), c.reply(false)).await;
    Ok(Sent { reply, code, after_dot })
}

fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    mail_builder::MessageBuilder::new().from(from).to(to).subject(subject).text_body(body).write_to_string().unwrap_or_default()
}
