//! Transcript tests: each handshake against a scripted peer over `tokio::io::duplex`, checking
//! the exact octets both ways, and the two handshakes against each other.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;

const T: Duration = DEFAULT_TIMEOUT;

fn token() -> Token {
    Token::from_bytes(*b"0123456789abcdef")
}

fn other_token() -> Token {
    Token::from_bytes(*b"fedcba9876543210")
}

fn hello(t: &Token) -> String {
    format!("FP/1 HELLO {t}\r\n")
}

/// The scripted peer's end.
struct Peer(DuplexStream);

impl Peer {
    async fn send(&mut self, text: &str) {
        self.0.write_all(text.as_bytes()).await.expect("peer write");
    }

    /// Reads exactly `text.len()` octets and compares.
    async fn expect(&mut self, text: &str) {
        let mut buf = vec![0; text.len()];
        self.0.read_exact(&mut buf).await.expect("peer read");
        assert_eq!(String::from_utf8_lossy(&buf), text);
    }

    /// Reads `text` and then end of stream: the handshake closed after it.
    async fn expect_last(&mut self, text: &str) {
        self.expect(text).await;
        let mut rest = Vec::new();
        self.0.read_to_end(&mut rest).await.expect("peer read to end");
        assert_eq!(String::from_utf8_lossy(&rest), "", "nothing after the refusal");
    }
}

fn pair() -> (DuplexStream, Peer) {
    let (ours, theirs) = duplex(4096);
    (ours, Peer(theirs))
}

#[tokio::test]
async fn active_caller_asks_protos_and_leaves_the_greeting_unread() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), None, &["smtp", "http"], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.expect("FP/1 PROTOS?\r\n").await;
    // The callee prefers http; the caller's own preference decides.
    peer.send("FP/1 PROTOS http smtp\r\n").await;
    peer.expect("FP/1 USE smtp\r\n").await;
    peer.send("FP/1 OK smtp\r\n220 mx.example ESMTP\r\n").await;
    let (mut stream, negotiated) = caller.await.expect("join").expect("handshake");
    assert_eq!(negotiated, Negotiated { protocol: "smtp".into(), asked: true });
    let mut greeting = [0; 22];
    stream.read_exact(&mut greeting).await.expect("greeting");
    assert_eq!(&greeting, b"220 mx.example ESMTP\r\n");
}

#[tokio::test]
async fn passive_caller_waits_for_hello_then_echoes() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Passive, &token(), None, &["smtp"], T).await });
    peer.send(&hello(&token())).await;
    peer.expect(&hello(&token())).await;
    peer.expect("FP/1 PROTOS?\r\n").await;
    peer.send("FP/1 PROTOS smtp\r\n").await;
    peer.expect("FP/1 USE smtp\r\n").await;
    peer.send("FP/1 OK smtp\r\n").await;
    let (_, negotiated) = caller.await.expect("join").expect("handshake");
    assert_eq!(negotiated, Negotiated { protocol: "smtp".into(), asked: true });
}

#[tokio::test]
async fn known_protocol_skips_protos_query() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), Some("smtp"), &[], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.expect("FP/1 USE smtp\r\n").await;
    peer.send("FP/1 OK smtp\r\n").await;
    let (_, negotiated) = caller.await.expect("join").expect("handshake");
    assert_eq!(negotiated, Negotiated { protocol: "smtp".into(), asked: false });
}

#[tokio::test]
async fn passive_callee_answers_and_its_greeting_follows_ok() {
    let (stream, mut peer) = pair();
    let callee = tokio::spawn(async move {
        let (mut stream, protocol) = callee_handshake(stream, Role::Passive, &token(), &["smtp", "http"], T).await?;
        stream.write_all(b"220 mx.example ESMTP\r\n").await?;
        Ok::<_, Fp1Error>(protocol)
    });
    peer.send(&hello(&token())).await;
    peer.expect(&hello(&token())).await;
    peer.send("FP/1 PROTOS?\r\n").await;
    peer.expect("FP/1 PROTOS smtp http\r\n").await;
    peer.send("FP/1 USE smtp\r\n").await;
    peer.expect("FP/1 OK smtp\r\n220 mx.example ESMTP\r\n").await;
    assert_eq!(callee.await.expect("join").expect("handshake"), "smtp");
}

