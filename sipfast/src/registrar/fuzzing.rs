//! A narrow door into the sans-IO registrar for the `sip` fuzz target (`fuzz/fuzz_targets/sip.rs`):
//! stream framing ([`next_frame`]) and the core ([`Proxy`]), driven with a clock the caller moves.
//!
//! Not API: hidden from the docs, no stability promise, nothing else uses it. It wraps the
//! crate-private types instead of making them public, so the registrar's real surface stays
//! the one in [`super`]. The one difference from the daemon's core is that branches and tags
//! count up from 0 instead of being random, so that fuzz inputs can answer our requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::core::{Core, Now, Settings, Transmit};
use super::digest::Nonces;
use super::framing;
use super::locations::MemoryLocations;
use super::message::{Peer, Transport};

/// Upper bound on one message on a stream (RFC 3261 §18.3 framing); see `framing`.
pub const MAX_MESSAGE: usize = framing::MAX_MESSAGE;

/// One unit taken off the front of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// CRLFCRLF keep-alive (RFC 5626 §4.4.1).
    Ping,
    /// A lone CRLF.
    Pong,
    /// A complete message.
    Message(Vec<u8>),
}

/// `framing::next_frame`: `Ok(None)` is "read more", `Err` closes the connection.
pub fn next_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, String> {
    match framing::next_frame(buf) {
        Ok(Some(framing::Frame::Ping)) => Ok(Some(Frame::Ping)),
        Ok(Some(framing::Frame::Pong)) => Ok(Some(Frame::Pong)),
        Ok(Some(framing::Frame::Message(m))) => Ok(Some(Frame::Message(m))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// What the core asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// Over TCP (else UDP).
    pub tcp: bool,
    /// The peer (UDP address, or TCP connection).
    pub to: SocketAddr,
    /// Where to connect over TCP when no connection to `to` is open.
    pub connect: SocketAddr,
    /// The message.
    pub data: Vec<u8>,
    /// The client transaction to fail if it cannot be sent ([`Proxy::on_send_failed`]).
    pub client: Option<String>,
}

impl From<Transmit> for Out {
    fn from(t: Transmit) -> Self {
        Out { tcp: t.to.transport == Transport::Tcp, to: t.to.addr, connect: t.connect, data: t.data, client: t.client }
    }
}

/// The registrar/proxy core with in-memory locations and a clock moved by hand.
#[derive(Debug)]
pub struct Proxy {
    core: Core,
    now: Now,
}

impl Proxy {
    /// A core listening on `local` for `sip.example`, country code 81, the default lifetimes
    /// and a 60 s ringing timeout. `users` empty: open registration.
    pub fn new(local: SocketAddr, users: &[(&str, Option<&str>)]) -> Self {
        let settings = Settings {
            local,
            domain: "sip.example".into(),
            users: users.iter().map(|(n, p)| (super::normalize_number(n, "81"), p.map(str::to_string))).collect(),
            country_code: "81".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            invite_timeout: Duration::from_secs(60),
            server: "fuzz".into(),
        };
        let nonces = Nonces::new(Duration::from_secs(300)).unwrap_or_else(|_| panic!("no randomness for nonces"));
        let mut core = Core::new(settings, Arc::new(MemoryLocations::new()), nonces);
        core.use_counter_tokens();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Proxy { core, now: Now { at: std::time::Instant::now(), wall } }
    }

    /// A message from `from`: a datagram, or a frame off a TCP stream.
    pub fn on_message(&mut self, data: &[u8], tcp: bool, from: SocketAddr) -> Vec<Out> {
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        self.core.on_message(data, Peer::new(transport, from), self.now).into_iter().map(Out::from).collect()
    }

    /// Moves the clock on (both the transaction clock and wall time).
    pub fn advance(&mut self, by: Duration) {
        self.now = Now { at: self.now.at + by, wall: self.now.wall + by };
    }

    /// The timers due now, as the shell runs them when [`Proxy::next_timer`] is reached.
    pub fn on_timer(&mut self) -> Vec<Out> {
        self.core.on_timer(self.now).into_iter().map(Out::from).collect()
    }

    /// How long until the next timer is due (zero: due now); `None` when none is set.
    pub fn next_timer(&self) -> Option<Duration> {
        self.core.next_timer().map(|at| at.saturating_duration_since(self.now.at))
    }

    /// Sending for client transaction `client` failed.
    pub fn on_send_failed(&mut self, client: &str) -> Vec<Out> {
        self.core.on_send_failed(&client.to_string(), self.now).into_iter().map(Out::from).collect()
    }

    /// Starts a draining shutdown: new out-of-dialog requests get `503`.
    pub fn drain(&mut self) {
        self.core.draining = true;
    }

    /// Whether nothing forwarded waits for an answer (the end of a drain).
    pub fn is_idle(&self) -> bool {
        self.core.is_idle()
    }

    /// Server and client transactions held.
    pub fn transactions(&self) -> usize {
        self.core.servers.len() + self.core.clients.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "127.0.0.1:5071";
    const B: &str = "127.0.0.1:5072";

    fn send(p: &mut Proxy, from: &str, tcp: bool, text: &str) -> Vec<Out> {
        let out = p.on_message(text.replace('\n', "\r\n").as_bytes(), tcp, from.parse().unwrap());
        for o in &out {
            eprintln!("--> {} {}\n{}", if o.tcp { "tcp" } else { "udp" }, o.to, String::from_utf8_lossy(&o.data));
        }
        out
    }

    /// The status line or request line of what was sent to `to`.
    fn first_lines(out: &[Out]) -> Vec<String> {
        out.iter().map(|o| String::from_utf8_lossy(&o.data).lines().next().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn a_call_through_the_hook_has_predictable_branches() {
        let mut p = Proxy::new("127.0.0.1:5060".parse().unwrap(), &[]);
        let out = send(&mut p, B, false, REGISTER);
        assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
        let out = send(&mut p, A, true, INVITE);
        assert_eq!(first_lines(&out), ["SIP/2.0 100 Trying", "INVITE sip:+815087654321@127.0.0.1:5072 SIP/2.0"]);
        assert!(String::from_utf8_lossy(&out[1].data).contains("branch=z9hG4bK0000000000000002;"), "counted, not random");
        let out = send(&mut p, B, false, &ANSWER.replace("CODE", "180 Ringing"));
        assert_eq!((first_lines(&out), out[0].tcp), (vec!["SIP/2.0 180 Ringing".to_string()], true));
        let out = send(&mut p, B, false, &ANSWER.replace("CODE", "200 OK"));
        assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
        assert!(!p.is_idle(), "waiting for the ACK");
        let out = send(&mut p, A, true, ACK);
        assert_eq!(first_lines(&out), ["ACK sip:+815087654321@127.0.0.1:5072 SIP/2.0"]);
        assert!(p.is_idle());
        let out = send(&mut p, B, false, BYE);
        assert_eq!((first_lines(&out), out[0].tcp), (vec!["BYE sip:+815011112222@127.0.0.1:5071;transport=TCP SIP/2.0".to_string()], true));
        let out = send(&mut p, A, true, BYE_OK);
        assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
        // Every transaction ends once its lingering is over.
        for _ in 0..4 {
            p.advance(Duration::from_secs(32));
            p.on_timer();
        }
        assert_eq!((p.transactions(), p.next_timer()), (0, None));
    }

    #[test]
    fn framing_and_send_failures() {
        let mut buf = b"\r\n\r\nOPTIONS sip:sip.example SIP/2.0\r\nl: 0\r\n\r\n".to_vec();
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Ping)));
        assert!(matches!(next_frame(&mut buf), Ok(Some(Frame::Message(_)))));
        assert_eq!(next_frame(&mut b"OPTIONS x\r\n\r\n".to_vec()).map_err(|e| e.contains("Content-Length")), Err(true));

        let mut p = Proxy::new("127.0.0.1:5060".parse().unwrap(), &[("050-8765-4321", None)]);
        send(&mut p, B, false, REGISTER);
        let out = send(&mut p, A, true, INVITE);
        let client = out[1].client.clone().unwrap();
        let out = p.on_send_failed(&client);
        assert_eq!(first_lines(&out), ["SIP/2.0 503 Service Unavailable"]);
        p.drain();
        assert!(p.is_idle());
    }

    const REGISTER: &str = "REGISTER sip:sip.example SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKreg1;rport
Max-Forwards: 70
From: <sip:+815087654321@sip.example>;tag=r1
To: <sip:+815087654321@sip.example>
Call-ID: reg-1
CSeq: 1 REGISTER
Contact: <sip:+815087654321@127.0.0.1:5072>
Expires: 600
Content-Length: 0

";

    const INVITE: &str = "INVITE sip:05087654321@sip.example SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKinv1
Max-Forwards: 70
From: <sip:+815011112222@sip.example>;tag=a1
To: <sip:05087654321@sip.example>
Call-ID: call-1
CSeq: 1 INVITE
Contact: <sip:+815011112222@127.0.0.1:5071;transport=tcp>
Content-Length: 0

";

    const ANSWER: &str = "SIP/2.0 CODE
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK0000000000000002;rport=5060
Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKinv1;rport=5071
Record-Route: <sip:127.0.0.1:5060;lr>
Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>
From: <sip:+815011112222@sip.example>;tag=a1
To: <sip:05087654321@sip.example>;tag=b1
Call-ID: call-1
CSeq: 1 INVITE
Contact: <sip:+815087654321@127.0.0.1:5072>
Content-Length: 0

";

    const ACK: &str = "ACK sip:+815087654321@127.0.0.1:5072 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKack1
Route: <sip:127.0.0.1:5060;transport=tcp;lr>
Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:+815011112222@sip.example>;tag=a1
To: <sip:05087654321@sip.example>;tag=b1
Call-ID: call-1
CSeq: 1 ACK
Content-Length: 0

";

    const BYE: &str = "BYE sip:+815011112222@127.0.0.1:5071;transport=tcp SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKbye1;rport
Route: <sip:127.0.0.1:5060;lr>
Route: <sip:127.0.0.1:5060;transport=tcp;lr>
Max-Forwards: 70
From: <sip:05087654321@sip.example>;tag=b1
To: <sip:+815011112222@sip.example>;tag=a1
Call-ID: call-1
CSeq: 2 BYE
Content-Length: 0

";

    const BYE_OK: &str = "SIP/2.0 200 OK
Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK0000000000000005;rport=5060
Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKbye1;rport=5072
From: <sip:05087654321@sip.example>;tag=b1
To: <sip:+815011112222@sip.example>;tag=a1
Call-ID: call-1
CSeq: 2 BYE
Content-Length: 0

";
}
