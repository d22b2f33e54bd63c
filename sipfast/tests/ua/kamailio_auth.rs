//! Kamailio with digest authentication (`WITH_AUTH`, and `sip.example` as its own domain so
//! our INVITEs are challenged too): registration and the call authenticate, a wrong password
//! fails start with 401, B hangs up and A sees it, and after A's shutdown its binding is gone
//! (B's call to A gets Kamailio's 404).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{CallError, SipAgent, SipError, Transport};

use crate::support::{A, B, Kamailio, PASSWORD, agent_config, init_tracing, sdp};

#[tokio::test(flavor = "multi_thread")]
async fn digest_auth_over_udp() {
    digest_auth_call_bye_from_callee_and_unregister_on_shutdown(Transport::Udp).await;
}

/// Over TCP the 401's `received`/`rport` make rsipstack register the flow's own address
/// (RFC 3581), so Kamailio delivers the INVITE over B's registration connection.
#[tokio::test(flavor = "multi_thread")]
async fn digest_auth_over_tcp() {
    digest_auth_call_bye_from_callee_and_unregister_on_shutdown(Transport::Tcp).await;
}

async fn digest_auth_call_bye_from_callee_and_unregister_on_shutdown(transport: Transport) {
    init_tracing();
    let kamailio = Kamailio::start(&["WITH_AUTH", "TEST_DOMAIN_ALIAS=sip.example"]).await;

    let refused = SipAgent::start(agent_config(transport, kamailio.addr, &[A], Some("wrong"))).await.unwrap_err();
    assert!(matches!(&refused, SipError::Register { number, code: 401, .. } if number == A), "{refused}");

    let (a, _a_incoming) = SipAgent::start(agent_config(transport, kamailio.addr, &[A], Some(PASSWORD))).await.unwrap();
    let (b, mut b_incoming) = SipAgent::start(agent_config(transport, kamailio.addr, &[B], Some(PASSWORD))).await.unwrap();

    let callee = tokio::spawn(async move {
        let incoming = b_incoming.recv().await.unwrap();
        incoming.accept(&sdp(40002, "passive")).await.unwrap()
    });
    let call = a.call(B, &sdp(40001, "actpass"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(call.answer_sdp, sdp(40002, "passive"));
    let b_call = callee.await.unwrap();

    // BYE from the callee's side ends the caller's call.
    b_call.hangup().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), call.ended()).await.expect("A sees B's BYE");
    assert!(call.is_ended());

    let log = kamailio.log();
    assert!(log.contains("method:  <INVITE>"), "Kamailio's log shows the INVITE");

    // A's shutdown removes its binding: Kamailio no longer finds A.
    a.shutdown().await;
    let after = b.call(A, &sdp(40003, "actpass"), Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(after.code(), Some(404), "{after}");
    assert!(matches!(after, CallError::Rejected { .. }));
    b.shutdown().await;
}
