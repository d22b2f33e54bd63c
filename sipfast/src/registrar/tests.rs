//! Transcript tests of the sans-IO core: SIP text in from a peer, what the core sends out,
//! with time moved by hand. The peers are `A` (the caller, UDP 127.0.0.1:5071) and `B` (the
//! callee, UDP 127.0.0.1:5072); the registrar is 127.0.0.1:5060 for `sip.example`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::compute_digest;
use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
use rsipstack::sip::{Method, SipMessage};

use super::core::{Core, Now, Settings, T1, Transmit};
use super::digest::Nonces;
use super::locations::{Locations, MemoryLocations};
use super::message::{self, Peer, Transport};

const A: &str = "127.0.0.1:5071";
const B: &str = "127.0.0.1:5072";
const B_NUMBER: &str = "+815087654321";

struct Harness {
    core: Core,
    now: Now,
    locations: Arc<MemoryLocations>,
}

fn harness(users: &[(&str, Option<&str>)]) -> Harness {
    let locations = Arc::new(MemoryLocations::new());
    let settings = Settings {
        local: "127.0.0.1:5060".parse().unwrap(),
        domain: "sip.example".into(),
        users: users.iter().map(|(n, p)| (n.to_string(), p.map(str::to_string))).collect(),
        country_code: "81".into(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 600,
        invite_timeout: Duration::from_secs(60),
        server: "test".into(),
    };
    let core = Core::new(settings, locations.clone(), Nonces::new(Duration::from_secs(300)).unwrap());
    Harness { core, now: Now::current(), locations }
}

fn udp(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse().unwrap())
}

/// `text` with LF line ends turned into CRLF and the empty line closing the headers.
fn wire(text: &str) -> Vec<u8> {
    let mut s = text.trim_start().replace('\n', "\r\n");
    if !s.ends_with("\r\n\r\n") {
        s.push_str("\r\n");
    }
    s.into_bytes()
}

impl Harness {
    fn send(&mut self, from: &str, text: &str) -> Vec<Transmit> {
        self.core.on_message(&wire(text), udp(from), self.now)
    }

    fn advance(&mut self, by: Duration) -> Vec<Transmit> {
        self.now = Now { at: self.now.at + by, wall: self.now.wall + by };
        self.core.on_timer(self.now)
    }

    /// B registers its UDP contact (open registration or no password).
    fn register_b(&mut self) {
        let out = self.send(B, &register(B_NUMBER, "1", "Expires: 600", ""));
        assert_eq!(status(&out[0]), 200, "{}", text(&out[0]));
    }
}

fn register(user: &str, cseq: &str, expires: &str, extra: &str) -> String {
    format!(
        "REGISTER sip:sip.example SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bKreg{cseq};rport
Max-Forwards: 70
From: <sip:{user}@sip.example>;tag=r1
To: <sip:{user}@sip.example>
Call-ID: reg-1
CSeq: {cseq} REGISTER
Contact: <sip:{B_NUMBER}@{B}>
{expires}
{extra}Content-Length: 0
"
    )
}

fn text(t: &Transmit) -> String {
    String::from_utf8(t.data.clone()).unwrap()
}

fn status(t: &Transmit) -> u16 {
    match message::parse(&t.data).unwrap() {
        SipMessage::Response(r) => r.status_code.code(),
        SipMessage::Request(r) => panic!("a request, not a response: {r}"),
    }
}

fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).collect()
}

/// The `branch` of the top Via of a message we sent.
fn our_branch(text: &str) -> String {
    let via = header(text, "Via")[0];
    via.split(";branch=").nth(1).unwrap().split(';').next().unwrap().to_string()
}

#[test]
fn open_registration_normalises_the_aor_and_lists_bindings() {
    let mut h = harness(&[]);
    let out = h.send(B, &register("050-8765-4321", "1", "Expires: 600", ""));
    assert_eq!(out.len(), 1);
    let reply = text(&out[0]);
    assert_eq!(status(&out[0]), 200, "{reply}");
    assert_eq!(out[0].to, udp(B));
    assert!(reply.contains(&format!("Contact: <sip:{B_NUMBER}@{B}>;expires=600")), "{reply}");
    assert!(reply.contains("rport=5072"), "the Via carries rport: {reply}");
    let bindings = h.locations.bindings(B_NUMBER).unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source, B.parse::<SocketAddr>().unwrap());

    // A REGISTER without Contact lists the bindings (§10.2.3).
    let list = h.send(B, &register(B_NUMBER, "2", "", "").replace(&format!("Contact: <sip:{B_NUMBER}@{B}>\n"), ""));
    assert!(text(&list[0]).contains(&format!("Contact: <sip:{B_NUMBER}@{B}>;expires=600")), "{}", text(&list[0]));
}

