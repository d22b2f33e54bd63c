//! The registrar over raw sockets: CRLFCRLF keep-alives on TCP get a CRLF (RFC 5626 §4.4.1),
//! OPTIONS to the registrar itself gets 200 with Allow (over UDP and on a TCP flow that also
//! pings), a REGISTER below the minimum lifetime gets 423 with Min-Expires, and shutdown
//! drains pending calls before closing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{DOMAIN, TestRegistrar, init_tracing, register_request, udp_request};

fn options(transport: &str, local: &str, registrar: std::net::SocketAddr) -> String {
    format!(
        "OPTIONS sip:{registrar} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bKopt{transport}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{DOMAIN}>;tag=p\r\n\
         To: <sip:{registrar}>\r\n\
         Call-ID: options-{transport}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn options_over_udp_and_423_for_a_brief_register() {
    init_tracing();
    let registrar = TestRegistrar::start(false).await;
    let answer = udp_request(registrar.addr(), &options("UDP", "[local]", registrar.addr())).await;
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"), "{answer}");

    let brief = register_request("+815012345678", "sip:+815012345678@127.0.0.1:5999", "UDP").replace("Expires: 600", "Expires: 10");
    let answer = udp_request(registrar.addr(), &brief).await;
    assert!(answer.starts_with("SIP/2.0 423 Interval Too Brief\r\n"), "{answer}");
    assert!(answer.contains("Min-Expires: 60\r\n"), "{answer}");
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_pings_are_ponged_and_the_flow_carries_requests() {
    init_tracing();
    let registrar = TestRegistrar::start(false).await;
    let mut flow = TcpStream::connect(registrar.addr()).await.unwrap();
    let local = flow.local_addr().unwrap().to_string();
    let mut buf = vec![0u8; 4096];

    flow.write_all(b"\r\n\r\n").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), flow.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"\r\n", "one CRLF for one ping");

    // A ping and a request in one segment, the request split over two writes.
    let request = options("TCP", &local, registrar.addr());
    let (head, tail) = request.split_at(40);
    flow.write_all(format!("\r\n\r\n{head}").as_bytes()).await.unwrap();
    flow.write_all(tail.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Content-Length: 0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), flow.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the registrar closed the flow");
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8(seen).unwrap();
    assert!(seen.starts_with("\r\nSIP/2.0 200 OK\r\n"), "pong, then the answer: {seen:?}");
    registrar.handle.shutdown().await;
}

/// Shutdown drains (STYLE 11): while a forwarded INVITE waits for its answer, new requests get
/// 503; the answer still reaches the caller; then the sockets close.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_pending_calls_then_closes() {
    use sipfast::ua::{SipAgent, Transport};

    use crate::support::{A, B, agent_config, port_bound, sdp, wait_for};

    init_tracing();
    let registrar = TestRegistrar::start(false).await;
    let addr = registrar.addr();
    let (a, _a_incoming) = SipAgent::start(agent_config(Transport::Udp, addr, &[A], None)).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(Transport::Udp, addr, &[B], None)).await.unwrap();
    let caller = tokio::spawn(async move { a.call(B, &sdp(40001, "actpass"), Duration::from_secs(10)).await.map(|call| (a, call)) });
    let incoming = b_incoming.recv().await.unwrap();

    let stopping = tokio::spawn(registrar.handle.shutdown_within(Duration::from_secs(20)));
    // A newcomer is turned away while the call is pending (the drain starts asynchronously).
    // A new user each time: repeating one REGISTER (same Call-ID and CSeq) would be answered
    // "500 Out Of Order" (RFC 3261 §10.3 step 7) once the first got through.
    let mut n = 2222;
    let refused = loop {
        let number = format!("+81501111{n:04}");
        let answer = udp_request(addr, &register_request(&number, &format!("sip:{number}@127.0.0.1:5999"), "UDP")).await;
        if !answer.starts_with("SIP/2.0 200") {
            break answer;
        }
        n += 1;
    };
    assert!(refused.starts_with("SIP/2.0 503 Service Unavailable\r\n"), "{refused}");
    assert!(!stopping.is_finished(), "still draining");

    let b_call = incoming.accept(&sdp(40002, "passive")).await.unwrap();
    let (a, call) = caller.await.unwrap().unwrap();
    assert_eq!(call.answer_sdp, sdp(40002, "passive"));
    stopping.await.unwrap();
    wait_for("the registrar's sockets to close", || !port_bound("udp", addr.port()) && !port_bound("tcp", addr.port())).await;
    // The registrar is gone: un-REGISTER and BYE would only time out. Dropping ends the agents.
    drop((call, b_call, a, b));
}
