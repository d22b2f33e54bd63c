//! OPTIONS through the registrar/proxy (issue 7 item 4): a capability query for a registered
//! number reaches its agent, which answers with the protocols it accepts. sipp asks as a
//! foreign user agent (over UDP and TCP) and checks the answer's headers and SDP; our own agent
//! probes another, directly at a located URI too, and gets the proxy's 480 and 404 for numbers
//! that are configured but not registered or not known, and the agent's own 404 for a number
//! that is not its.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, SipConfig, Transport};

use crate::support::{A, B, C, PASSWORD, Sipp, TestRegistrar, agent_config, init_tracing};

const BUDGET: Duration = Duration::from_secs(10);

fn describing(transport: Transport, registrar: &TestRegistrar, number: &str) -> SipConfig {
    let mut config = agent_config(transport, registrar.addr(), &[number], Some(PASSWORD));
    config.protocols = vec!["smtp".into(), "http".into()];
    config
}

async fn sipp_asks_an_agent(transport: Transport) {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    let (b, _b_incoming) = SipAgent::start(describing(transport, &registrar, B)).await.unwrap();
    let remote = registrar.addr().to_string();
    let sipp = Sipp::start("uac_options_sdp.xml", transport, &[], &[&remote, "-s", "050-8765-4321"]).await;
    let messages = sipp.passed().await;
    assert!(messages.contains("m=application 0 TCP smtp http\r\n"), "{messages}");
    // A description of capabilities, not an offer: no connection attributes.
    assert!(!messages.contains("a=setup") && !messages.contains("a=fp-token"), "{messages}");
    b.shutdown().await;
    registrar.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_asks_an_agent_through_the_registrar_over_udp() {
    sipp_asks_an_agent(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_asks_an_agent_through_the_registrar_over_tcp() {
    sipp_asks_an_agent(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_probe_each_other_through_the_registrar_and_directly() {
    init_tracing();
    let registrar = TestRegistrar::start(true).await;
    let (a, _a_incoming) = SipAgent::start(agent_config(Transport::Udp, registrar.addr(), &[A], Some(PASSWORD))).await.unwrap();
    let (b, _b_incoming) = SipAgent::start(describing(Transport::Tcp, &registrar, B)).await.unwrap();
    let theirs = vec!["smtp".to_owned(), "http".to_owned()];
    assert_eq!(a.probe(B, BUDGET).await, Ok(theirs.clone()));
    assert_eq!(a.probe(C, BUDGET).await.unwrap_err().code(), Some(480), "configured, not registered");
    assert_eq!(a.probe("+819099998888", BUDGET).await.unwrap_err().code(), Some(404), "not known");
    // At a URI a locator found (static map, ENUM): straight to B's agent, over its transport.
    let at = b.local_addr();
    assert_eq!(a.probe_uri(B, &format!("sip:{B}@{at};transport=tcp"), at, BUDGET).await, Ok(theirs));
    let not_b = a.probe_uri(C, &format!("sip:{C}@{at}"), at, BUDGET).await.unwrap_err();
    assert_eq!(not_b.code(), Some(404), "B's agent does not answer for C: {not_b}");
    a.shutdown().await;
    b.shutdown().await;
    registrar.handle.shutdown().await;
}