#[test]
fn lifetimes_are_bounded_and_removals_work() {
    let mut h = harness(&[]);
    let brief = h.send(B, &register(B_NUMBER, "1", "Expires: 30", ""));
    assert_eq!(status(&brief[0]), 423);
    assert_eq!(header(&text(&brief[0]), "Min-Expires"), vec!["60"]);
    assert!(h.locations.bindings(B_NUMBER).unwrap().is_empty());

    let long = h.send(B, &register(B_NUMBER, "2", "Expires: 7200", ""));
    assert!(text(&long[0]).contains(";expires=3600"), "lowered to the maximum: {}", text(&long[0]));

    // Out of order: the same Call-ID with a CSeq not above the binding's (§10.3 step 7).
    let stale = h.send(B, &register(B_NUMBER, "1", "Expires: 600", "").replace("z9hG4bKreg1", "z9hG4bKold"));
    assert_eq!(status(&stale[0]), 500);

    let removed = h.send(B, &register(B_NUMBER, "3", "Expires: 0", ""));
    assert_eq!(status(&removed[0]), 200);
    assert!(header(&text(&removed[0]), "Contact").is_empty());
    assert!(h.locations.bindings(B_NUMBER).unwrap().is_empty());

    h.send(B, &register(B_NUMBER, "4", "Expires: 600", ""));
    let wildcard_alone = register(B_NUMBER, "5", "Expires: 600", "").replace(&format!("<sip:{B_NUMBER}@{B}>"), "*");
    assert_eq!(status(&h.send(B, &wildcard_alone)[0]), 400, "* needs Expires: 0");
    let wildcard = register(B_NUMBER, "6", "Expires: 0", "").replace(&format!("<sip:{B_NUMBER}@{B}>"), "*");
    assert_eq!(status(&h.send(B, &wildcard)[0]), 200);
    assert!(h.locations.bindings(B_NUMBER).unwrap().is_empty());
}

/// Found by the `sip` fuzz target: rsip parsed this Contact, the binding was saved, and the
/// INVITE forwarded to it had a request line with a space in its Request-URI.
#[test]
fn a_contact_with_a_space_is_refused_not_bound() {
    let mut h = harness(&[]);
    let spaced = register(B_NUMBER, "1", "Expires: 600", "")
        .replace(&format!("<sip:{B_NUMBER}@{B}>"), "<sip:+815UDP 127.0.0.1:5071;br@127.0.0.1:5072>");
    let out = h.send(B, &spaced);
    assert_eq!(status(&out[0]), 400, "{}", text(&out[0]));
    assert!(h.locations.bindings(B_NUMBER).unwrap().is_empty());
}

#[test]
fn a_retransmitted_register_gets_the_same_answer() {
    let mut h = harness(&[]);
    let first = h.send(B, &register(B_NUMBER, "1", "Expires: 600", ""));
    let again = h.send(B, &register(B_NUMBER, "1", "Expires: 600", ""));
    assert_eq!(first, again);
}

/// The Authorization header a user agent would send for `challenge` (rsipstack's own client
/// digest, qop=auth, nc=1).
fn authorization(challenge: &str, user: &str, password: &str) -> String {
    let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let qop = AuthQop::Auth { cnonce: "0a4f113b".into(), nc: 1 };
    let response = compute_digest(user, password, "sip.example", nonce, &Method::Register, "sip:sip.example", Algorithm::Md5, Some(&qop));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"sip.example\", nonce=\"{nonce}\", uri=\"sip:sip.example\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\n"
    )
}

