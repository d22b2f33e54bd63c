//! A call B never answers: A's budget runs out, A CANCELs through the registrar's proxy, which
//! cancels its branch to B (RFC 3261 §16.10); B's INVITE ends with 487, so accepting it
//! afterwards fails. Over UDP and TCP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{CallError, SipAgent, SipError, Transport};

use crate::support::{A, B, TestRegistrar, agent_config, init_tracing, sdp};

async fn unanswered_call_is_cancelled(transport: Transport) {
    init_tracing();
    let registrar = TestRegistrar::start(false).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(transport, registrar.addr(), &[A], None)).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(transport, registrar.addr(), &[B], None)).await.unwrap();

    let caller = tokio::spawn(async move {
        let result = a.call(B, &sdp(40001, "actpass"), Duration::from_millis(300)).await;
        (a, result)
    });
    let incoming = b_incoming.recv().await.unwrap();
    let (a, result) = caller.await.unwrap();
    assert_eq!(result.unwrap_err(), CallError::Timeout);
    // A returned once its INVITE got the 487 that B sent on the proxied CANCEL.
    let err = incoming.accept(&sdp(40002, "passive")).await.unwrap_err();
    assert!(matches!(err, SipError::Protocol(_)), "{err}");
    a.shutdown().await;
    b.shutdown().await;
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswered_udp_call_is_cancelled() {
    unanswered_call_is_cancelled(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswered_tcp_call_is_cancelled() {
    unanswered_call_is_cancelled(Transport::Tcp).await;
}
