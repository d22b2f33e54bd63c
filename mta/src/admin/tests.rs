//! In-process tests of the admin API: a real [`Server`] on 127.0.0.1 port 0, driven through
//! [`Client`] (run on the blocking pool, since it is synchronous) and over raw TCP for the
//! malformed inputs a client would never send. The CLI's tests start daemons with [`start`].

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use sipmta_store::{Envelope, QueueId, Recipient};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::client::{Client, ClientError};
use super::{Files, UserInfo};
use crate::config::Config;
use crate::server::Server;
pub(crate) use crate::testutil::{Running, start};

impl Running {
    /// A client found the way the CLI finds one: through the published files.
    async fn client(&self) -> Client {
        let dir = self.dir.path().to_path_buf();
        blocking(move || Client::discover(&dir)).await.unwrap().expect("a running daemon")
    }
}

/// Run the synchronous client off the runtime the server runs on.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Send raw bytes and end the sending side, return the whole answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

fn api_error(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, message }) => (status, message),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// AUTH PLAIN on the submission port (allowed without TLS from loopback); the reply code.
async fn smtp_auth(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut io = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut line = String::new();
    let mut read_reply = async |io: &mut BufReader<TcpStream>| loop {
        line.clear();
        io.read_line(&mut line).await.unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    };
    read_reply(&mut io).await;
    io.get_mut().write_all(b"EHLO client.test\r\n").await.unwrap();
    read_reply(&mut io).await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    io.get_mut().write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes()).await.unwrap();
    read_reply(&mut io).await
}

