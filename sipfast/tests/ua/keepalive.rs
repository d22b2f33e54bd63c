//! CRLF keep-alive (RFC 5626 §4.4.1): an agent on TCP with a proxy opens the flow and pings it
//! with a double CRLF every interval. The "proxy" here is a bare TCP listener that reads them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sipfast::ua::{SipAgent, SipConfig, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{DOMAIN, init_tracing};

#[tokio::test(flavor = "multi_thread")]
async fn tcp_flow_to_the_proxy_gets_double_crlf_pings() {
    init_tracing();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = SipConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN);
    config.transport = Transport::Tcp;
    config.proxy = Some(proxy.local_addr().unwrap());
    config.keepalive = Duration::from_millis(100);
    let (agent, _incoming) = SipAgent::start(config).await.unwrap();

    let (mut flow, _) = tokio::time::timeout(Duration::from_secs(10), proxy.accept()).await.unwrap().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while seen.len() < 8 {
        let n = tokio::time::timeout(Duration::from_secs(10), flow.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the agent closed the flow");
        seen.extend_from_slice(&buf[..n]);
        // Pong each ping (RFC 5626 §4.4.1) as a proxy would.
        flow.write_all(b"\r\n").await.unwrap();
    }
    assert_eq!(&seen[..8], b"\r\n\r\n\r\n\r\n", "two pings and nothing else");
    agent.shutdown().await;
}
