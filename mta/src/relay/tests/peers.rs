//! Real peers for relay tests: Postfix's smtp-sink as the remote server, a minimal SMTP
//! responder without DSN that counts connections, and a client to submit with.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// smtp-sink on 127.0.0.1, dumping each message it accepts to a file.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Start with extra smtp-sink options (`-f rcpt` answers RCPT with 500 5.3.0, `-r rcpt` with
    /// 450 4.3.0; either also turns PIPELINING off) on a free
    /// port, or on `port` when given (to replace a sink on the same address).
    /// Start accepting everything on a given address (e.g. 127.0.0.2, another loopback address).
    pub async fn start_on(addr: SocketAddr) -> Sink {
        Sink::spawn(&[], addr).await
    }

    pub async fn start(options: &[&str], port: Option<u16>) -> Sink {
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
        };
        Sink::spawn(options, ([127, 0, 0, 1], port).into()).await
    }

    async fn spawn(options: &[&str], addr: SocketAddr) -> Sink {
        assert!(std::path::Path::new("/usr/sbin/smtp-sink").exists(), "smtp-sink is missing: run ./tests/run.sh (it installs postfix)");
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops to `nobody` before writing its dumps.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let template = format!("{}/msg.", dir.path().display());
        let mut child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "nobody", "-d", &template])
            .args(options)
            .arg(addr.to_string())
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..250 {
            if TcpStream::connect(addr).await.is_ok() {
                return Sink { child, addr, dir };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("smtp-sink did not start on {addr}");
    }

    /// The messages it accepted (smtp-sink's dump format: its own headers, then ours).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path()).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).filter(|m| m.contains("\n.") || !m.is_empty()).collect()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal SMTP server without the DSN extension that accepts everything and counts
/// connections and messages.
pub struct Plain {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub messages: Arc<AtomicUsize>,
}

impl Plain {
    pub async fn start() -> Plain {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, messages) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, m) = (connections.clone(), messages.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let m = m.clone();
                tokio::spawn(async move {
                    let mut io = BufReader::new(stream);
                    let _ = io.get_mut().write_all(b"220 plain.test ESMTP\r\n").await;
                    let mut in_data = false;
                    loop {
                        let mut line = String::new();
                        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_ascii_uppercase();
                        let reply: &[u8] = if in_data {
                            if cmd != "." {
                                continue;
                            }
                            in_data = false;
                            m.fetch_add(1, Ordering::SeqCst);
                            b"250 2.0.0 stored\r\n"
                        } else if cmd.starts_with("EHLO") {
                            b"250-plain.test\r\n250 PIPELINING\r\n"
                        } else if cmd == "DATA" {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if cmd == "QUIT" {
                            let _ = io.get_mut().write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 2.0.0 ok\r\n"
                        };
                        let _ = io.get_mut().write_all(reply).await;
                    }
                });
            }
        });
        Plain { addr, connections, messages }
    }
}

/// Submit one message over SMTP and return the final reply.
pub async fn submit(server: SocketAddr, from: &str, rcpts: &[&str], extra_rcpt_params: &str, body: &str) -> String {
    let mut io = BufReader::new(TcpStream::connect(server).await.unwrap());
    let mut replies = Vec::new();
    async fn reply(io: &mut BufReader<TcpStream>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all.trim_end().to_owned();
            }
        }
    }
    replies.push(reply(&mut io).await);
    let mut send = vec!["EHLO client.test".to_owned(), format!("MAIL FROM:<{from}> ENVID=track-me")];
    send.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}> {extra_rcpt_params}").trim_end().to_owned()));
    send.push("DATA".into());
    for cmd in send {
        io.get_mut().write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        let r = reply(&mut io).await;
        assert!(r.starts_with('2') || r.starts_with('3'), "{cmd}: {r}");
    }
    io.get_mut().write_all(format!("{body}.\r\n").as_bytes()).await.unwrap();
    let last = reply(&mut io).await;
    let _ = io.get_mut().write_all(b"QUIT\r\n").await;
    last
}
