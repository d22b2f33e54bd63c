//! The proxy side of the core (RFC 3261 §16): requests routed to registered contacts or along
//! their Route set, responses routed back along the Via, CANCEL and hop-by-hop ACK.
//!
//! Routing follows the reference Kamailio configuration:
//! - REGISTER goes to the registrar ([`super::register`]) whatever its Request-URI;
//! - a request with a To tag is in a dialog (§12.2): it must carry a Route naming us (our
//!   Record-Route, §16.4), which is removed, and it then goes to the next Route or the
//!   Request-URI; without one it is answered `404 Not here` (ACKs are dropped);
//! - any other request loses its Route headers, its Request-URI user is normalised to E.164
//!   and looked up whatever the host (usrloc's `use_domain=0`), and: OPTIONS for us with no user gets `200` with `Allow` (§11.2), no user gets `484`, a
//!   user with a live binding is forwarded to the most recent one, a configured user without
//!   one gets `480`, anyone else `404`. INVITE (and SUBSCRIBE) get our Record-Route with `lr`
//!   (§16.6 step 4), twice with each transport when the two legs differ (RFC 5658);
//! - forwarding decrements Max-Forwards (`483` at 0, §16.3 step 3) and adds our Via with a
//!   fresh branch (§16.6 step 8); INVITE is answered `100 Trying` at once (§16.2).
//!
//! Responses (§16.7): the top Via must be ours; `100` is absorbed, other provisional and every
//! 2xx are passed on, the first final non-2xx is passed on and ACKed downstream. A 2xx with
//! no transaction left (a retransmission) is still passed on along the Via (RFC 6026).
//! Only one branch is tried per request: the proxy does not fork.

use rsipstack::sip::{self as rsip, Header, Method, Request, Response};
use tracing::{debug, info};

use super::core::{CancelState, ClientTx, Core, Now, ServerKey};
use super::message::{self, Peer, Transport};
use super::number::normalize_number;

/// Methods answered in `Allow` (§20.5): what this proxy routes.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER";

impl Core {
    pub(crate) fn on_request(&mut self, mut req: Request, from: Peer, now: Now) {
        message::stamp_received(&mut req.headers, from.addr);
        let Some(via) = message::top_via(&req.headers) else {
            debug!(peer = %from, "request without Via dropped");
            return;
        };
        let sent_by = via.uri.host_with_port.to_string();
        // Without an RFC 3261 branch the Via itself stands in for the transaction id.
        let branch = message::branch(&via).unwrap_or_else(|| via.to_string());
        let method = req.method;
        let key_method = if method == Method::Ack { "INVITE".to_string() } else { method.to_string() };
        let key: ServerKey = (branch, sent_by, key_method);

        if method == Method::Ack {
            // The ACK of a non-2xx final answer ends its INVITE transaction here (§17.2.1);
            // any other ACK (of a 2xx) is its own transaction and goes on (§16.11 / §13.2.2.4).
            if self.servers.get(&key).is_some_and(|s| s.last.as_ref().is_some_and(|(code, _)| *code >= 300)) {
                self.confirm_ack(&key, now);
            } else {
                self.forward_in_dialog(None, req, from, now);
            }
            return;
        }
        if let Some(server) = self.servers.get(&key) {
            // A retransmission: the last answer again, if there is one (§17.2.1, §17.2.2).
            if let Some((_, bytes)) = &server.last {
                self.send_plain(server.source, server.source.addr, bytes.clone());
            }
            return;
        }
        self.open_server(key.clone(), req.clone(), from);
        if method == Method::Cancel {
            self.cancel(&key, now);
            return;
        }
        // §16.3 step 3: Max-Forwards.
        if max_forwards(&req) == Some(0) {
            self.respond(&key, 483, None, Vec::new(), now);
            return;
        }
        // §16.3 step 5: we support no extension a proxy would have to understand.
        if let Some(required) = req.headers.iter().find_map(|h| match h {
            Header::ProxyRequire(v) => Some(v.value().to_string()),
            _ => None,
        }) {
            self.respond(&key, 420, None, vec![Header::Unsupported(rsip::Unsupported::new(required))], now);
            return;
        }
        let in_dialog = message::to_tag(&req.headers).is_some();
        if self.draining && !in_dialog {
            // Shutting down: dialogs end normally, nothing new starts (RFC 3261 §21.5.4).
            self.respond(&key, 503, None, vec![Header::RetryAfter(rsip::RetryAfter::new("5"))], now);
            return;
        }
        if method == Method::Register {
            self.register(&key, now);
        } else if in_dialog {
            self.forward_in_dialog(Some(key), req, from, now);
        } else {
            self.route_initial(&key, req, from, now);
        }
    }

