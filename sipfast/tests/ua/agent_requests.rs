//! Requests the agent answers by itself, with sipp as the client: OPTIONS gets 200 with Allow,
//! and an INVITE for a number that is not ours gets 404 (over UDP and TCP).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, SipConfig, Transport};

use crate::support::{DOMAIN, Sipp, init_tracing};

async fn lone_agent() -> SipAgent {
    let (agent, _incoming) = SipAgent::start(SipConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN)).await.unwrap();
    agent
}

async fn sipp_client(scenario: &str, agent: &SipAgent, transport: Transport, service: &str) {
    let remote = agent.local_addr().to_string();
    let sipp = Sipp::start(scenario, transport, &[], &[&remote, "-s", service]).await;
    let messages = tokio::time::timeout(Duration::from_secs(30), sipp.passed()).await.unwrap();
    assert!(!messages.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn options_is_answered_200() {
    init_tracing();
    let agent = lone_agent().await;
    sipp_client("uac_options.xml", &agent, Transport::Udp, "+815012345678").await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_for_another_number_is_404_over_udp() {
    init_tracing();
    let agent = lone_agent().await;
    sipp_client("uac_invite_unknown.xml", &agent, Transport::Udp, "+819900000000").await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_for_another_number_is_404_over_tcp() {
    init_tracing();
    let agent = lone_agent().await;
    sipp_client("uac_invite_unknown.xml", &agent, Transport::Tcp, "+819900000000").await;
    agent.shutdown().await;
}