#[tokio::test]
async fn active_callee_sends_hello_first_and_accepts_use_without_query() {
    let (stream, mut peer) = pair();
    let callee = tokio::spawn(async move { callee_handshake(stream, Role::Active, &token(), &["smtp"], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.send("FP/1 USE smtp\r\n").await;
    peer.expect("FP/1 OK smtp\r\n").await;
    let (_, protocol) = callee.await.expect("join").expect("handshake");
    assert_eq!(protocol, "smtp");
}

#[tokio::test]
async fn our_two_sides_agree_in_both_role_assignments() {
    for (caller_role, callee_role) in [(Role::Active, Role::Passive), (Role::Passive, Role::Active)] {
        let (a, b) = duplex(4096);
        let token = token();
        let caller = caller_handshake(a, caller_role, &token, None, &["http", "smtp"], T);
        let callee = async {
            let (mut s, p) = callee_handshake(b, callee_role, &token, &["smtp"], T).await?;
            s.write_all(b"220 ready\r\n").await?;
            Ok::<_, Fp1Error>((s, p))
        };
        let (caller, callee) = tokio::join!(caller, callee);
        let (mut stream, negotiated) = caller.expect("caller");
        assert_eq!(negotiated, Negotiated { protocol: "smtp".into(), asked: true });
        assert_eq!(callee.expect("callee").1, "smtp");
        let mut greeting = [0; 11];
        stream.read_exact(&mut greeting).await.expect("greeting");
        assert_eq!(&greeting, b"220 ready\r\n");
    }
}

#[tokio::test]
async fn passive_side_refuses_a_wrong_token_with_403_and_closes() {
    for bad in [hello(&other_token()), "FP/1 HELLO not-a-token\r\n".to_owned(), "FP/1 HELLO\r\n".to_owned()] {
        let (stream, mut peer) = pair();
        let callee = tokio::spawn(async move { callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await });
        peer.send(&bad).await;
        peer.expect_last("FP/1 ERR 403 bad-token\r\n").await;
        let err = callee.await.expect("join").expect_err("refused");
        assert!(matches!(err, Fp1Error::BadToken), "{bad:?}: {err:?}");
        assert!(!err.is_transient());
    }
    // The passive caller checks the callee's HELLO the same way.
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Passive, &token(), Some("smtp"), &[], T).await });
    peer.send(&hello(&other_token())).await;
    peer.expect_last("FP/1 ERR 403 bad-token\r\n").await;
    assert!(matches!(caller.await.expect("join"), Err(Fp1Error::BadToken)));
}

#[tokio::test]
async fn active_side_rejects_a_wrong_echo_and_reports_a_403() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), Some("smtp"), &[], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&other_token())).await;
    peer.expect_last("FP/1 ERR 403 bad-token\r\n").await;
    assert!(matches!(caller.await.expect("join"), Err(Fp1Error::BadToken)));

    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), Some("smtp"), &[], T).await });
    peer.expect(&hello(&token())).await;
    peer.send("FP/1 ERR 403 bad-token\r\n").await;
    assert!(matches!(caller.await.expect("join"), Err(Fp1Error::BadToken)));
}

#[tokio::test]
async fn callee_refuses_use_of_an_unsupported_protocol_with_415() {
    let (stream, mut peer) = pair();
    let callee = tokio::spawn(async move { callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await });
    peer.send(&hello(&token())).await;
    peer.expect(&hello(&token())).await;
    peer.send("FP/1 USE http\r\n").await;
    peer.expect_last("FP/1 ERR 415 unsupported-protocol\r\n").await;
    let err = callee.await.expect("join").expect_err("refused");
    assert!(matches!(&err, Fp1Error::UnsupportedProtocol { protocol } if protocol == "http"), "{err:?}");
}

#[tokio::test]
async fn caller_reports_a_415_as_unsupported_so_the_table_entry_is_cleared() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), Some("smtp"), &["smtp"], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.expect("FP/1 USE smtp\r\n").await;
    peer.send("FP/1 ERR 415 unsupported-protocol\r\n").await;
    let err = caller.await.expect("join").expect_err("refused");
    assert!(matches!(&err, Fp1Error::UnsupportedProtocol { protocol } if protocol == "smtp"), "{err:?}");
    assert!(err.is_protocol_mismatch() && !err.is_transient());
}

#[tokio::test]
async fn caller_with_nothing_in_common_refuses_with_415() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), None, &["smtp"], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.expect("FP/1 PROTOS?\r\n").await;
    peer.send("FP/1 PROTOS http\r\n").await;
    peer.expect_last("FP/1 ERR 415 unsupported-protocol\r\n").await;
    let err = caller.await.expect("join").expect_err("refused");
    assert!(matches!(&err, Fp1Error::NoCommonProtocol { offered } if offered == &["http"]), "{err:?}");
    assert!(err.is_protocol_mismatch());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_peer_times_out() {
    let (stream, mut peer) = pair();
    let started = tokio::time::Instant::now();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), None, &["smtp"], T).await });
    peer.expect(&hello(&token())).await;
    // Half a line, then silence.
    peer.send("FP/1 HEL").await;
    let err = caller.await.expect("join").expect_err("timed out");
    assert!(matches!(err, Fp1Error::Timeout(t) if t == T), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() >= T);

    let (stream, _peer) = pair();
    let callee = callee_handshake(stream, Role::Passive, &token(), &["smtp"], Duration::from_millis(300)).await;
    assert!(matches!(callee, Err(Fp1Error::Timeout(_))));
}

