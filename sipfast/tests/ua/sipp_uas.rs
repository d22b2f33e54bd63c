//! sipp as the remote user agent, reached directly (it is the agent's outbound proxy): final
//! rejections map to `Rejected` with their code, no answer ends in `Timeout` with a CANCEL the
//! peer sees, and a 2xx returns the answer, is ACKed, and ends with our BYE or the peer's.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{CallError, SipAgent, Transport};

use crate::support::{B, Sipp, agent_config, init_tracing, sdp};

async fn agent_towards(sipp: &Sipp, transport: Transport) -> SipAgent {
    let (agent, _incoming) = SipAgent::start(agent_config(transport, sipp.addr, &[], None)).await.unwrap();
    agent
}

async fn rejected_with(code: u16, reason: &str) {
    init_tracing();
    let code_text = code.to_string();
    let sipp = Sipp::start_template("uas_reject.xml", &[("__CODE__", &code_text)], Transport::Udp, &[("reason", reason)], &[]).await;
    let agent = agent_towards(&sipp, Transport::Udp).await;
    let err = agent.call(B, &sdp(40001, "actpass"), Duration::from_secs(10)).await.unwrap_err();
    assert!(matches!(&err, CallError::Rejected { code: c, .. } if *c == code), "{err}");
    sipp.passed().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_is_rejected_404() {
    rejected_with(404, "Not Found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_is_rejected_486() {
    rejected_with(486, "Busy Here").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_acceptable_is_rejected_488() {
    rejected_with(488, "Not Acceptable Here").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_is_rejected_503() {
    rejected_with(503, "Service Unavailable").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_answer_within_the_budget_is_cancelled() {
    init_tracing();
    let sipp = Sipp::start("uas_no_answer.xml", Transport::Udp, &[], &[]).await;
    let agent = agent_towards(&sipp, Transport::Udp).await;
    let started = std::time::Instant::now();
    let err = agent.call(B, &sdp(40001, "actpass"), Duration::from_millis(500)).await.unwrap_err();
    assert_eq!(err, CallError::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(500));
    // The scenario only passes if the CANCEL came and our ACK of its 487 followed.
    let messages = sipp.passed().await;
    assert!(messages.contains("CANCEL sip:"), "sipp saw the CANCEL");
    agent.shutdown().await;
}

async fn answered(transport: Transport) {
    init_tracing();
    let sipp = Sipp::start("uas_answer.xml", transport, &[("app_port", "7100")], &[]).await;
    let agent = agent_towards(&sipp, transport).await;
    let call = agent.call(B, &sdp(40001, "actpass"), Duration::from_secs(10)).await.unwrap();
    assert!(call.answer_sdp.contains("m=application 7100 TCP smtp"), "{}", call.answer_sdp);
    assert!(!call.is_ended());
    call.hangup().await.unwrap();
    // The scenario only passes if the ACK of the 200 and then the BYE came.
    let messages = sipp.passed().await;
    assert!(messages.contains("ACK sip:"), "sipp saw the ACK");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answered_over_udp() {
    answered(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answered_over_tcp() {
    answered(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bye_from_the_callee_ends_the_call() {
    init_tracing();
    let sipp = Sipp::start("uas_answer_then_bye.xml", Transport::Udp, &[("app_port", "7100")], &[]).await;
    let agent = agent_towards(&sipp, Transport::Udp).await;
    let call = agent.call(B, &sdp(40001, "actpass"), Duration::from_secs(10)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), call.ended()).await.expect("the callee's BYE ends the call");
    sipp.passed().await;
    // Hanging up an ended call sends nothing and is fine.
    call.hangup().await.unwrap();
    agent.shutdown().await;
}
