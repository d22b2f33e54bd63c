//! Two agents registered with Kamailio: A calls B through the proxy, B accepts, A gets B's
//! answer, A hangs up and B sees the BYE. Over UDP and over TCP; the TCP run dials B's number
//! in the national form, which Kamailio normalises to E.164. And a call B never answers is
//! CANCELled through the proxy.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{CallError, SipAgent, SipError, Transport};

use crate::support::{A, B, Kamailio, agent_config, init_tracing, sdp};

async fn call_through_kamailio(transport: Transport, dialled: &str) {
    init_tracing();
    let kamailio = Kamailio::start(&[]).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(transport, kamailio.addr, &[A], None)).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(transport, kamailio.addr, &[B], None)).await.unwrap();

    let offer = sdp(40001, "actpass");
    let answer = sdp(40002, "passive");
    let callee = tokio::spawn(async move {
        let incoming = b_incoming.recv().await.unwrap();
        assert_eq!(incoming.number, B);
        assert!(incoming.from.contains(A), "From is A: {}", incoming.from);
        let offer_seen = incoming.offer_sdp.clone();
        let call = incoming.accept(&answer).await.unwrap();
        (offer_seen, call)
    });
    let call = a.call(dialled, &offer, Duration::from_secs(10)).await.unwrap();
    assert_eq!(call.answer_sdp, sdp(40002, "passive"));
    let (offer_seen, b_call) = callee.await.unwrap();
    assert_eq!(offer_seen, offer);

    call.hangup().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), b_call.ended()).await.expect("B sees A's BYE");

    let log = kamailio.log();
    assert!(log.contains("method:  <INVITE>"), "Kamailio's log shows the INVITE");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_call_through_kamailio() {
    call_through_kamailio(Transport::Udp, B).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_call_through_kamailio_with_a_national_number() {
    call_through_kamailio(Transport::Tcp, "05087654321").await;
}

/// A calls B, B never answers: A's budget runs out, A CANCELs through Kamailio (over UDP the
/// CANCEL has to find the proxy from the Request-URI alone), B's INVITE is ended with 487, so
/// accepting it afterwards fails.
#[tokio::test(flavor = "multi_thread")]
async fn unanswered_call_through_kamailio_is_cancelled() {
    init_tracing();
    let kamailio = Kamailio::start(&[]).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(Transport::Udp, kamailio.addr, &[A], None)).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(Transport::Udp, kamailio.addr, &[B], None)).await.unwrap();

    let caller = tokio::spawn(async move {
        let result = a.call(B, &sdp(40001, "actpass"), Duration::from_millis(300)).await;
        (a, result)
    });
    let incoming = b_incoming.recv().await.unwrap();
    let (a, result) = caller.await.unwrap();
    assert_eq!(result.unwrap_err(), CallError::Timeout);
    // A returned after its INVITE got the 487 that B sent on the CANCEL.
    let err = incoming.accept(&sdp(40002, "passive")).await.unwrap_err();
    assert!(matches!(err, SipError::Protocol(_)), "{err}");
    assert!(kamailio.log().contains("method:  <CANCEL>"), "Kamailio relayed the CANCEL");
    a.shutdown().await;
    b.shutdown().await;
}
