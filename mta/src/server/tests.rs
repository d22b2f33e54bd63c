//! In-process socket tests: a real [`Server`] on 127.0.0.1 port 0, driven over TCP.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;
use crate::config::Span;
use crate::testutil::{Running, eventually, start, start_in};

struct Tcp {
    io: BufReader<TcpStream>,
}

impl Tcp {
    async fn connect(addr: SocketAddr) -> Tcp {
        Tcp { io: BufReader::new(TcpStream::connect(addr).await.unwrap()) }
    }

    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line)).await.unwrap().unwrap();
            if n == 0 {
                return if all.is_empty() { "<eof>".into() } else { all };
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all.trim_end().to_owned();
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.io.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }
}

fn maildir_files(root: &Path, mailbox: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join("maildir").join(mailbox).join("new"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_message_over_tcp_lands_in_maildir_and_leaves_the_spool() {
    let s = start(|_| {}).await;
    let mut c = Tcp::connect(s.smtp).await;
    assert!(c.reply().await.starts_with("220 mx.test ESMTP"));
    assert!(c.cmd("EHLO client.test").await.contains("250 HELP"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await, "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
    assert!(c.cmd("DATA").await.starts_with("354"));
    assert!(c.cmd("Subject: over tcp\r\n\r\nhello\r\n.").await.starts_with("250 2.0.0 Ok: queued as"));
    let root = s.dir.path().to_path_buf();
    eventually("the Maildir file", || maildir_files(&root, "localhost/postmaster").len() == 1).await;
    let text = std::fs::read_to_string(&maildir_files(&root, "localhost/postmaster")[0]).unwrap();
    assert!(text.starts_with("Return-Path: <a@example.org>\nDelivered-To: postmaster@localhost\nReceived: from client.test"), "{text}");
    assert!(text.ends_with("Subject: over tcp\n\nhello\n"), "{text}");
    let store = s.store.clone();
    eventually("the spool to empty", || store.queue_len() == 0).await;
    s.stop().await;
}

#[tokio::test]
async fn local_recipients_are_delivered_and_an_unreachable_remote_is_deferred() {
    // Nothing listens on port 9 of 127.0.0.1: connections are refused at once.
    let s = start(|c| {
        c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.relay.transport.insert("remote.example".into(), "[127.0.0.1]:9".into());
    })
    .await;
    let mut c = Tcp::connect(s.smtp).await;
    c.reply().await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    assert_eq!(c.cmd("RCPT TO:<far@remote.example>").await, "250 2.1.5 Ok");
    c.cmd("DATA").await;
    c.cmd("Subject: mixed\r\n\r\nx\r\n.").await;
    let root = s.dir.path().to_path_buf();
    eventually("local delivery", || maildir_files(&root, "localhost/postmaster").len() == 1).await;
    let store = s.store.clone();
    let first = || store.queue().next().and_then(|e| e.ok());
    eventually("both results to be recorded", || {
        first().is_some_and(|e| e.recipients[0].state == sipmta_store::RcptState::Delivered && e.recipients[1].attempts == 1)
    })
    .await;
    let env = first().unwrap();
    let far = &env.recipients[1];
    assert_eq!(far.state, sipmta_store::RcptState::Deferred, "{far:?}");
    assert!(far.last_reply.as_deref().unwrap_or_default().contains("connect to 127.0.0.1[127.0.0.1] failed"), "{far:?}");
    assert!(far.next_attempt > sipmta_store::now(), "a retry is scheduled");
    let history = store.history(env.id).unwrap();
    assert!(history[0].text.starts_with("received from client.test (127.0.0.1:"), "{history:?}");
    assert!(history.iter().any(|e| e.text.starts_with("delivered to maildir ")), "{history:?}");
    assert!(history.iter().any(|e| e.text.starts_with("deferred: no connection")), "{history:?}");
    s.stop().await;
}

#[tokio::test]
async fn the_session_limit_refuses_extra_connections() {
    let s = start(|c| c.limits.max_sessions = 1).await;
    let mut first = Tcp::connect(s.smtp).await;
    assert!(first.reply().await.starts_with("220"));
    let mut second = Tcp::connect(s.smtp).await;
    assert_eq!(second.reply().await, "421 4.3.2 mx.test Too many connections, try again later");
    drop(first);
    s.stop().await;
}

#[tokio::test]
async fn the_per_client_limit_refuses_extra_connections() {
    let s = start(|c| c.limits.max_sessions_per_client = 1).await;
    let mut first = Tcp::connect(s.smtp).await;
    assert!(first.reply().await.starts_with("220"));
    let mut second = Tcp::connect(s.smtp).await;
    assert_eq!(second.reply().await, "421 4.7.0 mx.test Too many connections from your address");
    assert_eq!(first.cmd("QUIT").await, "221 2.0.0 mx.test Bye");
    assert_eq!(first.reply().await, "<eof>");
    // The slot is released when the session ends.
    let mut third = Tcp::connect(s.smtp).await;
    let mut greeting = third.reply().await;
    for _ in 0..50 {
        if greeting.starts_with("220") {
            break;
        }
        third = Tcp::connect(s.smtp).await;
        greeting = third.reply().await;
    }
    assert!(greeting.starts_with("220"), "{greeting}");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_open_transactions_and_refuses_newcomers() {
    let s = start(|_| {}).await;
    let mut busy = Tcp::connect(s.smtp).await;
    busy.reply().await;
    busy.cmd("EHLO client.test").await;
    assert_eq!(busy.cmd("MAIL FROM:<a@example.org>").await, "250 2.1.0 Ok");
    let mut idle = Tcp::connect(s.smtp).await;
    idle.reply().await;
    let Running { dir, smtp, store, mut stop, done, .. } = s;
    stop.take().unwrap().send(()).unwrap();
    assert_eq!(idle.reply().await, "421 4.3.2 mx.test Service shutting down, try again later");
    let mut late = Tcp::connect(smtp).await;
    assert_eq!(late.reply().await, "421 4.3.2 mx.test Service shutting down, try again later");
    assert_eq!(busy.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
    busy.cmd("DATA").await;
    assert!(busy.cmd("Subject: last\r\n\r\nx\r\n.").await.starts_with("250 2.0.0 Ok: queued as"));
    assert_eq!(busy.reply().await, "421 4.3.2 mx.test Service shutting down, try again later");
    tokio::time::timeout(Duration::from_secs(30), done).await.unwrap().unwrap().unwrap();
    drop(store);
    // Accepted during shutdown, delivered before exit or after the next start: never lost.
    let delivered = maildir_files(dir.path(), "localhost/postmaster").len();
    let (store, _) = Store::open(dir.path()).unwrap();
    assert_eq!(delivered + store.queue_len(), 1);
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let s = start(|c| c.limits.shutdown_grace = Span(Duration::from_millis(300))).await;
    let mut stuck = Tcp::connect(s.smtp).await;
    stuck.reply().await;
    stuck.cmd("EHLO client.test").await;
    stuck.cmd("MAIL FROM:<a@example.org>").await;
    // The client never finishes its transaction; shutdown must still end.
    s.stop().await;
    assert_eq!(stuck.reply().await, "<eof>");
}

#[tokio::test]
async fn a_message_spooled_before_a_crash_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Spool a message as a session would, but with no delivery worker running: the
        // state right after "250" and a kill -9.
        let (store, _) = Store::open(dir.path()).unwrap();
        let env = sipmta_store::Envelope {
            id: sipmta_store::QueueId(0),
            received: sipmta_store::now(),
            sender: "a@example.org".into(),
            env_id: None,
            ret: None,
            body: sipmta_store::Body::SevenBit,
            smtputf8: false,
            size: 0,
            origin: sipmta_store::Origin::default(),
            recipients: vec![sipmta_store::Recipient::new("bob@localhost", sipmta_rules::Route::Local)],
        };
        store.accept(env, b"Subject: before the crash\r\n\r\nx\r\n".to_vec()).await.unwrap();
    }
    let s = start_in(dir, |_| {}).await;
    let root = s.dir.path().to_path_buf();
    eventually("delivery after restart", || maildir_files(&root, "localhost/bob").len() == 1).await;
    s.stop().await;
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let s = start(|_| {}).await;
    let mut config = Config { data_dir: s.dir.path().to_path_buf(), ..Config::default() };
    config.smtp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.submission.listen = vec![];
    config.registrar.listen = "127.0.0.1:0".parse().unwrap();
    let err = format!("{:#}", Server::start(config).await.unwrap_err());
    assert!(err.contains("in use by another process"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn the_history_of_a_finished_message_is_forgotten_after_its_retention() {
    let s = start(|c| c.spool.history_retention = Span(Duration::from_secs(1))).await;
    let mut c = Tcp::connect(s.smtp).await;
    assert!(c.reply().await.starts_with("220"));
    assert!(c.cmd("EHLO client.test").await.contains("250 HELP"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await, "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let reply = c.cmd("Subject: short-lived\r\n\r\nhello\r\n.").await;
    let id: sipmta_store::QueueId = reply.rsplit(' ').next().unwrap().parse().unwrap();
    let store = s.store.clone();
    eventually("the delivery in the history", || store.history(id).unwrap().iter().any(|e| e.text.starts_with("delivered to maildir")))
        .await;
    // The sweep runs every second; the message's second and its last event must pass first.
    eventually("the history to be forgotten", || store.history(id).unwrap().is_empty()).await;
    assert_eq!(maildir_files(s.dir.path(), "localhost/postmaster").len(), 1, "only the record goes, not the mail");
    s.stop().await;
}
