//! CRLF keep-alive on the TCP flow to the outbound proxy (RFC 5626 §4.4.1, §3.5.1).
//!
//! Every [`super::SipConfig::keepalive`] the agent writes a double CRLF ("ping") on its TCP
//! connection to the proxy, opening it if needed, so the proxy's connection (and any NAT
//! binding on the way) stays up and the proxy can deliver INVITEs over it. rsipstack answers
//! pings it receives and swallows the single-CRLF pongs; it does not send pings itself. As
//! the pongs never reach us, a dead flow shows up as a failed write: the connection is then
//! retired so the next request or ping opens a new one.

use std::sync::Arc;

use rsipstack::sip as rsip;
use rsipstack::transport::connection::KEEPALIVE_REQUEST;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use tracing::{trace, warn};

use super::Transport;
use super::stack::Shared;

/// Starts the keep-alive task when the agent talks TCP to a proxy and keep-alive is on.
pub(super) fn spawn(shared: Arc<Shared>) {
    let Some(proxy) = shared.config.proxy else {
        return;
    };
    let interval = shared.config.keepalive;
    if shared.config.transport != Transport::Tcp || interval.is_zero() {
        return;
    }
    let target = SipAddr { r#type: Some(rsip::Transport::Tcp), ..SipAddr::from(proxy) };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shared.cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            ping(&shared, &target).await;
        }
    });
}

async fn ping(shared: &Shared, target: &SipAddr) {
    let transport_layer = &shared.endpoint().transport_layer;
    let connection = match transport_layer.lookup(target, None).await {
        Ok((SipConnection::Tcp(connection), _)) => connection,
        Ok(_) => return,
        Err(e) => {
            warn!(proxy = %target, error = %e, "cannot reach the proxy for a keep-alive");
            return;
        }
    };
    match connection.send_raw(KEEPALIVE_REQUEST).await {
        Ok(()) => trace!(target: "sipfast::ua::wire", direction = "out", peer = %target, "CRLF keep-alive"),
        Err(e) => {
            warn!(proxy = %target, error = %e, "keep-alive write failed; dropping the connection");
            transport_layer.remove_connection(&SipConnection::Tcp(connection));
        }
    }
}
