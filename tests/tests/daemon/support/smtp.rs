//! A raw SMTP client for what swaks cannot send (SMTPUTF8 parameters, exact byte sequences,
//! killing the daemon the instant a reply arrives).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking line-oriented SMTP client.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    /// Connect and read the greeting.
    pub fn connect(addr: SocketAddr) -> (Raw, String) {
        Raw::try_connect(addr, Duration::from_secs(10)).unwrap()
    }

    /// [`Raw::connect`] with a read timeout, reporting a refused connection (a daemon being
    /// restarted).
    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<(Raw, String)> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut raw = Raw { reader: BufReader::new(stream), writer };
        let greeting = raw.reply();
        Ok((raw, greeting))
    }

    /// One complete reply (multi-line joined with `\n`), or `<eof>`.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                lines.push("<eof>".to_owned());
                return lines.join("\n");
            }
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Send raw bytes and read the reply; `None` when the connection broke (a killed daemon).
    pub fn try_cmd(&mut self, bytes: &[u8]) -> Option<String> {
        self.writer.write_all(bytes).ok()?;
        Some(self.reply()).filter(|r| !r.ends_with("<eof>"))
    }

    /// Send a command line and read its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}
