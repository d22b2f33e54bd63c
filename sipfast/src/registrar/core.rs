//! The sans-IO heart of the registrar/proxy: bytes and their source in, datagrams and stream
//! writes out, with the transaction state in between. No sockets, no clock of its own: the
//! shell passes [`Now`] with every call and sleeps until [`Core::next_timer`].
//!
//! Transactions (RFC 3261 §17, with RFC 6026's fixes for 2xx):
//! - a *server* transaction per request received, keyed by top Via branch, sent-by and method
//!   (§17.2.3, ACK matching its INVITE): request retransmissions get the last response again,
//!   and a non-2xx final answer to an INVITE over UDP is retransmitted until its ACK (Timer G,
//!   Timer H);
//! - a *client* transaction per request forwarded, keyed by our branch and method: requests
//!   over UDP are retransmitted (Timers A and E), an INVITE without a final answer ends with
//!   `408` upstream (Timer B, or Timer C after a provisional, with a CANCEL downstream), a
//!   non-2xx final answer is ACKed hop by hop (§17.1.1.3).
//!
//! The request handlers live beside this file: [`super::register`] (REGISTER) and
//! [`super::proxy`] (everything else, and the responses coming back).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};
use rsipstack::sip::{Header, Request, Response, SipMessage};
use tracing::{debug, trace, warn};

use super::digest::Nonces;
use super::locations::Locations;
use super::message::{self, Peer, Transport};

/// RFC 3261 §17.1.1.1 timer values.
pub(crate) const T1: Duration = Duration::from_millis(500);
pub(crate) const T2: Duration = Duration::from_secs(4);
/// How long a finished transaction is kept to absorb retransmissions (64*T1: Timers B, D,
/// F, H, J and RFC 6026's Timer L/M).
pub(crate) const LINGER: Duration = Duration::from_secs(32);
/// Timer I / K: how long a confirmed INVITE server transaction absorbs ACK retransmissions.
const T4: Duration = Duration::from_secs(5);

/// The current time, passed in by the shell (or a test).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// For transaction timers.
    pub(crate) at: Instant,
    /// For binding lifetimes and nonces.
    pub(crate) wall: SystemTime,
}

impl Now {
    pub(crate) fn current() -> Self {
        Now { at: Instant::now(), wall: SystemTime::now() }
    }
}

/// Something to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    /// Where: a UDP address, or for TCP the connection to reuse while it is open.
    pub(crate) to: Peer,
    /// For TCP, where to connect when no connection to `to.addr` is open.
    pub(crate) connect: SocketAddr,
    /// The message.
    pub(crate) data: Vec<u8>,
    /// The client transaction to fail if this cannot be sent ([`Core::on_send_failed`]).
    pub(crate) client: Option<ClientKey>,
}

/// Settings of the core, derived from the public configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The address we listen on, advertised in Via and Record-Route.
    pub(crate) local: SocketAddr,
    /// Our SIP domain: also the digest realm.
    pub(crate) domain: String,
    /// Configured users by normalised number, with their password (`None`: no challenge).
    /// Empty: registration is open to anyone, unauthenticated.
    pub(crate) users: HashMap<String, Option<String>>,
    /// Country code for [`super::normalize_number`].
    pub(crate) country_code: String,
    pub(crate) min_expires: u32,
    pub(crate) max_expires: u32,
    pub(crate) default_expires: u32,
    /// Timer C: how long a ringing INVITE may stay unanswered.
    pub(crate) invite_timeout: Duration,
    /// `Server` header of our own responses.
    pub(crate) server: String,
}

/// `(branch, sent-by, method)` of a server transaction; ACK uses INVITE (§17.2.3).
pub(crate) type ServerKey = (String, String, String);
/// `"<our branch> <METHOD>"` of a client transaction.
pub(crate) type ClientKey = String;