#[test]
fn digest_challenge_then_success_wrong_password_stale_nonce_and_strangers() {
    let mut h = harness(&[(B_NUMBER, Some("secret")), ("+815011112222", None)]);
    let challenged = h.send(B, &register(B_NUMBER, "1", "Expires: 600", ""));
    assert_eq!(status(&challenged[0]), 401);
    let challenge = header(&text(&challenged[0]), "WWW-Authenticate")[0].to_string();
    assert!(challenge.starts_with("Digest realm=\"sip.example\""), "{challenge}");
    assert!(challenge.contains("algorithm=MD5") && challenge.contains("qop=\"auth\"") && !challenge.contains("stale"), "{challenge}");

    let wrong = h.send(B, &register(B_NUMBER, "2", "Expires: 600", &authorization(&challenge, B_NUMBER, "wrong")));
    assert_eq!(status(&wrong[0]), 401, "a wrong password is challenged again");
    assert!(h.locations.bindings(B_NUMBER).unwrap().is_empty());

    // The national form of the user name is the same user.
    let ok = h.send(B, &register(B_NUMBER, "3", "Expires: 600", &authorization(&challenge, "05087654321", "secret")));
    assert_eq!(status(&ok[0]), 200, "{}", text(&ok[0]));
    assert_eq!(h.locations.bindings(B_NUMBER).unwrap().len(), 1);

    // Credentials of another user for B's AOR: 403 (§10.3 step 4).
    let other = h.send(B, &register(B_NUMBER, "4", "Expires: 600", &authorization(&challenge, "+815011112222", "secret")));
    assert_eq!(status(&other[0]), 403);

    h.advance(Duration::from_secs(301));
    let stale = h.send(B, &register(B_NUMBER, "5", "Expires: 600", &authorization(&challenge, B_NUMBER, "secret")));
    assert_eq!(status(&stale[0]), 401);
    assert!(header(&text(&stale[0]), "WWW-Authenticate")[0].contains("stale=true"), "{}", text(&stale[0]));

    // A user without a password registers unchallenged; a stranger is not found (§10.3 step 5).
    assert_eq!(status(&h.send(B, &register("+815011112222", "6", "Expires: 600", ""))[0]), 200);
    assert_eq!(status(&h.send(B, &register("+819099998888", "7", "Expires: 600", ""))[0]), 404);
}

fn invite(to_user: &str, branch: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{to_user}@sip.example;user=phone SIP/2.0
Via: SIP/2.0/UDP {A};branch={branch};rport
Max-Forwards: 70
From: <sip:+815012345678@sip.example>;tag=a1
To: <sip:{to_user}@sip.example>
Call-ID: call-1
CSeq: 1 INVITE
Contact: <sip:+815012345678@{A}>
{extra}Content-Length: 0
"
    )
}

/// B's response `code` to the request we forwarded to it (`forwarded`), with B's To tag.
fn answer(forwarded: &str, code: &str, extra: &str) -> String {
    let mut lines = vec![format!("SIP/2.0 {code}")];
    for line in forwarded.lines() {
        if ["Via:", "From:", "Call-ID:", "CSeq:", "Record-Route:"].iter().any(|p| line.starts_with(p)) {
            lines.push(line.to_string());
        } else if line.starts_with("To:") {
            lines.push(if line.contains("tag=") { line.to_string() } else { format!("{line};tag=b1") });
        }
    }
    format!("{}\nContact: <sip:{B_NUMBER}@{B}>\n{extra}Content-Length: 0\n", lines.join("\n"))
}

