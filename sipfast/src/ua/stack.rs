//! Wiring of the rsipstack endpoint: listeners, transaction layer, dialog layer, and the
//! addresses and URIs every other `ua` module builds its requests from.
//!
//! Invariants:
//! - the UDP socket and the TCP listener share one port, so one Contact host:port serves both
//!   (RFC 3261 §18.1: a UA should listen on UDP and TCP alike);
//! - every task the agent spawns watches [`Shared::cancel`], which is cancelled on shutdown
//!   and when the last [`super::SipAgent`] clone is dropped, so nothing outlives the agent;
//! - tasks hold [`Shared`], never [`Stack`], so dropping the agent does end it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{self as rsip, SipMessage};
use rsipstack::transaction::endpoint::{EndpointInner, EndpointOption, MessageInspector, TargetLocator};
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio::sync::{Mutex, mpsc};
use tracing::{info, trace, warn};

use super::{Incoming, SipConfig, SipError, Transport, incoming, keepalive, register};

/// How many incoming calls may wait on the channel before new ones are answered `486`.
const INCOMING_QUEUE: usize = 16;
/// Attempts at finding a port free for both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 20;
/// Bound on each shutdown step (un-REGISTER, BYE), so shutdown never hangs on a dead peer.
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// What the agent's tasks share.
pub(crate) struct Shared {
    pub(crate) config: SipConfig,
    /// The advertised local address (Via, Contact); UDP and TCP share its port.
    pub(crate) local: SocketAddr,
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) cancel: CancellationToken,
    /// Until when each of our numbers is registered (the registrar's granted lifetime from its
    /// last `2xx`), for [`super::SipAgent::registrations`].
    pub(crate) registered: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The agent behind [`super::SipAgent`].
pub(crate) struct Stack {
    pub(crate) shared: Arc<Shared>,
    pub(crate) local: SocketAddr,
    bindings: Mutex<Vec<register::Binding>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipAgent").field("local", &self.local).field("domain", &self.shared.config.domain).finish()
    }
}