/// A request we received and are answering or forwarding.
#[derive(Debug)]
pub(crate) struct ServerTx {
    /// As received, with `received`/`rport` stamped on its top Via.
    pub(crate) request: Request,
    pub(crate) source: Peer,
    /// Status and bytes of the last response sent upstream.
    pub(crate) last: Option<(u16, Vec<u8>)>,
    /// The To tag of our own final answers.
    pub(crate) tag: String,
    /// The branch we forwarded it on.
    pub(crate) client: Option<ClientKey>,
    /// Timer G: next retransmission of a non-2xx final answer to an INVITE over UDP.
    pub(crate) retransmit: Option<(Instant, Duration)>,
    /// When the record is dropped; `None` while no final answer was sent.
    pub(crate) expires: Option<Instant>,
    /// A 2xx to this INVITE went up and its ACK (a transaction of its own, §13.2.2.4) has not
    /// passed yet: a draining shutdown waits for it so the dialog gets established.
    pub(crate) awaiting_ack: bool,
}

/// A request we forwarded downstream.
#[derive(Debug)]
pub(crate) struct ClientTx {
    /// The transaction it was forwarded for (`None` for our own CANCELs).
    pub(crate) server: Option<ServerKey>,
    /// The request as sent: CANCEL and ACK are built from it (§9.1, §17.1.1.3).
    pub(crate) request: Request,
    pub(crate) bytes: Vec<u8>,
    pub(crate) to: Peer,
    pub(crate) connect: SocketAddr,
    /// A provisional response came: a CANCEL may now be sent (§9.1).
    pub(crate) provisional: bool,
    /// The final status received, if any.
    pub(crate) final_status: Option<u16>,
    /// The upstream side asked for a CANCEL.
    pub(crate) cancel: CancelState,
    /// Timers A/E: next retransmission over UDP.
    pub(crate) retransmit: Option<(Instant, Duration)>,
    /// Timers B/F/C while no final response came; then when the record is dropped.
    pub(crate) deadline: Instant,
}

/// Where a client INVITE transaction is with cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelState {
    None,
    /// Asked for before any provisional response: sent when one comes (§9.1).
    Wanted,
    Sent,
}

/// The registrar/proxy state machine. See the module docs.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) settings: Settings,
    pub(crate) locations: Arc<dyn Locations>,
    pub(crate) nonces: Nonces,
    rng: SystemRandom,
    /// Counter for [`Core::token`] instead of the CSPRNG: set only by the fuzzing hook, so a
    /// fuzzer can write responses that match the branches we send.
    counter: Option<AtomicU64>,
    pub(crate) servers: HashMap<ServerKey, ServerTx>,
    pub(crate) clients: HashMap<ClientKey, ClientTx>,
    /// What the current call has to send.
    pub(crate) out: Vec<Transmit>,
    /// Shutting down: new out-of-dialog requests get `503`, dialogs and pending
    /// transactions go on until [`Core::is_idle`].
    pub(crate) draining: bool,
}

impl Core {
    pub(crate) fn new(settings: Settings, locations: Arc<dyn Locations>, nonces: Nonces) -> Self {
        Core {
            settings,
            locations,
            nonces,
            rng: SystemRandom::new(),
            counter: None,
            servers: HashMap::new(),
            clients: HashMap::new(),
            out: Vec::new(),
            draining: false,
        }
    }

    /// One message received from `from` (a datagram, or a frame off a stream).
    pub(crate) fn on_message(&mut self, data: &[u8], from: Peer, now: Now) -> Vec<Transmit> {
        trace!(target: "sipfast::registrar::wire", direction = "in", peer = %from, message = %String::from_utf8_lossy(data));
        match message::parse(data) {
            Ok(SipMessage::Request(req)) => self.on_request(req, from, now),
            Ok(SipMessage::Response(resp)) => self.on_response(resp, from, now),
            // Nothing to answer to: without a parsed Via a response cannot be routed (§18.2.1).
            Err(e) => debug!(peer = %from, error = %e, "unparsable SIP message dropped"),
        }
        std::mem::take(&mut self.out)
    }

