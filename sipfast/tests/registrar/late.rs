//! A registrar that is not up when the agent starts (a reboot, Kamailio restarting) must not
//! keep the mail server down: the start goes on without the registration, which is retried
//! with back-off until the registrar answers. A refusal, by contrast, still fails the start
//! (refusals.rs): that is a configuration error.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use sipfast::registrar::RegistrarConfig;
use sipfast::ua::{SipAgent, Transport};

use crate::support::{A, DOMAIN, TestRegistrar, agent_config, free_port, init_tracing, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_starts_without_its_registrar_and_registers_when_it_comes_up() {
    init_tracing();
    // Nothing listens here yet: the TCP connect is refused (and retried by the stack).
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (agent, _incoming) = SipAgent::start(agent_config(Transport::Tcp, addr, &[A], None)).await.unwrap();

    let registrar = TestRegistrar::with_config(RegistrarConfig::new(addr, DOMAIN)).await;
    wait_for("the retried REGISTER to reach the registrar", || registrar.bindings(A) == 1).await;

    // Registered as usual: the shutdown's Expires: 0 removes the binding again.
    agent.shutdown().await;
    assert_eq!(registrar.bindings(A), 0);
}
