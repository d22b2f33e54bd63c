//! Two agents registered with the registrar (digest authentication) call each other through
//! it: A calls B, B accepts, A gets B's answer, the hang-up reaches the other side. Over UDP,
//! over TCP (dialling the national form, normalised to E.164 by the proxy), and with A on UDP
//! and B on TCP (the proxy records the route twice, RFC 5658). Shutting an agent down removes
//! its binding: calling it then gets 480.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, Transport};

use crate::support::{A, B, PASSWORD, TestRegistrar, agent_config, init_tracing, sdp};

async fn call_through_registrar(a_transport: Transport, b_transport: Transport, dialled: &str, hangup_by_callee: bool) {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(a_transport, registrar.addr(), &[A], Some(PASSWORD))).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(b_transport, registrar.addr(), &[B], Some(PASSWORD))).await.unwrap();
    assert_eq!((registrar.bindings(A), registrar.bindings(B)), (1, 1));
    // What the agent reports (for sipmta's /metrics and status page): registered, with the
    // registrar's granted lifetime left.
    let [(number, left)] = a.registrations().try_into().unwrap();
    assert_eq!(number, A);
    assert!(left.is_some_and(|d| d > Duration::from_secs(30)), "{left:?}");

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

    // The BYE follows the route set through the proxy, either way.
    if hangup_by_callee {
        b_call.hangup().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), call.ended()).await.expect("A sees B's BYE");
    } else {
        call.hangup().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), b_call.ended()).await.expect("B sees A's BYE");
    }

    // A's shutdown removes its binding (Expires: 0): A is configured, so calling it is 480.
    a.shutdown().await;
    assert_eq!(registrar.bindings(A), 0);
    let after = b.call(A, &sdp(40003, "actpass"), Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(after.code(), Some(480), "{after}");
    b.shutdown().await;
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_call_through_the_registrar() {
    call_through_registrar(Transport::Udp, Transport::Udp, B, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_call_through_the_registrar_with_a_national_number() {
    call_through_registrar(Transport::Tcp, Transport::Tcp, "050-8765-4321", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_caller_tcp_callee() {
    call_through_registrar(Transport::Udp, Transport::Tcp, "05087654321", false).await;
}