    /// Timers due at `now`.
    pub(crate) fn on_timer(&mut self, now: Now) -> Vec<Transmit> {
        let due: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now.at || c.retransmit.is_some_and(|(at, _)| at <= now.at))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.client_timer(&key, now);
        }
        let due: Vec<ServerKey> = self
            .servers
            .iter()
            .filter(|(_, s)| s.expires.is_some_and(|at| at <= now.at) || s.retransmit.is_some_and(|(at, _)| at <= now.at))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(server) = self.servers.get_mut(&key) else { continue };
            if server.expires.is_some_and(|at| at <= now.at) {
                self.servers.remove(&key);
                continue;
            }
            // Timer G: the final answer again, at doubling intervals up to T2 (§17.2.1).
            if let (Some((_, interval)), Some((_, bytes))) = (server.retransmit, &server.last) {
                let transmit = Transmit { to: server.source, connect: server.source.addr, data: bytes.clone(), client: None };
                server.retransmit = Some((now.at + (interval * 2).min(T2), (interval * 2).min(T2)));
                self.out.push(transmit);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// A message for client transaction `key` could not be sent (no route, refused
    /// connection): the request fails upstream with `503` (RFC 3261 §16.7 step 3's local 503
    /// for a transport error, §8.1.3.1).
    pub(crate) fn on_send_failed(&mut self, key: &ClientKey, now: Now) -> Vec<Transmit> {
        if let Some(client) = self.clients.remove(key) {
            warn!(to = %client.to, method = %client.request.method, "cannot send downstream");
            if let (Some(server), None) = (client.server, client.final_status) {
                self.respond(&server, 503, None, Vec::new(), now);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Whether no forwarded request is still waiting for its final answer, and no answered
    /// INVITE for its ACK.
    pub(crate) fn is_idle(&self) -> bool {
        self.clients.values().all(|c| c.server.is_none() || c.final_status.is_some()) && self.servers.values().all(|s| !s.awaiting_ack)
    }

    /// Notes that the ACK of the 2xx to the INVITE with `call_id` and CSeq number `seq` passed.
    pub(crate) fn ack_passed(&mut self, call_id: &str, seq: u32) {
        for server in self.servers.values_mut().filter(|s| s.awaiting_ack) {
            let request = &server.request.headers;
            if message::call_id(request).as_deref() == Some(call_id) && message::cseq(request).is_some_and(|(n, _)| n == seq) {
                server.awaiting_ack = false;
            }
        }
    }

    /// The earliest instant a timer is due, if any.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let clients = self.clients.values().flat_map(|c| [Some(c.deadline), c.retransmit.map(|(at, _)| at)]);
        let servers = self.servers.values().flat_map(|s| [s.expires, s.retransmit.map(|(at, _)| at)]);
        clients.chain(servers).flatten().min()
    }

    fn client_timer(&mut self, key: &ClientKey, now: Now) {
        let Some(client) = self.clients.get_mut(key) else { return };
        if client.deadline <= now.at {
            let client = self.clients.remove(key).unwrap_or_else(|| unreachable!("just looked up"));
            if client.final_status.is_some() || client.server.is_none() {
                return;
            }
            // Timer B/F (no answer at all) or Timer C (ringing too long, §16.8): give up.
            debug!(to = %client.to, method = %client.request.method, provisional = client.provisional, "downstream timed out");
            if client.provisional && client.request.method == rsipstack::sip::Method::Invite && client.cancel != CancelState::Sent {
                self.send_cancel(&client, now);
            }
            if let Some(server) = client.server {
                self.respond(&server, 408, None, Vec::new(), now);
            }
            return;
        }
        if let Some((_, interval)) = client.retransmit {
            // Timer A doubles without bound, Timer E caps at T2 (§17.1.1.2, §17.1.2.2).
            let invite = client.request.method == rsipstack::sip::Method::Invite;
            let next = if invite { interval * 2 } else { (interval * 2).min(T2) };
            client.retransmit = Some((now.at + next, next));
            let transmit = Transmit { to: client.to, connect: client.connect, data: client.bytes.clone(), client: Some(key.clone()) };
            self.out.push(transmit);
        }
    }

    /// Sends our own response `code` to server transaction `key` and records it for
    /// retransmissions; a final one starts the transaction's end (Timers G/H/J).
    pub(crate) fn respond(&mut self, key: &ServerKey, code: u16, reason: Option<&str>, extra: Vec<Header>, now: Now) {
        let Some(server) = self.servers.get(key) else { return };
        let tag = (code > 100).then_some(server.tag.as_str());
        let resp = message::reply(&server.request, code, reason, tag, extra, &self.settings.server);
        self.send_upstream(key, &resp, now);
    }

    /// Sends `resp` (ours or forwarded, its top Via now the upstream's) for server
    /// transaction `key`.
    pub(crate) fn send_upstream(&mut self, key: &ServerKey, resp: &Response, now: Now) {
        let Some(server) = self.servers.get_mut(key) else { return };
        let code = resp.status_code.code();
        let bytes = message::response_bytes(resp);
        let connect = message::top_via(&resp.headers).and_then(|v| message::via_target(&v)).map_or(server.source.addr, |p| p.addr);
        self.out.push(Transmit { to: server.source, connect, data: bytes.clone(), client: None });
        server.last = Some((code, bytes));
        if code >= 200 {
            server.expires = Some(now.at + LINGER);
            let invite = key.2 == "INVITE";
            server.awaiting_ack = invite && code < 300;
            if invite && code >= 300 && server.source.transport == Transport::Udp {
                server.retransmit = Some((now.at + T1, T1));
            }
        }
    }

    /// Queues `bytes` to `to` with no transaction behind it (ACKs, stateless 2xx).
    pub(crate) fn send_plain(&mut self, to: Peer, connect: SocketAddr, data: Vec<u8>) {
        trace!(target: "sipfast::registrar::wire", direction = "out", peer = %to, message = %String::from_utf8_lossy(&data));
        self.out.push(Transmit { to, connect, data, client: None });
    }

    /// A new random token (branch suffix, tag): 64 bits from the system CSPRNG, hex.
    pub(crate) fn token(&self) -> String {
        if let Some(counter) = &self.counter {
            return format!("{:016x}", counter.fetch_add(1, Ordering::Relaxed));
        }
        let mut bytes = [0u8; 8];
        // Only fails without any OS entropy source; the clock then still varies the token.
        if self.rng.fill(&mut bytes).is_err() {
            bytes = (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64).to_be_bytes();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Makes [`Core::token`] count from 0 instead of drawing random values (fuzzing only:
    /// branches and tags are then predictable, which is what a fuzzer needs and a proxy must
    /// not have).
    pub(crate) fn use_counter_tokens(&mut self) {
        self.counter = Some(AtomicU64::new(0));
    }

    /// Whether `uri` names this proxy: our address (port 5060 when absent), or our domain
    /// with no port or ours (the reference config's `myself`).
    pub(crate) fn is_myself(&self, uri: &rsipstack::sip::Uri) -> bool {
        let port = uri.host_with_port.port.as_ref().map(|p| p.value());
        let local = self.settings.local;
        match &uri.host_with_port.host {
            rsipstack::sip::Host::IpAddr(ip) => *ip == local.ip() && port.unwrap_or(5060) == local.port(),
            rsipstack::sip::Host::Domain(d) => {
                d.to_string().eq_ignore_ascii_case(&self.settings.domain) && port.is_none_or(|p| p == local.port())
            }
        }
    }

    /// A server transaction for a new request.
    pub(crate) fn open_server(&mut self, key: ServerKey, request: Request, source: Peer) {
        let tag = self.token();
        self.servers
            .insert(key, ServerTx { request, source, last: None, tag, client: None, retransmit: None, expires: None, awaiting_ack: false });
    }

    /// Sends `request` downstream as a new client transaction; returns its key.
    pub(crate) fn open_client(
        &mut self,
        branch: &str,
        server: Option<ServerKey>,
        request: Request,
        to: Peer,
        connect: SocketAddr,
        now: Now,
    ) -> ClientKey {
        let key = format!("{branch} {}", request.method);
        let bytes = request.to_bytes();
        trace!(target: "sipfast::registrar::wire", direction = "out", peer = %to, message = %String::from_utf8_lossy(&bytes));
        self.out.push(Transmit { to, connect, data: bytes.clone(), client: Some(key.clone()) });
        let retransmit = (to.transport == Transport::Udp).then_some((now.at + T1, T1));
        let client = ClientTx {
            server,
            request,
            bytes,
            to,
            connect,
            provisional: false,
            final_status: None,
            cancel: CancelState::None,
            retransmit,
            deadline: now.at + LINGER,
        };
        self.clients.insert(key.clone(), client);
        key
    }

    /// Drops a server transaction that needs no more than it got (CANCEL 200 etc. keep
    /// theirs through [`Core::respond`]).
    pub(crate) fn confirm_ack(&mut self, key: &ServerKey, now: Now) {
        if let Some(server) = self.servers.get_mut(key) {
            // Timer I: absorb ACK retransmissions for a while, stop Timer G.
            server.retransmit = None;
            server.expires = Some(now.at + T4);
        }
    }
}