    /// An out-of-dialog request other than REGISTER: see the module docs.
    fn route_initial(&mut self, key: &ServerKey, mut req: Request, from: Peer, now: Now) {
        req.headers.retain(|h| !matches!(h, Header::Route(_)));
        let Some(user) = req.uri.user().map(|u| normalize_number(u, &self.settings.country_code)) else {
            if req.method == Method::Options && self.is_myself(&req.uri) {
                let allow = vec![Header::Allow(rsip::Allow::new(ALLOW)), Header::Accept(rsip::Accept::new("application/sdp"))];
                self.respond(key, 200, None, allow, now);
            } else {
                self.respond(key, 484, None, Vec::new(), now);
            }
            return;
        };
        let bindings = match self.locations.bindings(&user) {
            Ok(bindings) => bindings,
            Err(e) => {
                tracing::error!(aor = %user, error = %e, "location lookup failed");
                self.respond(key, 500, None, Vec::new(), now);
                return;
            }
        };
        // The most recent live binding (usrloc's lookup without branch appending).
        let Some(binding) = bindings.into_iter().filter(|b| b.is_live(now.wall)).max_by_key(|b| b.expires_at) else {
            let known = self.settings.users.contains_key(&user);
            debug!(aor = %user, method = %req.method, known, "no binding");
            self.respond(key, if known { 480 } else { 404 }, None, Vec::new(), now);
            return;
        };
        let Ok(contact) = rsip::Uri::try_from(binding.contact.as_str()) else {
            self.respond(key, 480, None, Vec::new(), now);
            return;
        };
        let contact_target = message::uri_target(&contact);
        // Over TCP, the flow the REGISTER came on (kept open with CRLF pings) is the way in;
        // the contact's own address when it has closed. Over UDP, the contact's address.
        let (to, connect) = match (binding.transport, contact_target) {
            (Transport::Tcp, Some(c)) => (Peer::new(Transport::Tcp, binding.source), c.addr),
            (Transport::Tcp, None) => (Peer::new(Transport::Tcp, binding.source), binding.source),
            (Transport::Udp, Some(c)) => (c, c.addr),
            (Transport::Udp, None) => (Peer::new(Transport::Udp, binding.source), binding.source),
        };
        info!(aor = %user, method = %req.method, from = %from, to = %to, "routing to binding");
        req.uri = contact;
        let record_route = matches!(req.method, Method::Invite | Method::Subscribe);
        self.forward(Some(key.clone()), req, from, to, connect, record_route, now);
    }

