//! The built-in SIP registrar/proxy (issue 6): two sipmta sites exchange mail by fast path
//! with one of them as the registrar and no other software, registrations survive a restart
//! of the registrar's daemon, and a foreign user agent (sipp) registered with it takes a call
//! (after refusing the OPTIONS its proxy forwarded, which does not stop the call).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::fastpath::{send, wait_history};
use crate::support::sip::{DOMAIN, Sipp, free_port};
use crate::support::stream_peer::{Script, StreamPeer};
use crate::support::*;

/// A site with `number`, its fast path registering through `proxy`; `registrar` is its own
/// `[registrar]` section (or `enabled = false`).
fn site(domain: &str, number: &str, proxy: SocketAddr, registrar: &str, extra: &str) -> Daemon {
    site_with(domain, number, proxy, registrar, "", extra)
}

/// [`site`] with more `[fastpath]` keys.
fn site_with(domain: &str, number: &str, proxy: SocketAddr, registrar: &str, fastpath: &str, extra: &str) -> Daemon {
    let sip = free_port();
    let tables = format!(
        "[registrar]\n{registrar}\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{proxy}\"\ndomain = \"{DOMAIN}\"\nsession_idle = \"0s\"\n{fastpath}\n\
         [[fastpath.numbers]]\nnumber = \"{number}\"\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"\n{extra}"
    );
    Daemon::start(&format!("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"{domain}\"]"), &tables)
}

/// A runs the registrar on `port`; B registers there.
fn a_with_registrar(port: u16) -> Daemon {
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let a = site("a.example", "050-1111-1111", proxy, &format!("listen = \"{proxy}\""), "");
    assert!(a.log().contains(&format!("registrar listener on {proxy}")), "{}", a.log());
    a
}

fn route(d: &Daemon, key: &str, number: &str) {
    let out = cli(&d.config, &["route", "add", key, number], "");
    assert!(out.status.success(), "{}", transcript(&out));
}

#[test]
fn two_sites_and_the_built_in_registrar_need_no_other_software() {
    let port = free_port();
    let a = a_with_registrar(port);
    let b = site("b.example", "050-2222-2222", SocketAddr::from(([127, 0, 0, 1], port)), "enabled = false", "");
    route(&a, "b.example", "050-2222-2222");
    route(&b, "a.example", "050-1111-1111");
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "through our registrar"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("via fast path to +815022222222"), "{t}");
    b.wait_mailbox("b.example/bob", 1);
    // And back: B calls A's number through the same registrar.
    let id = send(&b, "alice@a.example", "and back");
    a.wait_mailbox("a.example/alice", 1);
    wait_history(&b, &id, "delivered via fast path to +815011111111");
    // What the operator sees of it: A's metrics and status page.
    let scrape = a.admin_get("/metrics");
    for line in [
        "sipmta_sip_registered{number=\"+815011111111\"} 1",
        "sipmta_registrar_bindings 2",
        "sipmta_fastpath_setup_seconds_count 1",
        "sipmta_deliveries_total{route=\"fast\",result=\"delivered\"} 1",
        "sipmta_deliveries_total{route=\"local\",result=\"delivered\"} 1",
        "sipmta_messages_received_total{listener=\"fastpath\"} 1",
        "sipmta_queue_messages 0",
    ] {
        assert!(scrape.lines().any(|l| l == line), "no `{line}` in A's /metrics:\n{scrape}");
    }
    let page = a.admin_get("/status");
    assert!(page.contains("<td>+815011111111</td><td>yes, "), "{page}");
    assert!(page.contains("Built-in registrar: 2 live contact(s)."), "{page}");
    assert!(page.contains("<td>bob@b.example</td><td>fast</td><td>delivered</td>"), "{page}");
}

#[test]
fn registrations_survive_a_restart_of_the_registrar() {
    let port = free_port();
    let a = a_with_registrar(port);
    let b = site("b.example", "050-2222-2222", SocketAddr::from(([127, 0, 0, 1], port)), "enabled = false", "");
    route(&a, "b.example", "050-2222-2222");
    let (code, dir, config) = a.stop();
    assert_eq!(code, 0);
    // B does not register again (its registration lasts an hour): A's store remembers it.
    let a = Daemon::start_with(dir, config);
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "after a restart"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("via fast path to +815022222222"), "{t}");
    b.wait_mailbox("b.example/bob", 1);
}

/// A registrar that is down when a site starts (a reboot, Kamailio restarting) does not keep
/// the site's mail server down: it starts, says it is not registered, and registers once the
/// registrar answers; then calls reach it.
#[test]
fn a_site_starts_while_its_registrar_is_down_and_registers_when_it_comes_up() {
    let port = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // Nothing listens at `proxy` yet. The stack retries the TCP connect as it would retransmit
    // over UDP, so the first REGISTER goes through once the registrar is up (within Timer F,
    // 32 s; later ones are retried with back-off).
    let mut b = site_with("b.example", "050-2222-2222", proxy, "enabled = false", "transport = \"tcp\"", "");
    b.wait_log("no answer to a first REGISTER yet; starting without it");
    let a = a_with_registrar(port);
    b.wait_line(|l| l.contains(" registered number=+815022222222"));
    route(&a, "b.example", "050-2222-2222");
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "registrar came up late"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("via fast path to +815022222222"), "{t}");
    b.wait_mailbox("b.example/bob", 1);
}

/// Register `number` at `registrar` with `contact` from the test itself (a third-party
/// registration, RFC 3261 §10.2), as sipp cannot both register and take a call in one scenario.
fn register(registrar: SocketAddr, number: &str, contact: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = socket.local_addr().unwrap();
    let request = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-third-party-1;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{number}@{DOMAIN}>;tag=tp1\r\nTo: <sip:{number}@{DOMAIN}>\r\nCall-ID: third-party-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:{number}@{contact}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), registrar).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if answer.starts_with("SIP/2.0 1") {
            continue;
        }
        assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
        return;
    }
}

#[test]
fn a_foreign_user_agent_registered_with_it_takes_the_call() {
    let port = free_port();
    let registrar = SocketAddr::from(([127, 0, 0, 1], port));
    let a = a_with_registrar(port);
    let peer = StreamPeer::start(Script::Deliver);
    let sdp = format!("m=application {} TCP smtp\na=setup:passive\na=connection:new\na=fp-token:[$token]", peer.port);
    // It does not do OPTIONS (405): A asks first through the proxy, then calls all the same.
    let replace =
        [("__OPTIONS_STATUS__", "405 Method Not Allowed"), ("__OPTIONS_BODY__", "Content-Length: 0\n"), ("__SDP__", sdp.as_str())];
    let sipp = Sipp::start_calls("uas_options_then_answer.xml", &replace, &[], 2);
    register(registrar, "+815033333333", sipp.addr);
    route(&a, "c.example", "050-3333-3333");
    let out = a.swaks(&["--to", "carol@c.example", "--from", "alice@a.example", "--h-Subject", "to a foreign agent"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("via fast path to +815033333333"), "{t}");
    let seen = peer.finish();
    assert!(seen.contains("RCPT TO:<carol@c.example>"), "{seen}");
    let messages = sipp.passed();
    assert!(messages.contains("Record-Route:"), "the INVITE came through the registrar's proxy: {messages}");
    assert!(messages.contains("OPTIONS sip:+815033333333@"), "so did the OPTIONS before it: {messages}");
    assert!(a.log().contains("outcome=\"rejected\" code=405"), "{}", a.log());
}