#[tokio::test]
async fn a_line_over_512_octets_is_refused_with_400() {
    let (stream, mut peer) = pair();
    let callee = tokio::spawn(async move { callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await });
    peer.send(&hello(&token())).await;
    peer.expect(&hello(&token())).await;
    // 600 octets and no CRLF: refused at octet 512, without waiting for the end of the line.
    peer.send(&format!("FP/1 USE {}", "x".repeat(591))).await;
    peer.expect_last("FP/1 ERR 400 bad-request\r\n").await;
    assert!(matches!(callee.await.expect("join"), Err(Fp1Error::Invalid(ParseError::TooLong))));
}

#[tokio::test]
async fn garbage_is_refused_with_400_at_once() {
    for (garbage, why) in [
        (&b"EHLO client.example\r\n"[..], ParseError::NotFp1),
        (&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"[..], ParseError::NotFp1),
        // A bare LF ends nothing: the line is bad before its token is looked at, so 400, not 403.
        (&b"FP/1 HELLO x\n"[..], ParseError::BadOctet),
        (&b"FP/1 \xff"[..], ParseError::BadOctet),
    ] {
        let (stream, mut peer) = pair();
        let callee = tokio::spawn(async move { callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await });
        peer.0.write_all(garbage).await.expect("peer write");
        peer.expect_last("FP/1 ERR 400 bad-request\r\n").await;
        let err = callee.await.expect("join").expect_err("refused");
        assert!(matches!(err, Fp1Error::Invalid(e) if e == why), "{garbage:?}");
    }
}

#[tokio::test]
async fn out_of_order_lines_are_refused_with_400() {
    // The caller gets OK for a protocol it did not ask for.
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), Some("smtp"), &[], T).await });
    peer.expect(&hello(&token())).await;
    peer.send(&hello(&token())).await;
    peer.expect("FP/1 USE smtp\r\n").await;
    peer.send("FP/1 OK http\r\n").await;
    peer.expect_last("FP/1 ERR 400 bad-request\r\n").await;
    assert!(matches!(caller.await.expect("join"), Err(Fp1Error::Unexpected { expected: "OK", got: "OK" })));

    // The callee gets PROTOS? twice, or USE before HELLO.
    for script in [format!("{}FP/1 PROTOS?\r\nFP/1 PROTOS?\r\n", hello(&token())), "FP/1 USE smtp\r\n".to_owned()] {
        let (stream, mut peer) = pair();
        let callee = tokio::spawn(async move { callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await });
        peer.send(&script).await;
        let mut all = Vec::new();
        peer.0.read_to_end(&mut all).await.expect("read");
        assert!(String::from_utf8_lossy(&all).ends_with("FP/1 ERR 400 bad-request\r\n"), "{all:?}");
        assert!(matches!(callee.await.expect("join"), Err(Fp1Error::Unexpected { .. })));
    }
}

#[tokio::test]
async fn peer_errors_and_early_close() {
    let (stream, mut peer) = pair();
    let caller = tokio::spawn(async move { caller_handshake(stream, Role::Active, &token(), None, &["smtp"], T).await });
    peer.expect(&hello(&token())).await;
    peer.send("FP/1 ERR 500 internal-error\r\n").await;
    let err = caller.await.expect("join").expect_err("refused");
    assert!(matches!(&err, Fp1Error::Peer { code: 500, reason } if reason == "internal-error"), "{err:?}");
    assert!(err.is_transient());

    let (stream, peer) = pair();
    drop(peer);
    let err = callee_handshake(stream, Role::Passive, &token(), &["smtp"], T).await.expect_err("closed");
    assert!(matches!(err, Fp1Error::Closed) && err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn arguments_that_cannot_be_sent_are_refused_before_any_io() {
    let (stream, _peer) = pair();
    assert!(matches!(caller_handshake(stream, Role::Active, &token(), None, &[], T).await, Err(Fp1Error::InvalidArgument(_))));
    let (stream, _peer) = pair();
    assert!(matches!(caller_handshake(stream, Role::Active, &token(), Some("s mtp"), &[], T).await, Err(Fp1Error::InvalidArgument(_))));
    let (stream, _peer) = pair();
    assert!(matches!(callee_handshake(stream, Role::Active, &token(), &["smtp", ""], T).await, Err(Fp1Error::InvalidArgument(_))));
}
