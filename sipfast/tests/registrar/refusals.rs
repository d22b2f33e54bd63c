//! What the registrar refuses: a wrong password (REGISTER keeps getting 401, the agent fails
//! to start), a number nobody configured (404), a configured number that is not registered
//! (480), and a callee's own rejection passed back unchanged.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{CallError, SipAgent, SipError, Transport};

use crate::support::{A, B, C, PASSWORD, TestRegistrar, agent_config, init_tracing, sdp};

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_refused_over_udp_and_tcp() {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let refused = SipAgent::start(agent_config(transport, registrar.addr(), &[A], Some("wrong"))).await.unwrap_err();
        assert!(matches!(&refused, SipError::Register { number, code: 401, .. } if number == A), "{refused}");
    }
    assert_eq!(registrar.bindings(A), 0);
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_unregistered_and_rejected_calls() {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(Transport::Udp, registrar.addr(), &[A], Some(PASSWORD))).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(Transport::Tcp, registrar.addr(), &[B], Some(PASSWORD))).await.unwrap();
    let budget = Duration::from_secs(10);

    let unknown = a.call("+819099998888", &sdp(40001, "actpass"), budget).await.unwrap_err();
    assert_eq!(unknown.code(), Some(404), "{unknown}");
    let absent = a.call(C, &sdp(40001, "actpass"), budget).await.unwrap_err();
    assert_eq!(absent.code(), Some(480), "{absent}");

    let callee = tokio::spawn(async move {
        let incoming = b_incoming.recv().await.unwrap();
        incoming.reject(486).await.unwrap();
        b_incoming
    });
    let busy = a.call(B, &sdp(40001, "actpass"), budget).await.unwrap_err();
    assert!(matches!(&busy, CallError::Rejected { code: 486, .. }), "{busy}");
    callee.await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
    registrar.handle.shutdown().await;
}