    /// A request inside a dialog (or an ACK of a 2xx): loose routing (§16.4, §16.12).
    fn forward_in_dialog(&mut self, key: Option<ServerKey>, mut req: Request, from: Peer, now: Now) {
        let mut ours = false;
        loop {
            let top = req.headers.iter().find_map(|h| match h {
                Header::Route(r) => Some(r.value().to_string()),
                _ => None,
            });
            let Some(route) = top else { break };
            let named_us = rsip::typed::Route::parse(&route).is_ok_and(|r| self.is_myself(&r.uri));
            if !named_us {
                break;
            }
            ours = true;
            req.headers.remove_first(|h| matches!(h, Header::Route(_)));
        }
        let next = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::Route(r) => Some(rsip::typed::Route::parse(r.value()).ok().map(|r| r.uri)),
                _ => None,
            })
            .unwrap_or_else(|| Some(req.uri.clone()));
        let target = next.as_ref().and_then(message::uri_target);
        match (key, ours, target) {
            (None, true, Some(to)) => {
                if let (Some(call_id), Some((seq, _))) = (message::call_id(&req.headers), message::cseq(&req.headers)) {
                    self.ack_passed(&call_id, seq);
                }
                let via_branch = format!("z9hG4bK{}", self.token());
                let req = self.prepare(req, &via_branch, to.transport, from, false);
                let bytes = req.to_bytes();
                self.send_plain(to, to.addr, bytes);
            }
            (None, _, _) => debug!(peer = %from, "ACK not for us dropped"),
            (Some(key), true, Some(to)) => self.forward(Some(key), req, from, to, to.addr, false, now),
            (Some(key), true, None) => self.respond(&key, 480, None, Vec::new(), now),
            (Some(key), false, _) => self.respond(&key, 404, Some("Not here"), Vec::new(), now),
        }
    }

    /// Adds our Via (and Record-Route), decrements Max-Forwards: §16.6 steps 3-8.
    fn prepare(&self, mut req: Request, branch: &str, out: Transport, from: Peer, record_route: bool) -> Request {
        let forwards = max_forwards(&req).map_or(70, |n| n.saturating_sub(1));
        req.headers.retain(|h| !matches!(h, Header::MaxForwards(_)));
        if record_route {
            let rr = |t: Transport| Header::RecordRoute(rsip::RecordRoute::new(format!("<{}>", self.route_uri(t))));
            let at = req.headers.iter().position(|h| matches!(h, Header::RecordRoute(_))).unwrap_or(0);
            // RFC 5658 §3: one entry per leg when the transports differ; the entry facing the
            // callee goes on top.
            req.headers.0.insert(at, rr(from.transport));
            if from.transport != out {
                req.headers.0.insert(at, rr(out));
            }
        }
        let proto = if out == Transport::Tcp { "TCP" } else { "UDP" };
        let via = format!("SIP/2.0/{proto} {};branch={branch};rport", self.settings.local);
        req.headers.push_front(Header::MaxForwards(rsip::MaxForwards::new(forwards.to_string())));
        req.headers.push_front(Header::Via(rsip::Via::new(via)));
        req
    }

    /// Our URI in a Record-Route, for a leg over `transport`.
    fn route_uri(&self, transport: Transport) -> String {
        let suffix = if transport == Transport::Tcp { ";transport=tcp" } else { "" };
        format!("sip:{}{suffix};lr", self.settings.local)
    }

    /// Forwards `req` statefully to `to` for server transaction `key`.
    #[allow(clippy::too_many_arguments)]
    fn forward(&mut self, key: Option<ServerKey>, req: Request, from: Peer, to: Peer, connect: std::net::SocketAddr, rr: bool, now: Now) {
        let invite = req.method == Method::Invite;
        if let (true, Some(key)) = (invite, &key) {
            self.respond(key, 100, None, Vec::new(), now);
        }
        let branch = format!("z9hG4bK{}", self.token());
        let req = self.prepare(req, &branch, to.transport, from, rr);
        // Timer B (or F) runs from here until a response comes.
        let client = self.open_client(&branch, key.clone(), req, to, connect, now);
        if let Some(server) = key.and_then(|k| self.servers.get_mut(&k)) {
            server.client = Some(client);
        }
    }

    /// CANCEL for server transaction `key` (§16.10): `200` to it, `481` if it matches no
    /// INVITE, and the INVITE's branch cancelled once it has had a provisional response.
    fn cancel(&mut self, key: &ServerKey, now: Now) {
        let invite_key: ServerKey = (key.0.clone(), key.1.clone(), "INVITE".to_string());
        let Some(invite) = self.servers.get(&invite_key) else {
            self.respond(key, 481, None, Vec::new(), now);
            return;
        };
        let answered = invite.last.as_ref().is_some_and(|(code, _)| *code >= 200);
        let client = invite.client.clone();
        self.respond(key, 200, None, Vec::new(), now);
        if answered {
            return;
        }
        let Some(client) = client.and_then(|c| self.clients.get_mut(&c)) else {
            self.respond(&invite_key, 487, None, Vec::new(), now);
            return;
        };
        if client.final_status.is_some() || client.cancel != CancelState::None {
            return;
        }
        if client.provisional {
            client.cancel = CancelState::Sent;
            let snapshot = ClientSnapshot::of(client);
            self.send_cancel_snapshot(snapshot, now);
        } else {
            client.cancel = CancelState::Wanted;
        }
    }

    /// Sends the CANCEL of a forwarded INVITE (§9.1): same Request-URI, Call-ID, From, To,
    /// CSeq number, Route and our Via with the INVITE's branch.
    pub(crate) fn send_cancel(&mut self, client: &ClientTx, now: Now) {
        self.send_cancel_snapshot(ClientSnapshot::of(client), now);
    }

    fn send_cancel_snapshot(&mut self, client: ClientSnapshot, now: Now) {
        let cancel = hop_request(&client.request, Method::Cancel, None);
        let branch = message::top_via(&client.request.headers).and_then(|v| message::branch(&v)).unwrap_or_default();
        self.open_client(&branch, None, cancel, client.to, client.connect, now);
    }

    pub(crate) fn on_response(&mut self, mut resp: Response, from: Peer, now: Now) {
        let Some(via) = message::top_via(&resp.headers) else { return };
        let ours = via.uri.host_with_port.to_string() == self.settings.local.to_string();
        let (Some(branch), Some((_, method)), true) = (message::branch(&via), message::cseq(&resp.headers), ours) else {
            debug!(peer = %from, "response not for us dropped");
            return;
        };
        let code = resp.status_code.code();
        let key = format!("{branch} {method}");
        message::pop_via(&mut resp.headers);
        let Some(client) = self.clients.get_mut(&key) else {
            // A 2xx retransmission after the transaction: still the caller's (RFC 6026 §7.2).
            if method == Method::Invite
                && (200..300).contains(&code)
                && let Some(to) = message::top_via(&resp.headers).and_then(|v| message::via_target(&v))
            {
                self.send_plain(to, to.addr, message::response_bytes(&resp));
            }
            return;
        };
        let invite = method == Method::Invite;
        if invite || code >= 200 {
            client.retransmit = None;
        }
        let server = client.server.clone();
        if code < 200 {
            client.provisional = true;
            if invite {
                client.deadline = now.at + self.settings.invite_timeout;
            }
            if client.cancel == CancelState::Wanted {
                client.cancel = CancelState::Sent;
                let snapshot = ClientSnapshot::of(client);
                self.send_cancel_snapshot(snapshot, now);
            }
            if let (Some(server), true) = (server, code > 100) {
                self.send_upstream(&server, &resp, now);
            }
            return;
        }
        let first = client.final_status.is_none();
        client.final_status = Some(code);
        client.deadline = now.at + super::core::LINGER;
        if invite && code >= 300 {
            // §17.1.1.3: the ACK of a non-2xx is the proxy's own, hop by hop, every time.
            let ack = hop_request(&client.request, Method::Ack, Some(&resp));
            let (to, connect) = (client.to, client.connect);
            self.send_plain(to, connect, ack.to_bytes());
        }
        let Some(server) = server else { return };
        let upstream_final = self.servers.get(&server).and_then(|s| s.last.as_ref()).is_some_and(|(c, _)| *c >= 200);
        // Every 2xx of an INVITE goes up (each may be a different dialog, §16.7 step 5); of
        // the rest only the first final answer, and only if we have not answered already.
        if ((200..300).contains(&code) && invite) || (first && !upstream_final) {
            self.send_upstream(&server, &resp, now);
        }
    }
}

