//! Other ways to find a number (issue 6 item 4): ENUM NAPTR records served by dnsmasq, and
//! a static number -> SIP URI map, each calling the destination directly; a number ENUM does
//! not know falls back to relay with the reason in its history.

use std::net::SocketAddr;

use crate::fastpath::{relay_target, wait_history};
use crate::support::peers::Dns;
use crate::support::sip::{DOMAIN, Sipp, free_port};
use crate::support::stream_peer::{Script, StreamPeer};
use crate::support::*;

/// A site calling with `locators`, DNS from `dns`, relaying b.example to `relay` if given.
fn caller(fastpath: &str, dns: Option<&Dns>, relay: Option<&Daemon>) -> Daemon {
    let sip = free_port();
    let nameservers = dns.map_or("\"127.0.0.1:9\"".to_owned(), |d| format!("\"{}\"", d.addr));
    let transport = relay.map_or(String::new(), |b| format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    let tables = format!(
        "[registrar]\nenabled = false\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"127.0.0.1:9\"\ndomain = \"{DOMAIN}\"\nsession_idle = \"0s\"\n{fastpath}\n\
         [relay]\nretry = [\"1s\"]\ndns_timeout = \"2s\"\nnameservers = [{nameservers}]\n[relay.transport]\n{transport}"
    );
    let a = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"a.example\"]", &tables);
    let out = cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    a
}

fn mail(a: &Daemon, subject: &str) -> String {
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", subject]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    t
}

#[test]
fn enum_names_the_sip_uri_to_call() {
    let peer = StreamPeer::start(Script::Deliver);
    let sdp = format!("m=application {} TCP smtp\na=setup:passive\na=connection:new\na=fp-token:[$token]", peer.port);
    let sipp = Sipp::start("uas_answer_sdp.xml", &[("__SDP__", &sdp)], &[]);
    let port = sipp.addr.port();
    let dns = Dns::start(&[
        format!("--naptr-record=2.2.2.2.2.2.2.2.0.5.1.8.e164.example,100,10,U,E2U+sip,!^\\+81(.*)$!sip:+81\\1@sip-b.example:{port}!"),
        "--host-record=sip-b.example,127.0.0.1".into(),
    ]);
    // sipp answers INVITEs only: no OPTIONS first (the static map test below has them).
    let a = caller("locators = [\"enum\"]\nenum_suffix = \"e164.example\"\nprobe_options = false", Some(&dns), None);
    let t = mail(&a, "found in ENUM");
    assert!(t.contains("via fast path to +815022222222"), "{t}");
    assert!(peer.finish().contains("RCPT TO:<bob@b.example>"));
    let messages = sipp.passed();
    assert!(messages.contains(&format!("INVITE sip:+815022222222@sip-b.example:{port} SIP/2.0")), "{messages}");
}

#[test]
fn a_static_map_calls_the_destination_directly() {
    // B registers with its own registrar; A knows B's agent from its static map alone.
    let registrar = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let b_sip = free_port();
    let b = Daemon::start(
        "local_domains = [\"b.example\"]",
        &format!(
            "[registrar]\nlisten = \"{registrar}\"\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{b_sip}\"\nproxy = \"{registrar}\"\ndomain = \"{DOMAIN}\"\n\
             [[fastpath.numbers]]\nnumber = \"050-2222-2222\"\n"
        ),
    );
    let a = caller(
        &format!("locators = [\"static\", \"proxy\"]\n[fastpath.static_map]\n\"050-2222-2222\" = \"sip:+815022222222@127.0.0.1:{b_sip}\""),
        None,
        None,
    );
    let t = mail(&a, "from the static map");
    assert!(t.contains("via fast path to +815022222222"), "{t}");
    b.wait_mailbox("b.example/bob", 1);
    // B's agent was asked directly too, before the INVITE (issue 7 item 4).
    assert!(a.log().contains("protocol learned from OPTIONS"), "{}", a.log());
}

#[test]
fn a_number_enum_does_not_know_is_relayed() {
    let b = relay_target();
    let dns = Dns::start(&[]);
    let a = caller("locators = [\"enum\"]\nenum_suffix = \"e164.example\"", Some(&dns), Some(&b));
    let t = mail(&a, "not in ENUM");
    assert!(t.contains("queued as"), "{t}");
    let shown = wait_history(&a, &queue_id(&t), "no longer queued");
    assert!(
        shown.contains("fast path to +815022222222 failed: no SIP address for +815022222222 (ENUM: no E2U+sip record at 2.2.2.2.2.2.2.2.0.5.1.8.e164.example)"),
        "{shown}"
    );
    assert_eq!(b.wait_mailbox("b.example/bob", 1).len(), 1);
}