#[tokio::test]
async fn users_are_added_listed_changed_and_removed() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let api = c.clone();
    let added = blocking(move || api.add_user("Alice@Example.COM", "first")).await.unwrap();
    assert_eq!(added.name, "alice@example.com");
    // Durable and usable at once: the store sees it and SMTP AUTH accepts it.
    assert!(s.store.authenticate("alice@example.com", "first").await.unwrap());
    assert_eq!(smtp_auth(s.submission, "alice@example.com", "first").await, "235 2.7.0 Authentication successful");

    let api = c.clone();
    let (status, message) = api_error(blocking(move || api.add_user("alice@example.com", "again")).await);
    assert_eq!((status, message.as_str()), (409, "user alice@example.com already exists"));
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.add_user("a b", "pw")).await).0, 400);
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.add_user("bob@example.com", "")).await), (400, "empty password".into()));

    let api = c.clone();
    let users = blocking(move || api.users()).await.unwrap();
    assert_eq!(users, vec![UserInfo { name: "alice@example.com".into(), created: added.created }]);
    let api = c.clone();
    let listing = blocking(move || api.raw("GET", "/users", b"")).await.unwrap();
    assert!(!String::from_utf8_lossy(&listing.body).contains("pbkdf2"), "hashes must never leave the daemon");

    let api = c.clone();
    blocking(move || api.set_password("ALICE@example.com", "second")).await.unwrap();
    assert!(s.store.authenticate("alice@example.com", "second").await.unwrap());
    assert!(!s.store.authenticate("alice@example.com", "first").await.unwrap());
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.set_password("bob@example.com", "x")).await), (404, "no such user: bob@example.com".into()));
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.set_password("alice@example.com", "")).await).0, 400);

    let api = c.clone();
    blocking(move || api.remove_user("alice@example.com")).await.unwrap();
    assert!(s.store.user("alice@example.com").unwrap().is_none());
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.remove_user("alice@example.com")).await), (404, "no such user: alice@example.com".into()));
    let api = c.clone();
    assert!(blocking(move || api.users()).await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn names_needing_percent_encoding_arrive_intact() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let name = "we%ird/na?me#1@example.com";
    let api = c.clone();
    blocking(move || api.add_user(name, "pw")).await.unwrap();
    let api = c.clone();
    blocking(move || api.set_password(name, "pw2")).await.unwrap();
    assert!(s.store.authenticate(name, "pw2").await.unwrap());
    let api = c.clone();
    blocking(move || api.remove_user(name)).await.unwrap();
    assert!(s.store.users().unwrap().is_empty());
    let api = c.clone();
    let bad = blocking(move || api.raw("DELETE", "/users/a%zz", b"")).await.unwrap();
    assert_eq!(bad.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401() {
    let s = start(|_| {}).await;
    s.store.add_user("alice@example.com", "pw").unwrap();
    let good = s.client().await;
    for token in ["wrong", "", &"0".repeat(64)] {
        let api = Client::new(s.admin, token);
        let (status, message) = api_error(blocking(move || api.users()).await);
        assert_eq!((status, message.as_str()), (401, "missing or wrong admin token"));
    }
    let api = Client::new(s.admin, "wrong");
    assert_eq!(api_error(blocking(move || api.remove_user("alice@example.com")).await).0, 401);
    assert!(s.store.user("alice@example.com").unwrap().is_some(), "a refused request must change nothing");
    let answer = raw(s.admin, b"GET /users HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&answer), "401", "{answer}");
    assert!(answer.contains("WWW-Authenticate: Bearer\r\n"), "{answer}");
    // Unknown paths are not revealed without the token either.
    assert_eq!(status(&raw(s.admin, b"GET /nothing HTTP/1.1\r\n\r\n").await), "401");
    // The scheme is case-insensitive.
    let token = std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap();
    let answer = raw(s.admin, format!("GET /users HTTP/1.1\r\nAuthorization: bearer {token}\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&answer), "200", "{answer}");
    let api = good.clone();
    assert_eq!(blocking(move || api.users()).await.unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    // (method, path, body, status, what the message must name)
    type Case<'a> = (&'a str, &'a str, &'a [u8], u16, Option<&'a str>);
    let cases: &[Case] = &[
        ("GET", "/", b"", 404, None),
        ("GET", "/nothing", b"", 404, None),
        ("GET", "/users/", b"", 404, None),
        ("GET", "/users/a/b", b"", 404, None),
        ("GET", "/queue/1/x", b"", 404, None),
        ("DELETE", "/users", b"", 405, Some("GET, POST")),
        ("GET", "/users/alice", b"", 405, Some("DELETE")),
        ("POST", "/users/alice/password", b"", 405, Some("PUT")),
        ("POST", "/queue", b"", 405, Some("GET")),
        ("GET", "/queue/not-hex", b"", 400, None),
        ("GET", "/queue/00000000000000FF", b"", 404, None),
        ("POST", "/users", b"{not json", 400, None),
        ("POST", "/users", br#"{"name":"a@b","password":"x","admin":true}"#, 400, None),
        ("PUT", "/users/a/password", b"", 400, None),
        ("PUT", "/queue/00000000000000FF", b"", 405, Some("GET, DELETE")),
        ("GET", "/queue/00000000000000FF/hold", b"", 405, Some("POST")),
        ("DELETE", "/queue/00000000000000FF/release", b"", 405, Some("POST")),
        ("GET", "/queue/flush", b"", 405, Some("POST")),
        ("POST", "/history", b"", 405, Some("GET")),
        ("GET", "/queue/1/hold/x", b"", 404, None),
        ("POST", "/queue/not-hex/hold", b"", 400, None),
        ("DELETE", "/queue/not-hex", b"", 400, None),
        ("POST", "/queue/00000000000000FF/flush", b"", 404, Some("00000000000000FF")),
        ("POST", "/queue/00000000000000FF/hold", b"", 404, Some("00000000000000FF")),
        ("POST", "/queue/00000000000000FF/release", b"", 404, Some("00000000000000FF")),
        ("DELETE", "/queue/00000000000000FF", b"", 404, Some("00000000000000FF")),
        ("GET", "/history?limit=3", b"", 400, Some("limit")),
        ("GET", "/history?since=yesterday", b"", 400, Some("yesterday")),
        ("GET", "/history?rcpt=%zz", b"", 400, None),
    ];
    for &(method, path, body, want, allow) in cases {
        let api = c.clone();
        let got = blocking(move || api.raw(method, path, body)).await.unwrap();
        assert_eq!(got.status, want, "{method} {path}: {}", String::from_utf8_lossy(&got.body));
        let error: super::ApiError = serde_json::from_slice(&got.body).unwrap();
        assert!(!error.error.is_empty());
        if let Some(allow) = allow {
            assert!(error.error.contains(allow), "{method} {path}: {}", error.error);
        }
    }
    let answer = raw(
        s.admin,
        format!(
            "DELETE /users HTTP/1.1\r\nAuthorization: Bearer {}\r\n\r\n",
            std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap()
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.contains("\r\nAllow: GET, POST\r\n"), "{answer}");
    s.stop().await;
}

/// An envelope whose recipient stays queued (nothing relays yet).
pub(crate) fn relay_envelope() -> Envelope {
    Envelope {
        id: QueueId(0),
        received: 1_700_000_000,
        sender: "a@example.org".into(),
        env_id: Some("env-1".into()),
        ret: None,
        body: sipmta_store::Body::SevenBit,
        smtputf8: false,
        size: 0,
        origin: sipmta_store::Origin::default(),
        recipients: vec![Recipient { updated: 0, ..Recipient::new("far@remote.example", sipmta_rules::Route::Relay) }],
    }
}

#[tokio::test]
async fn the_queue_is_listed_and_shown() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let api = c.clone();
    assert!(blocking(move || api.queue()).await.unwrap().is_empty());
    // Relay recipients stay queued: no worker takes them yet.
    let id = s.store.accept(relay_envelope(), b"Subject: q\r\n\r\nx\r\n".to_vec()).await.unwrap();
    s.store.record(id, Some("far@remote.example"), "queued for relay").unwrap();
    let gone = s.store.next_id().unwrap();
    s.store.record(gone, None, "delivered and removed").unwrap();

    let api = c.clone();
    let queue = blocking(move || api.queue()).await.unwrap();
    assert_eq!(queue, vec![s.store.envelope(id).unwrap().unwrap()]);

    let api = c.clone();
    let entry = blocking(move || api.message(id)).await.unwrap().unwrap();
    assert_eq!(entry.envelope, s.store.envelope(id).unwrap());
    assert_eq!(entry.history, s.store.history(id).unwrap());
    assert_eq!(entry.history.len(), 1);

    let api = c.clone();
    let entry = blocking(move || api.message(gone)).await.unwrap().unwrap();
    assert_eq!(entry.envelope, None, "only history is left of a finished message");
    assert_eq!(entry.history[0].text, "delivered and removed");

    let api = c.clone();
    assert!(blocking(move || api.message(QueueId(1))).await.unwrap().is_none());
    s.stop().await;
}

#[tokio::test]
async fn the_token_is_private_and_removed_at_shutdown() {
    let s = start(|_| {}).await;
    let files = Files::new(s.dir.path());
    let mode = std::fs::metadata(&files.token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let (token, addrs) = files.read().unwrap().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(addrs, vec![s.admin], "admin.addr holds the bound port, not 0");
    assert!(!s.dir.path().join("admin.token.tmp").exists());
    let dir = s.stop().await;
    assert!(!files.token.exists() && !files.addr.exists(), "token files left after shutdown");
    let path = dir.path().to_path_buf();
    assert!(blocking(move || Client::discover(&path)).await.unwrap().is_none());
}

#[tokio::test]
async fn each_start_makes_a_new_token_and_a_disabled_api_removes_stale_files() {
    let s = start(|_| {}).await;
    let first = std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap();
    let dir = s.stop().await;
    // A crash leaves the files behind.
    Files::new(dir.path()).write(&first, &["127.0.0.1:9".parse().unwrap()]).unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.smtp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.submission.listen = vec![];
    config.admin.listen = vec!["127.0.0.1:0".parse().unwrap()];
    // Its task would hold the store a moment after the server is dropped.
    config.registrar.enabled = false;
    let server = Server::start(config.clone()).await.unwrap();
    assert_ne!(std::fs::read_to_string(dir.path().join("admin.token")).unwrap(), first);
    drop(server);
    // Dropped, not stopped: its tasks let the store go as they notice, which a loaded machine
    // can take longer than the open's own wait for the lock.
    let path = dir.path().to_path_buf();
    crate::testutil::eventually("the dropped server's tasks to let the store go", || sipmta_store::Store::open(&path).is_ok()).await;
    config.admin.listen = vec![];
    let server = Server::start(config).await.unwrap();
    assert!(server.admin_addrs().is_empty());
    assert!(!dir.path().join("admin.token").exists() && !dir.path().join("admin.addr").exists());
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_answered_and_the_daemon_carries_on() {
    let s = start(|_| {}).await;
    let token = std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap();
    let mut huge_head = format!("GET /users HTTP/1.1\r\nAuthorization: Bearer {token}\r\nX: ").into_bytes();
    huge_head.extend(std::iter::repeat_n(b'a', 17 * 1024));
    huge_head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status(&raw(s.admin, &huge_head).await), "431");
    let mut big_body =
        format!("POST /users HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n", 70 * 1024).into_bytes();
    big_body.extend(std::iter::repeat_n(b'x', 70 * 1024));
    let answer = raw(s.admin, &big_body).await;
    assert_eq!(status(&answer), "413", "{answer}");
    assert!(answer.contains("\"error\":"), "{answer}");
    assert_eq!(status(&raw(s.admin, b"\x00\x01garbage\r\n\r\n").await), "400");
    assert_eq!(status(&raw(s.admin, b"GET /users HTTP/9.9\r\n\r\n").await), "505");
    let chunked = format!("POST /users HTTP/1.1\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(status(&raw(s.admin, chunked.as_bytes()).await), "501");
    // A client that gives up half-way gets no answer.
    assert_eq!(raw(s.admin, b"GET /us").await, "");
    let c = s.client().await;
    assert!(blocking(move || c.users()).await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_gets_408_after_ten_seconds() {
    let s = start(|_| {}).await;
    let started = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(s.admin).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status(&answer), "408", "{answer}");
    assert!(started.elapsed() >= super::server::REQUEST_TIMEOUT);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_an_idle_admin_client() {
    let s = start(|_| {}).await;
    let mut idle = TcpStream::connect(s.admin).await.unwrap();
    // Make sure the daemon has taken the connection before it is told to stop.
    let c = s.client().await;
    blocking(move || c.users()).await.unwrap();
    // Well under the 10 s the idle client would otherwise be given.
    tokio::time::timeout(Duration::from_secs(5), s.stop()).await.expect("shutdown waited for an idle admin client");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(status(&String::from_utf8_lossy(&answer)), "503");
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let s = start(|_| {}).await;
    let mut idle = Vec::new();
    for _ in 0..super::server::MAX_CONNECTIONS {
        idle.push(TcpStream::connect(s.admin).await.unwrap());
    }
    // Connections are accepted in order, so this one finds every slot taken.
    assert_eq!(status(&raw(s.admin, b"GET /users HTTP/1.1\r\n\r\n").await), "503");
    drop(idle);
    let c = s.client().await;
    let mut ok = false;
    // The idle connections' slots come back as the daemon notices they closed.
    for _ in 0..500 {
        let api = c.clone();
        if blocking(move || api.users()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "slots were not released");
    s.stop().await;
}

mod pages;
mod queue;
mod tables;
