//! The abuse battery (issue 8 item 4) against the built daemon: open-relay tricks, password
//! guessing, oversize lines, slow clients and connection floods. Smuggling payloads are in
//! `smuggling.rs`; the fast path's own doors (an INVITE from anyone, the FP/1 token) in
//! `fastpath_abuse.rs`; the admin API's token in the admin API's in-process tests and below.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::auth_tls::with_alice;
use crate::support::smtp::Raw;
use crate::support::*;

/// Every way of hiding a remote destination in a local-looking address, on the MX port from a
/// client we do not trust: each is refused at RCPT and nothing is queued for elsewhere.
#[test]
fn every_open_relay_trick_is_refused_without_authentication() {
    let d = Daemon::start("local_domains = [\"localhost\", \"example.net\"]", "");
    let tricks = [
        "user%remote.example@localhost",   // percent hack
        "user%remote.example@LocalHost",   // ... with a mixed-case local domain
        "remote.example!user@localhost",   // UUCP bang path
        "remote.example!user@EXAMPLE.NET", // ... mixed case
        "@localhost:user@remote.example",  // source route (RFC 5321 §4.1.2, C.)
        "@LOCALHOST,@example.net:user@remote.example",
        "\"user@remote.example\"@localhost", // quoted local part holding an address
        "\"user%remote.example\"@localhost",
        "\"remote.example!user\"@localhost",
        "user@remote.example@localhost", // two @
        "user@[192.0.2.1]",              // IP literal that is not ours
        "user@[IPv6:2001:db8::1]",
        "user",                          // unqualified
        "user@remote.example",           // plain remote
        "user@REMOTE.EXAMPLE.",          // trailing dot, mixed case
        "user@localhost.remote.example", // a local domain as a prefix
        "user@remote.example.localhost", // ... as a suffix label
    ];
    let mut refused = 0;
    for rcpt in tricks {
        let (mut c, _) = Raw::connect(d.smtp);
        c.cmd("EHLO client.test");
        assert!(c.cmd("MAIL FROM:<sender@example.org>").starts_with("250"));
        let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with('5'), "{rcpt} was not refused: {reply}");
        refused += 1;
    }
    eprintln!("abuse: {refused} of {} relay tricks refused", tricks.len());
    // A mixed-case local domain itself is local, and still delivered.
    let out = d.swaks(&["--to", "postmaster@LocalHost", "--from", "sender@example.org"]);
    assert!(out.status.success(), "{}", transcript(&out));
    d.wait_mailbox("localhost/postmaster", 1);
    let queue = cli(&d.config, &["queue", "list"], "");
    assert!(!transcript(&queue).contains("remote.example"), "{}", transcript(&queue));
}

fn auth(d: &Daemon, source: &str, password: &str) -> String {
    let args = [
        "--local-interface",
        source,
        "--quit-after",
        "AUTH",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@localhost",
        "--auth-password",
        password,
    ];
    transcript(&swaks(d.submission, &args))
}

#[test]
fn password_guessing_is_slowed_then_refused_per_client_address() {
    let d = with_alice("[limits]\nmax_auth_failures = 4\nauth_failure_window = \"10m\"\n");
    // The first two failures are answered at once, the next ones later and later.
    let mut took = Vec::new();
    for _ in 0..4 {
        let start = Instant::now();
        let t = auth(&d, "127.0.0.2", "guess");
        assert!(t.contains("<** 535 5.7.8"), "{t}");
        took.push(start.elapsed());
    }
    assert!(took[2] >= Duration::from_secs(1) && took[3] >= Duration::from_secs(2), "{took:?}");
    // The fifth attempt is refused before any password is looked at, even the right one.
    let t = auth(&d, "127.0.0.2", "correct horse");
    assert!(t.contains("<** 421 4.7.0") && t.contains("Too many failed authentications"), "{t}");
    assert!(d.log().contains("AUTH refused: too many failed attempts from this address"), "{}", d.log());
    // Another address is not punished for it.
    let t = auth(&d, "127.0.0.3", "correct horse");
    assert!(t.contains("235 2.7.0 Authentication successful"), "{t}");
}