impl Shared {
    /// Note that `number` is registered for `granted` from now, or no longer (`None`).
    pub(crate) fn set_registered(&self, number: &str, granted: Option<Duration>) {
        let mut registered = self.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match granted {
            Some(granted) => registered.insert(number.to_owned(), std::time::Instant::now() + granted),
            None => registered.remove(number),
        };
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

impl Stack {
    pub(crate) async fn start(config: SipConfig) -> Result<(Arc<Stack>, mpsc::Receiver<Incoming>), SipError> {
        let cancel = CancellationToken::new();
        let (udp, local) = bind(config.bind, &cancel).await?;
        if local.ip().is_unspecified() {
            // rsipstack replaces a wildcard with the first non-loopback interface address (else
            // 127.0.0.1), but keeps the wildcard when it cannot list the interfaces (a netlink
            // socket, which a sandbox may forbid); every Contact and Via would then say 0.0.0.0
            // and no call could reach us.
            let why = "the interfaces cannot be listed to find an address to advertise for this wildcard \
                       (a sandbox without AF_NETLINK?); listen on this host's own address instead";
            return Err(SipError::Bind { addr: config.bind, source: std::io::Error::other(why) });
        }
        let transport_layer = TransportLayer::new(cancel.child_token());
        // An unspecified bind address cannot go into a Contact: advertise the address the UDP
        // socket resolved it to (rsipstack picks the first non-loopback interface).
        let external = config.bind.ip().is_unspecified().then_some(local);
        let tcp = TcpListenerConnection::new(SocketAddr::new(config.bind.ip(), local.port()), external)
            .await
            .map_err(|e| SipError::Bind { addr: config.bind, source: std::io::Error::other(e.to_string()) })?;
        transport_layer.add_transport(udp.into());
        transport_layer.add_transport(tcp.into());

        // Call-IDs as `<uuid>@<our address>` (RFC 3261 §8.1.1.4), not rsipstack's vendor suffix.
        let option = EndpointOption { callid_suffix: Some(local.ip().to_string()), ..EndpointOption::default() };
        let endpoint = EndpointBuilder::new()
            .with_option(option)
            .with_user_agent(&config.user_agent)
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_allows(vec![rsip::Method::Invite, rsip::Method::Ack, rsip::Method::Bye, rsip::Method::Cancel, rsip::Method::Options])
            .with_inspector(Box::new(WireLog))
            .with_target_locator(Box::new(ProxyLocator::new(&config)))
            .build();
        let transactions = endpoint.incoming_transactions().map_err(|e| SipError::Protocol(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        tokio::spawn(async move { endpoint.serve().await });
        info!(%local, transport = ?config.transport, proxy = ?config.proxy, domain = %config.domain, "sip listener on UDP and TCP");

        let shared = Arc::new(Shared { config, local, dialogs, cancel, registered: Default::default() });
        let (calls, incoming) = mpsc::channel(INCOMING_QUEUE);
        tokio::spawn(incoming::dispatch(shared.clone(), transactions, calls));
        keepalive::spawn(shared.clone());

        let stack = Arc::new(Stack { shared: shared.clone(), local, bindings: Mutex::new(Vec::new()) });
        // On error `stack` is dropped here, which cancels every task started above.
        let bindings = register::start_all(&shared).await?;
        *stack.bindings.lock().await = bindings;
        info!(%local, numbers = shared.config.numbers.len(), "sip agent ready");
        Ok((stack, incoming))
    }

    /// Un-REGISTER, BYE what is still up, stop the endpoint.
    pub(crate) async fn shutdown(&self) {
        let bindings = std::mem::take(&mut *self.bindings.lock().await);
        register::stop_all(bindings, SHUTDOWN_STEP).await;
        let dialogs = &self.shared.dialogs;
        for id in dialogs.all_dialog_ids() {
            if let Some(dialog) = dialogs.get_dialog_with(&id) {
                if tokio::time::timeout(SHUTDOWN_STEP, dialog.hangup()).await.is_err() {
                    warn!(dialog = %id, "hangup at shutdown timed out");
                }
                dialogs.remove_dialog(&dialog.id());
            }
        }
        self.shared.cancel.cancel();
        info!(local = %self.local, "sip agent stopped");
    }
}

impl Shared {
    pub(crate) fn endpoint(&self) -> &Arc<EndpointInner> {
        &self.dialogs.endpoint
    }

    pub(crate) fn sip_transport(&self) -> rsip::Transport {
        match self.config.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
        }
    }

    /// Where our requests go: the outbound proxy, else the domain itself (RFC 3261 §8.1.2).
    // rsipstack's own error (over 128 bytes) travels back into rsipstack calls; boxing it gains nothing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn next_hop(&self) -> Result<SipAddr, rsipstack::Error> {
        let addr = match self.config.proxy {
            Some(proxy) => SipAddr::from(proxy),
            None => SipAddr::from(rsip::HostWithPort::try_from(self.config.domain.as_str())?),
        };
        Ok(SipAddr { r#type: Some(self.sip_transport()), ..addr })
    }

    /// Our Contact for `user` on `transport`: the shared listener address, with
    /// `;transport=tcp` for TCP so the peer opens a TCP connection to us (RFC 3261 §19.1.1).
    // rsipstack's own error (over 128 bytes) travels back into rsipstack calls; boxing it gains nothing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn contact(&self, user: &str, transport: rsip::Transport) -> Result<rsip::Uri, rsipstack::Error> {
        let suffix = if transport == rsip::Transport::Tcp { ";transport=tcp" } else { "" };
        Ok(rsip::Uri::try_from(format!("sip:{user}@{}{suffix}", self.local).as_str())?)
    }

    /// The caller of the calls we place: our first number, with its credential.
    pub(crate) fn caller(&self) -> (String, Option<Credential>) {
        match self.config.numbers.first() {
            Some(reg) => (reg.user.clone(), credential(reg)),
            None => ("sipmta".to_string(), None),
        }
    }

    /// Whether `user` (a Request-URI user part) is one of our numbers.
    pub(crate) fn is_ours(&self, user: &str) -> bool {
        self.config.numbers.iter().any(|reg| reg.user == user)
    }
}

/// The digest credential of a registration, if it has a password (RFC 3261 §22.2).
pub(crate) fn credential(reg: &super::Registration) -> Option<Credential> {
    let password = reg.password.clone()?;
    Some(Credential { username: reg.user.clone(), password, realm: None, auth_username: None })
}

/// Binds the UDP socket and checks the TCP port is free on the same address; with port 0,
/// retries until one port is free for both. rsipstack binds the TCP listener itself later, in
/// `Endpoint::serve`, and only logs a failure there: the check here turns it into an error.
async fn bind(addr: SocketAddr, cancel: &CancellationToken) -> Result<(UdpConnection, SocketAddr), SipError> {
    let bind_error = |source| SipError::Bind { addr, source };
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpConnection::create_connection(addr, None, Some(cancel.child_token()))
            .await
            .map_err(|e| bind_error(std::io::Error::other(e.to_string())))?;
        let local = udp.get_addr().get_socketaddr().map_err(|e| bind_error(std::io::Error::other(e.to_string())))?;
        match std::net::TcpListener::bind(SocketAddr::new(addr.ip(), local.port())) {
            Ok(probe) => {
                drop(probe);
                return Ok((udp, local));
            }
            Err(e) if addr.port() != 0 => return Err(bind_error(e)),
            Err(_) => continue,
        }
    }
    Err(bind_error(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no port free for both UDP and TCP")))
}

/// Logs every SIP message the stack sends or hands up, at `trace` (STYLE 9: raw protocol at
/// trace). Retransmissions the transaction layer absorbs are not seen here.
struct WireLog;

impl MessageInspector for WireLog {
    fn before_send(&self, msg: SipMessage, dest: Option<&SipAddr>) -> SipMessage {
        trace!(target: "sipfast::ua::wire", direction = "out", peer = ?dest.map(ToString::to_string), message = %msg);
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        trace!(target: "sipfast::ua::wire", direction = "in", peer = ?from.map(ToString::to_string), message = %msg);
        msg
    }
}

/// Sends requests for our domain to the outbound proxy. rsipstack consults the locator for
/// requests that have no preset destination and no Route: the INVITE and REGISTER carry the
/// proxy as their destination, but the CANCEL of an INVITE is built from the INVITE's
/// Request-URI alone, and over UDP (no flow to reuse) it would go to the domain's DNS
/// address instead of where the INVITE went (RFC 3261 §9.1 requires the same destination).
struct ProxyLocator {
    domain: String,
    proxy: Option<SipAddr>,
}

impl ProxyLocator {
    fn new(config: &SipConfig) -> Self {
        let transport = match config.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
        };
        let proxy = config.proxy.map(|proxy| SipAddr { r#type: Some(transport), ..SipAddr::from(proxy) });
        ProxyLocator { domain: config.domain.to_ascii_lowercase(), proxy }
    }

    // rsipstack's own error (over 128 bytes) travels back into rsipstack calls; boxing it gains nothing.
    #[allow(clippy::result_large_err)]
    fn locate_now(&self, uri: &rsip::Uri) -> rsipstack::Result<SipAddr> {
        match &self.proxy {
            Some(proxy) if uri.host_with_port.host.to_string().eq_ignore_ascii_case(&self.domain) => Ok(proxy.clone()),
            _ => SipAddr::try_from(uri),
        }
    }
}

/// The trait is declared with `#[async_trait]`; this is its expansion, written out so that the
/// crate does not need the macro for one synchronous lookup.
impl TargetLocator for ProxyLocator {
    fn locate<'life0, 'life1, 'async_trait>(
        &'life0 self,
        uri: &'life1 rsip::Uri,
    ) -> Pin<Box<dyn Future<Output = rsipstack::Result<SipAddr>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let located = self.locate_now(uri);
        Box::pin(async move { located })
    }
}