#[test]
fn a_call_is_routed_with_record_route_and_its_dialog_passes_through() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite("050-8765-4321", "z9hG4bKinv1", ""));
    assert_eq!(out.len(), 2, "100 Trying upstream, INVITE downstream");
    assert_eq!((status(&out[0]), out[0].to), (100, udp(A)));
    let fwd = text(&out[1]);
    assert_eq!(out[1].to, udp(B));
    assert!(fwd.starts_with(&format!("INVITE sip:{B_NUMBER}@{B} SIP/2.0\r\n")), "R-URI is the contact: {fwd}");
    let vias = header(&fwd, "Via");
    assert_eq!(vias.len(), 2);
    assert!(vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK") && vias[0] != "z9hG4bKinv1", "{fwd}");
    assert!(vias[1].contains("branch=z9hG4bKinv1") && vias[1].contains("rport=5071"), "{fwd}");
    assert_eq!(header(&fwd, "Max-Forwards"), vec!["69"]);
    assert_eq!(header(&fwd, "Record-Route"), vec!["<sip:127.0.0.1:5060;lr>"]);

    let ringing = h.send(B, &answer(&fwd, "180 Ringing", ""));
    assert_eq!((status(&ringing[0]), ringing[0].to), (180, udp(A)));
    assert_eq!(header(&text(&ringing[0]), "Via").len(), 1, "our Via is removed");
    let ok = h.send(B, &answer(&fwd, "200 OK", ""));
    assert_eq!((status(&ok[0]), ok[0].to), (200, udp(A)));
    assert_eq!(header(&text(&ok[0]), "Record-Route"), vec!["<sip:127.0.0.1:5060;lr>"]);
    // A 2xx retransmitted by B still reaches A (RFC 6026).
    let again = h.send(B, &answer(&fwd, "200 OK", ""));
    assert_eq!(again.len(), 1);

    // A's ACK and BYE carry our Record-Route as Route: it is removed and they go to B's contact.
    let in_dialog = |method: &str, cseq: &str, branch: &str| {
        format!(
            "{method} sip:{B_NUMBER}@{B} SIP/2.0
Via: SIP/2.0/UDP {A};branch={branch};rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5060;lr>
From: <sip:+815012345678@sip.example>;tag=a1
To: <sip:{B_NUMBER}@sip.example>;tag=b1
Call-ID: call-1
CSeq: {cseq}
Content-Length: 0
"
        )
    };
    let ack = h.send(A, &in_dialog("ACK", "1 ACK", "z9hG4bKack1"));
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].to, udp(B));
    assert!(text(&ack[0]).starts_with("ACK sip:") && header(&text(&ack[0]), "Route").is_empty(), "{}", text(&ack[0]));
    let bye = h.send(A, &in_dialog("BYE", "2 BYE", "z9hG4bKbye1"));
    assert_eq!((bye.len(), bye[0].to), (1, udp(B)));
    let bye_ok = h.send(B, &answer(&text(&bye[0]), "200 OK", ""));
    assert_eq!((status(&bye_ok[0]), bye_ok[0].to), (200, udp(A)));

    // Without a Route naming us, an in-dialog request is not ours (reference: 404 Not here).
    let stray = h.send(A, &in_dialog("BYE", "3 BYE", "z9hG4bKbye2").replace("Route: <sip:127.0.0.1:5060;lr>\n", ""));
    assert_eq!(status(&stray[0]), 404);
    assert!(text(&stray[0]).starts_with("SIP/2.0 404 Not here"));
}

#[test]
fn unknown_unregistered_and_exhausted_requests_are_answered_here() {
    let mut h = harness(&[(B_NUMBER, None)]);
    assert_eq!(status(&h.send(A, &invite("+819099998888", "z9hG4bK1", ""))[0]), 404);
    assert_eq!(status(&h.send(A, &invite(B_NUMBER, "z9hG4bK2", ""))[0]), 480, "configured, not registered");
    h.register_b();
    let hops = invite(B_NUMBER, "z9hG4bK3", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(&h.send(A, &hops)[0]), 483);
    // An expired binding is never used.
    h.advance(Duration::from_secs(601));
    assert_eq!(status(&h.send(A, &invite(B_NUMBER, "z9hG4bK4", ""))[0]), 480);
}

#[test]
fn options_for_the_registrar_itself_are_answered() {
    let mut h = harness(&[]);
    let options = format!(
        "OPTIONS sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKopt
Max-Forwards: 70
From: <sip:probe@sip.example>;tag=o1
To: <sip:127.0.0.1:5060>
Call-ID: opt-1
CSeq: 1 OPTIONS
Content-Length: 0
"
    );
    let out = h.send(A, &options);
    assert_eq!(status(&out[0]), 200);
    assert!(header(&text(&out[0]), "Allow")[0].contains("INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"));
    let elsewhere = options.replace("OPTIONS sip:127.0.0.1:5060", "OPTIONS sip:192.0.2.1").replace("z9hG4bKopt", "z9hG4bKopt2");
    assert_eq!(status(&h.send(A, &elsewhere)[0]), 484);
}

