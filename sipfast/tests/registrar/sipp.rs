//! sipp as a foreign user agent through the registrar/proxy: as a caller it REGISTERs with
//! digest authentication, calls one of our agents, ACKs and hangs up along the Record-Route,
//! and unregisters; as a callee (its address registered for a number) it is called by one of
//! our agents through the proxy. Over UDP and TCP (where the registration's flow is closed
//! first, so the proxy falls back to connecting to the contact).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, Transport};

use crate::support::{A, B, C, PASSWORD, Sipp, TestRegistrar, agent_config, init_tracing, register_request, sdp, tcp_request, udp_request};

async fn sipp_registers_and_calls_an_agent(transport: Transport) {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    let (b, mut b_incoming) = SipAgent::start(agent_config(transport, registrar.addr(), &[B], Some(PASSWORD))).await.unwrap();
    let callee = tokio::spawn(async move {
        let incoming = b_incoming.recv().await.unwrap();
        assert!(incoming.offer_sdp.contains("m=application 7000 TCP smtp http"), "{}", incoming.offer_sdp);
        let call = incoming.accept(&sdp(40002, "passive")).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), call.ended()).await.expect("sipp's BYE ends the call");
    });
    let remote = registrar.addr().to_string();
    // sipp takes no key inside [authentication]: the credentials go in -au and -ap.
    let args = [remote.as_str(), "-s", "05087654321", "-au", C, "-ap", PASSWORD];
    let sipp = Sipp::start("registrar_uac_call.xml", transport, &[("user", C)], &args).await;
    let messages = sipp.passed().await;
    callee.await.unwrap();
    assert!(messages.contains("WWW-Authenticate: Digest"), "sipp was challenged");
    assert_eq!(registrar.bindings(C), 0, "sipp's Expires: 0 removed its binding");
    b.shutdown().await;
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_registers_and_calls_over_udp() {
    sipp_registers_and_calls_an_agent(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_registers_and_calls_over_tcp() {
    sipp_registers_and_calls_an_agent(Transport::Tcp).await;
}

async fn agent_calls_sipp(transport: Transport) {
    init_tracing();
    let registrar = TestRegistrar::start(false).await;
    let sipp = Sipp::start("registrar_uas_answer.xml", transport, &[("user", C), ("app_port", "7100")], &[]).await;
    // Register sipp's address as C's contact from a socket of our own: over UDP the proxy uses
    // the contact's address, not the REGISTER's source; over TCP it would use the flow the
    // REGISTER came on, which is closed here, so it connects to the contact instead.
    let answer = match transport {
        Transport::Udp => udp_request(registrar.addr(), &register_request(C, &format!("sip:{C}@{}", sipp.addr), "UDP")).await,
        Transport::Tcp => tcp_request(registrar.addr(), &register_request(C, &format!("sip:{C}@{};transport=tcp", sipp.addr), "TCP")).await,
    };
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");

    let (a, _a_incoming) = SipAgent::start(agent_config(transport, registrar.addr(), &[A], None)).await.unwrap();
    let call = a.call(C, &sdp(40001, "actpass"), Duration::from_secs(10)).await.unwrap();
    assert!(call.answer_sdp.contains("m=application 7100 TCP smtp"), "{}", call.answer_sdp);
    call.hangup().await.unwrap();
    let messages = sipp.passed().await;
    assert!(messages.contains("Record-Route: <sip:"), "the proxy recorded its route");
    a.shutdown().await;
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_calls_sipp_over_udp() {
    agent_calls_sipp(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_calls_sipp_over_tcp() {
    agent_calls_sipp(Transport::Tcp).await;
}
