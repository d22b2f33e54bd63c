//! OPTIONS between two agents through Kamailio with digest authentication (issue 7 item 4,
//! "Capability answer"): B answers for its number with the protocols it accepts and A's probe
//! reads them, authenticated as its INVITEs are (the reference config challenges every request
//! from our domain, so an answer at all means the digest passed). A number Kamailio does not
//! know gets 404, an agent that describes no protocols answers without SDP, and a peer that
//! never answers leaves the probe to time out. Over UDP and TCP.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sipfast::ua::{ProbeError, SipAgent, Transport};

use crate::support::{A, B, Kamailio, PASSWORD, agent_config, init_tracing};

const BUDGET: Duration = Duration::from_secs(10);

async fn probe_through_kamailio(transport: Transport) {
    init_tracing();
    let kamailio = Kamailio::start(&["WITH_AUTH", "TEST_DOMAIN_ALIAS=sip.example"]).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(transport, kamailio.addr, &[A], Some(PASSWORD))).await.unwrap();
    let mut b_config = agent_config(transport, kamailio.addr, &[B], Some(PASSWORD));
    b_config.protocols = vec!["smtp".into(), "http".into()];
    let (b, _b_incoming) = SipAgent::start(b_config).await.unwrap();

    assert_eq!(a.probe(B, BUDGET).await, Ok(vec!["smtp".to_owned(), "http".to_owned()]));
    // The national form, normalised by Kamailio as for a call.
    assert_eq!(a.probe("05087654321", BUDGET).await, Ok(vec!["smtp".to_owned(), "http".to_owned()]));
    // A describes no protocols: its 200 has no SDP, which says nothing rather than "none".
    assert_eq!(b.probe(A, BUDGET).await, Err(ProbeError::NoDescription));
    // Nobody is registered for this number: Kamailio's 404, as an INVITE would get.
    let unknown = a.probe("+815011112222", BUDGET).await.unwrap_err();
    assert_eq!(unknown.code(), Some(404), "{unknown}");

    let log = kamailio.log();
    assert!(log.contains("method:  <OPTIONS>"), "Kamailio's log shows the OPTIONS");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_through_kamailio_over_udp() {
    probe_through_kamailio(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_through_kamailio_over_tcp() {
    probe_through_kamailio(Transport::Tcp).await;
}

/// A peer that swallows OPTIONS (a UDP socket that never answers): the probe returns at its
/// budget, with no CANCEL to wait for (RFC 3261 §9.1: non-INVITE requests are not cancelled).
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_peer_makes_the_probe_time_out_at_its_budget() {
    init_tracing();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (a, _a_incoming) =
        SipAgent::start(sipfast::ua::SipConfig::new("127.0.0.1:0".parse().unwrap(), crate::support::DOMAIN)).await.unwrap();
    let started = Instant::now();
    let result = a.probe_uri(B, &format!("sip:{B}@{addr}"), addr, Duration::from_millis(300)).await;
    assert_eq!(result, Err(ProbeError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let mut buf = [0u8; 2048];
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(request.starts_with(&format!("OPTIONS sip:{B}@{addr} SIP/2.0\r\n")), "{request}");
    assert!(request.contains("\r\nAccept: application/sdp\r\n"), "RFC 3261 §11.1: {request}");
    a.shutdown().await;
}
