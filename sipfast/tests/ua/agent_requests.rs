//! Requests the agent answers by itself, with sipp as the client: OPTIONS for the agent itself
//! gets 200 with Allow, OPTIONS and INVITE for a number that is not ours get 404 (RFC 3261
//! §11.2: OPTIONS is answered as an INVITE would be; INVITE over UDP and TCP).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, SipConfig, Transport};

use crate::support::{DOMAIN, Sipp, init_tracing};

async fn lone_agent() -> SipAgent {
    let (agent, _incoming) = SipAgent::start(SipConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN)).await.unwrap();
    agent
}

async fn sipp_client(scenario: &str, agent: &SipAgent, transport: Transport, service: &str) -> String {
    sipp_client_template(scenario, &[], agent, transport, service).await
}

async fn sipp_client_template(scenario: &str, replace: &[(&str, &str)], agent: &SipAgent, transport: Transport, service: &str) -> String {
    let remote = agent.local_addr().to_string();
    let sipp = Sipp::start_template(scenario, replace, transport, &[], &[&remote, "-s", service]).await;
    let messages = tokio::time::timeout(Duration::from_secs(30), sipp.passed()).await.unwrap();
    assert!(!messages.is_empty());
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn options_for_the_agent_itself_is_answered_200() {
    init_tracing();
    let agent = lone_agent().await;
    // No user part: `OPTIONS sip:127.0.0.1:<port>`, a query of the agent itself (a proxy's ping).
    let messages = sipp_client_template("uac_options.xml", &[("[service]@", "")], &agent, Transport::Udp, "unused").await;
    assert!(messages.contains(&format!("OPTIONS sip:{} SIP/2.0", agent.local_addr())), "{messages}");
    // This agent describes no protocols: no SDP.
    assert!(!messages.contains("Content-Type: application/sdp") && !messages.contains("m=application"), "{messages}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn options_for_another_number_is_404() {
    init_tracing();
    let agent = lone_agent().await;
    sipp_client("uac_options_unknown.xml", &agent, Transport::Udp, "+815012345678").await;
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