#[test]
fn oversize_command_lines_and_header_lines_are_refused_and_the_session_goes_on() {
    let d = Daemon::start("", "[limits]\nmax_command_line = 512\n");
    let (mut c, _) = Raw::connect(d.smtp);
    c.cmd("EHLO client.test");
    // A megabyte without a line end: refused, memory stays bounded, the session continues.
    c.send(&vec![b'A'; 1 << 20]);
    assert!(c.cmd("").starts_with("500 5.5.2"));
    assert!(c.cmd(&format!("MAIL FROM:<{}@example.org>", "x".repeat(600))).starts_with("500 5.5.2"));
    assert!(c.cmd("MAIL FROM:<sender@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<postmaster@localhost>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    // A header line beyond RFC 5322's 998 octets: the message is refused, not truncated.
    let reply = c.cmd(&format!("Subject: {}\r\n\r\nbody\r\n.", "y".repeat(5000)));
    assert!(reply.starts_with("5"), "{reply}");
    // The session is still usable, and so is the daemon.
    assert!(c.cmd("NOOP").starts_with("250"));
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--add-header", "X-Ok: 1"]);
    assert!(out.status.success(), "{}", transcript(&out));
    d.wait_mailbox("localhost/postmaster", 1);
}

/// One address opening more sessions than `max_sessions_per_client` gets `421` for the extra
/// ones, its idle and dribbling sessions are closed after the idle timeout, and another client
/// is served all along.
#[test]
fn slow_clients_and_connection_floods_are_bounded() {
    let d = Daemon::start("", "[limits]\nidle_timeout = \"2s\"\nmax_sessions_per_client = 5\nmax_sessions = 50\n");
    // The flooding client is 127.0.0.1; the other client 127.0.0.3.
    let connect = || {
        let socket = TcpStream::connect(d.smtp).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        socket
    };
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect();
        assert!(read_reply(&mut s).starts_with("220"));
        held.push(s);
    }
    // The flood: 20 more from the same address, each turned away at once.
    for _ in 0..20 {
        let mut s = connect();
        let reply = read_reply(&mut s);
        assert!(reply.starts_with("421 4.7.0"), "{reply}");
    }
    // Meanwhile another client is served.
    let out = d.swaks(&["--local-interface", "127.0.0.3", "--to", "postmaster@localhost", "--from", "sender@example.org"]);
    assert!(out.status.success(), "{}", transcript(&out));
    // One of the held sessions dribbles a command a byte per second: still closed at the idle
    // timeout, like the silent ones.
    let dribbler = &mut held[0];
    let start = Instant::now();
    let mut closed = String::new();
    for b in b"EHLO slow.client.test\r\n" {
        if dribbler.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        dribbler.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        match dribbler.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => closed.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
        if closed.contains("421") {
            break;
        }
    }
    assert!(closed.contains("421 4.4.2"), "the dribbling session was not closed: {closed:?} after {:?}", start.elapsed());
    for s in &mut held[1..] {
        let reply = read_reply(s);
        assert!(reply.starts_with("421 4.4.2"), "{reply}");
    }
    // Their slots are free again.
    let mut s = connect();
    assert!(read_reply(&mut s).starts_with("220"));
}

/// One reply (possibly multi-line), or what arrived before the connection ended.
fn read_reply(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if text.lines().last().is_some_and(|l| l.as_bytes().get(3) == Some(&b' ')) && text.ends_with('\n') {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The admin API of the running daemon answers nothing without its token (the CLI reads the
/// token from the data directory, which only the daemon's user can).
#[test]
fn the_admin_api_refuses_requests_without_its_token() {
    let d = Daemon::start("", "");
    let admin = d.listener_addr("admin");
    for request in [
        "GET /queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /queue HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guess\r\nConnection: close\r\n\r\n".to_owned(),
        {
            let body = r#"{"name":"x@localhost","pass":""}"#;
            format!(
                "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        },
    ] {
        let mut s = TcpStream::connect(admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 401"), "{request}\n{answer}");
    }
    // With the token (as the CLI sends it) the same API answers.
    let out = cli(&d.config, &["queue", "list"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(transcript(&cli(&d.config, &["user", "list"], "")).trim().is_empty(), "no user was added");
}