/// A capability query for a number (issue 7 item 4) is routed as a call to it would be:
/// forwarded to the binding without Record-Route (no dialog, RFC 3261 §16.6 step 4), its answer
/// passed back with the SDP; `404` and `480` as for an INVITE (§11.2).
#[test]
fn options_for_a_number_go_to_its_binding_and_the_answer_comes_back() {
    let mut h = harness(&[(B_NUMBER, None)]);
    let options = |user: &str, branch: &str| {
        invite(user, branch, "Accept: application/sdp\n")
            .replace("INVITE", "OPTIONS")
            .replace("Contact: <sip:+815012345678@127.0.0.1:5071>\n", "")
    };
    assert_eq!(status(&h.send(A, &options("+819099998888", "z9hG4bKo1"))[0]), 404);
    assert_eq!(status(&h.send(A, &options(B_NUMBER, "z9hG4bKo2"))[0]), 480, "configured, not registered");
    h.register_b();
    let out = h.send(A, &options("050-8765-4321", "z9hG4bKo3"));
    assert_eq!(out.len(), 1, "no 100 Trying for a non-INVITE request (§16.2)");
    let fwd = text(&out[0]);
    assert_eq!(out[0].to, udp(B));
    assert!(fwd.starts_with(&format!("OPTIONS sip:{B_NUMBER}@{B} SIP/2.0\r\n")), "R-URI is the contact: {fwd}");
    assert_eq!(header(&fwd, "Via").len(), 2);
    assert_eq!(header(&fwd, "Max-Forwards"), vec!["69"]);
    assert_eq!(header(&fwd, "Accept"), vec!["application/sdp"]);
    assert!(header(&fwd, "Record-Route").is_empty(), "{fwd}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=application 0 TCP smtp http\r\n";
    let head =
        answer(&fwd, "200 OK", "Content-Type: application/sdp\n").replace("Content-Length: 0", &format!("Content-Length: {}", sdp.len()));
    let described = format!("{}\r\n{sdp}", head.replace('\n', "\r\n"));
    let ok = h.core.on_message(described.as_bytes(), udp(B), h.now);
    assert_eq!((status(&ok[0]), ok[0].to), (200, udp(A)));
    let reply = text(&ok[0]);
    assert_eq!(header(&reply, "Via").len(), 1, "our Via is removed");
    assert!(reply.ends_with(&format!("\r\n\r\n{sdp}")), "{reply}");
}

#[test]
fn cancel_of_a_ringing_call_goes_downstream_and_487_comes_back() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    let fwd = text(&out[1]);
    h.send(B, &answer(&fwd, "180 Ringing", ""));
    let cancel = invite(B_NUMBER, "z9hG4bKinv1", "").replace("INVITE sip:", "CANCEL sip:").replace("1 INVITE", "1 CANCEL");
    let out = h.send(A, &cancel);
    assert_eq!(out.len(), 2);
    assert_eq!((status(&out[0]), out[0].to), (200, udp(A)));
    let downstream = text(&out[1]);
    assert!(downstream.starts_with(&format!("CANCEL sip:{B_NUMBER}@{B} SIP/2.0")), "{downstream}");
    assert_eq!(our_branch(&downstream), our_branch(&fwd), "the CANCEL has the INVITE's branch (§9.1)");
    assert_eq!(header(&downstream, "CSeq"), vec!["1 CANCEL"]);

    h.send(B, &answer(&downstream, "200 OK", ""));
    let terminated = h.send(B, &answer(&fwd, "487 Request Terminated", ""));
    assert_eq!(terminated.len(), 2, "ACK downstream and 487 upstream");
    let ack = text(&terminated[0]);
    assert!(ack.starts_with("ACK sip:") && ack.contains("tag=b1") && our_branch(&ack) == our_branch(&fwd), "{ack}");
    assert_eq!((status(&terminated[1]), terminated[1].to), (487, udp(A)));

    // The upstream ACK of the 487 ends our transaction and goes no further; until then the
    // 487 is retransmitted over UDP (Timer G).
    let retransmitted = h.advance(T1);
    assert_eq!(retransmitted.len(), 1);
    assert_eq!(status(&retransmitted[0]), 487);
    let upstream_ack = invite(B_NUMBER, "z9hG4bKinv1", "").replace("INVITE sip:", "ACK sip:").replace("1 INVITE", "1 ACK");
    assert!(h.send(A, &upstream_ack).is_empty());
    assert!(h.advance(T1 * 4).is_empty());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    let fwd = text(&out[1]);
    let cancel = invite(B_NUMBER, "z9hG4bKinv1", "").replace("INVITE sip:", "CANCEL sip:").replace("1 INVITE", "1 CANCEL");
    let out = h.send(A, &cancel);
    assert_eq!(out.len(), 1, "only the 200 to the CANCEL (§9.1: no CANCEL before a provisional)");
    let out = h.send(B, &answer(&fwd, "100 Trying", ""));
    assert_eq!(out.len(), 1);
    assert!(text(&out[0]).starts_with("CANCEL sip:"));
    // An unmatched CANCEL is 481.
    let lost = cancel.replace("z9hG4bKinv1", "z9hG4bKnone");
    assert_eq!(status(&h.send(A, &lost)[0]), 481);
}