/// What building a CANCEL needs of a client transaction, cloned so the table can be borrowed
/// mutably meanwhile.
struct ClientSnapshot {
    request: Request,
    to: Peer,
    connect: std::net::SocketAddr,
}

impl ClientSnapshot {
    fn of(client: &ClientTx) -> Self {
        ClientSnapshot { request: client.request.clone(), to: client.to, connect: client.connect }
    }
}

/// A CANCEL or non-2xx ACK for a forwarded INVITE (§9.1, §17.1.1.3): Request-URI, Call-ID,
/// From, CSeq number, Route and top Via of the INVITE; To from the response for an ACK.
fn hop_request(invite: &Request, method: Method, resp: Option<&Response>) -> Request {
    let mut headers = rsip::Headers::default();
    let mut via_done = false;
    for header in invite.headers.iter() {
        match header {
            Header::Via(_) if !via_done => {
                via_done = true;
                headers.push(header.clone());
            }
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(header.clone()),
            Header::To(_) => match resp.and_then(|r| r.headers.iter().find(|h| matches!(h, Header::To(_)))) {
                Some(to) => headers.push(to.clone()),
                None => headers.push(header.clone()),
            },
            Header::CSeq(c) => {
                let seq = c.seq().unwrap_or(1);
                headers.push(Header::CSeq(rsip::CSeq::new(format!("{seq} {method}"))));
            }
            _ => {}
        }
    }
    headers.push(Header::MaxForwards(rsip::MaxForwards::new("70")));
    headers.push(Header::ContentLength(rsip::ContentLength::new("0")));
    Request { method, uri: invite.uri.clone(), version: rsip::Version::V2, headers, body: Vec::new() }
}

/// Max-Forwards, if present and numeric.
fn max_forwards(req: &Request) -> Option<u32> {
    req.headers.iter().find_map(|h| match h {
        Header::MaxForwards(m) => m.value().trim().parse().ok(),
        _ => None,
    })
}
