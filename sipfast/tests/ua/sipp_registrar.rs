//! sipp as the registrar: the first REGISTER is granted 2 s, the agent refreshes at half of
//! that, and shutdown removes the binding with `Expires: 0` (the scenario checks all three).

#![allow(clippy::unwrap_used)]

use sipfast::ua::{SipAgent, Transport};

use crate::support::{A, Sipp, agent_config, init_tracing, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn refresh_at_half_the_granted_expiry_and_unregister_on_shutdown() {
    init_tracing();
    let sipp = Sipp::start("registrar.xml", Transport::Udp, &[], &[]).await;
    let (agent, _incoming) = SipAgent::start(agent_config(Transport::Udp, sipp.addr, &[A], None)).await.unwrap();
    // The refresh is due 1 s after the first registration; wait for sipp to have answered it.
    wait_for("the refresh to be answered", || sipp.messages().matches("expires=3600").count() >= 1).await;
    agent.shutdown().await;
    let messages = sipp.passed().await;
    assert_eq!(messages.matches("REGISTER sip:sip.example SIP/2.0").count(), 3, "register, refresh, removal");
}