#[test]
fn udp_invite_is_retransmitted_then_times_out_with_408() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    let fwd = out[1].data.clone();
    let first = h.advance(T1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].data, fwd, "Timer A");
    let second = h.advance(T1);
    assert!(second.is_empty(), "the interval doubled");
    assert_eq!(h.advance(T1).len(), 1);
    // Timer B: 64*T1 without an answer.
    let mut timed_out = Vec::new();
    for _ in 0..64 {
        timed_out.extend(h.advance(T1));
    }
    let upstream: Vec<_> = timed_out.iter().filter(|t| t.to == udp(A)).collect();
    // The 408, then its Timer G retransmissions until A ACKs it.
    assert!(!upstream.is_empty());
    assert!(upstream.iter().all(|t| status(t) == 408));
}

#[test]
fn a_failed_send_becomes_503() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    let key = out[1].client.clone().unwrap();
    let failed = h.core.on_send_failed(&key, h.now);
    assert_eq!((status(&failed[0]), failed[0].to), (503, udp(A)));
}

#[test]
fn a_call_from_udp_to_tcp_is_double_record_routed() {
    let mut h = harness(&[]);
    // B registers over TCP from an ephemeral port, with its listening port as contact.
    let reg = register(B_NUMBER, "1", "Expires: 600", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace(&format!("<sip:{B_NUMBER}@{B}>"), &format!("<sip:{B_NUMBER}@{B};transport=tcp>"));
    let flow = Peer::new(Transport::Tcp, "127.0.0.1:40000".parse().unwrap());
    let out = h.core.on_message(&wire(&reg), flow, h.now);
    assert_eq!(status(&out[0]), 200);
    assert_eq!(out[0].to, flow, "the answer goes back on the connection");
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    assert_eq!(out[1].to, flow, "the INVITE takes B's registration flow");
    assert_eq!(out[1].connect, B.parse::<SocketAddr>().unwrap(), "or B's contact if the flow is gone");
    let fwd = text(&out[1]);
    assert!(header(&fwd, "Via")[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060"), "{fwd}");
    assert_eq!(header(&fwd, "Record-Route"), vec!["<sip:127.0.0.1:5060;transport=tcp;lr>", "<sip:127.0.0.1:5060;lr>"]);
}

#[test]
fn draining_refuses_new_requests_and_waits_for_pending_answers() {
    let mut h = harness(&[]);
    h.register_b();
    let out = h.send(A, &invite(B_NUMBER, "z9hG4bKinv1", ""));
    let fwd = text(&out[1]);
    assert!(!h.core.is_idle(), "the INVITE waits for B");
    h.core.draining = true;
    let refused = h.send(A, &invite(B_NUMBER, "z9hG4bKinv2", "").replace("call-1", "call-2"));
    assert_eq!(status(&refused[0]), 503);
    assert_eq!(header(&text(&refused[0]), "Retry-After"), vec!["5"]);
    assert_eq!(status(&h.send(B, &register(B_NUMBER, "2", "Expires: 600", ""))[0]), 503);
    h.send(B, &answer(&fwd, "200 OK", ""));
    assert!(!h.core.is_idle(), "answered, the ACK is still to come");
    let ack = format!(
        "ACK sip:{B_NUMBER}@{B} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKack1;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5060;lr>
From: <sip:+815012345678@sip.example>;tag=a1
To: <sip:{B_NUMBER}@sip.example>;tag=b1
Call-ID: call-1
CSeq: 1 ACK
Content-Length: 0
"
    );
    assert_eq!(h.send(A, &ack)[0].to, udp(B));
    assert!(h.core.is_idle(), "answered and ACKed");
    // The dialog still ends through us.
    let bye = format!(
        "BYE sip:{B_NUMBER}@{B} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKbye1;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5060;lr>
From: <sip:+815012345678@sip.example>;tag=a1
To: <sip:{B_NUMBER}@sip.example>;tag=b1
Call-ID: call-1
CSeq: 2 BYE
Content-Length: 0
"
    );
    let out = h.send(A, &bye);
    assert_eq!(out[0].to, udp(B));
}
