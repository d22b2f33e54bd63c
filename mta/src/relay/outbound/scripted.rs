//! A scripted SMTP server for outbound tests: answers each command (and the end of DATA) with
//! the next reply of its script and records what the client sent.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::BoxIo;

pub struct Scripted {
    client: Option<DuplexStream>,
    task: tokio::task::JoinHandle<Vec<String>>,
    hang_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Scripted {
    /// The first reply is the greeting; then one reply per command, and one at the end of
    /// DATA. `\r\n` inside a reply separates lines of a multi-line reply.
    pub fn start(replies: &[&str]) -> Scripted {
        let (client, server) = tokio::io::duplex(1 << 16);
        let replies: Vec<String> = replies.iter().map(|r| format!("{r}\r\n")).collect();
        let hang_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hang = hang_up.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut io = BufReader::new(server);
            let mut replies = replies.into_iter();
            let mut in_data = false;
            if let Some(greeting) = replies.next() {
                let _ = io.get_mut().write_all(greeting.as_bytes()).await;
            }
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return seen;
                }
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                let answer = if in_data {
                    if hang.load(std::sync::atomic::Ordering::SeqCst) {
                        return seen;
                    }
                    let end = line == ".";
                    seen.push(line);
                    if !end {
                        continue;
                    }
                    in_data = false;
                    replies.next()
                } else {
                    let is_data = line.eq_ignore_ascii_case("DATA");
                    seen.push(line);
                    let r = replies.next();
                    in_data = is_data && r.as_deref().is_some_and(|r| r.starts_with("354"));
                    r
                };
                match answer {
                    Some(r) => {
                        let _ = io.get_mut().write_all(r.as_bytes()).await;
                    }
                    None => return seen,
                }
            }
        });
        Scripted { client: Some(client), task, hang_up }
    }

    /// The client end (once).
    pub fn io(&mut self) -> BoxIo {
        Box::new(self.client.take().expect("io() once"))
    }

    /// Close the connection as soon as message data arrives.
    pub fn hang_up_after_data(&self) {
        self.hang_up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every line the client sent, once the client has hung up (drop the connection first).
    pub async fn finish(self) -> Vec<String> {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await.expect("the client did not hang up").unwrap_or_default()
    }
}
