//! Two sipmta sites registered with Kamailio exchange mail directly over the SIP fast path
//! (issue 5's "done when"), and every failure falls back to relay with nothing lost: sipp as
//! the remote user agent refuses, never answers or answers unusable SDP, and a scripted
//! stream peer refuses FP/1 or resets the stream in the middle of DATA.

use std::net::SocketAddr;

use crate::support::sip::{DOMAIN, Kamailio, Sipp, free_port};
use crate::support::smtp::Raw;
use crate::support::stream_peer::{Script, StreamPeer};
use crate::support::*;

/// A site owning `domain` and the number `number` (registered with `kam`); `fastpath` holds
/// extra `[fastpath]` keys, `relay_extra` extra `[relay.transport]` entries.
pub(crate) fn site(kam: &Kamailio, domain: &str, number: &str, fastpath: &str, relay_extra: &str) -> Daemon {
    let sip = free_port();
    let tables = format!(
        "[fastpath]\n{fastpath}\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{}\"\ndomain = \"{DOMAIN}\"\nanswer_budget = \"3s\"\n\
         [[fastpath.numbers]]\nnumber = \"{number}\"\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"\n{relay_extra}",
        kam.addr
    );
    Daemon::start(&format!("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"{domain}\"]"), &tables)
}

pub(crate) const ENABLED: &str = "enabled = true";

pub(crate) fn send(from: &Daemon, to: &str, subject: &str) -> String {
    let out = from.swaks(&["--to", to, "--from", "alice@a.example", "--h-Subject", subject]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    queue_id(&t)
}

pub(crate) fn history(d: &Daemon, id: &str) -> String {
    String::from_utf8_lossy(&cli(&d.config, &["queue", "show", id], "").stdout).into_owned()
}

/// Wait until `d`'s history of `id` contains `needle`; shows the history if it never does.
pub(crate) fn wait_history(d: &Daemon, id: &str, needle: &str) -> String {
    let mut shown = String::new();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        shown = history(d, id);
        if shown.contains(needle) {
            return shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no {needle:?} in the history of {id} after 20 s:\n{shown}\nlog:\n{}", d.log());
}

#[test]
fn two_sites_exchange_mail_over_the_fast_path() {
    let kam = Kamailio::start();
    let b = site(&kam, "b.example", "050-2222-2222", ENABLED, "");
    // Each message on a new session (no reuse), so the second call shows the protocol table;
    // no OPTIONS first, so that the first call fills it with PROTOS? (options.rs has the other way).
    let a = site(
        &kam,
        "a.example",
        "050-1111-1111",
        "enabled = true\nsession_idle = \"0s\"\nprobe_options = false",
        &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()),
    );
    let out = cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let id = send(&a, "bob@b.example", "first by fast path");
    let mail = &b.wait_mailbox("b.example/bob", 1)[0];
    assert!(mail.contains("Subject: first by fast path"), "{mail}");
    wait_history(&a, &id, "delivered via fast path to +815022222222");
    assert!(kam.log().contains("INVITE"), "Kamailio saw the INVITE");
    assert!(!kam.log().contains("method:  <OPTIONS>"), "probe_options = false: no OPTIONS");
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  smtp   0 uses"), "the first call negotiated: {table}");
    // The second message to the same number skips PROTOS? (the protocol table knows smtp).
    let second = send(&a, "carol@b.example", "second, known protocol");
    b.wait_mailbox("b.example/carol", 1);
    wait_history(&a, &second, "delivered via fast path");
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  smtp   1 uses"), "the second call used the table: {table}");
}

#[test]
fn an_unregistered_number_falls_back_to_relay_and_delivers_once() {
    let kam = Kamailio::start();
    // B does not run its fast path: Kamailio has nobody registered for its number.
    let b = site(&kam, "b.example", "050-2222-2222", "enabled = false", "");
    let a = site(&kam, "a.example", "050-1111-1111", ENABLED, &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    assert!(cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "").status.success());
    let id = send(&a, "bob@b.example", "falls back");
    let mail = b.wait_mailbox("b.example/bob", 1);
    assert_eq!(mail.len(), 1);
    let shown = wait_history(&a, &id, "no longer queued");
    assert!(shown.contains("fast path to +815022222222 failed: SIP call to +815022222222: ") && shown.contains("relaying"), "{shown}");
    assert!(shown.contains("relayed: 127.0.0.1"), "{shown}");
    assert_eq!(b.mailbox("b.example/bob").len(), 1, "delivered exactly once");
}

#[test]
fn a_callee_behind_nat_dials_out_for_the_stream() {
    let kam = Kamailio::start();
    let b = site(&kam, "b.example", "050-2222-2222", "enabled = true\nmedia_role = \"active\"", "");
    let a = site(&kam, "a.example", "050-1111-1111", ENABLED, &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    assert!(cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "").status.success());
    let id = send(&a, "bob@b.example", "B connects to A");
    let mail = &b.wait_mailbox("b.example/bob", 1)[0];
    assert!(mail.contains("Subject: B connects to A"), "{mail}");
    wait_history(&a, &id, "delivered via fast path to +815022222222");
    assert!(b.log().contains("role=Active"), "B dialled out for the stream:\n{}", b.log());
}

/// A site calling straight at `proxy` (a sipp UAS) for b.example's number, with no numbers of
/// its own, and relaying to `b` when the fast path fails.
pub(crate) fn caller_towards(proxy: SocketAddr, b: &Daemon, answer_budget: &str) -> Daemon {
    caller_with(proxy, b, &format!("answer_budget = \"{answer_budget}\""))
}

/// [`caller_towards`] with extra `[fastpath]` keys. The sipp scenarios these callers talk to
/// answer INVITEs only (sipp aborts a call that starts with OPTIONS), so asking with OPTIONS
/// first is off unless `fastpath` sets `probe_options`.
pub(crate) fn caller_with(proxy: SocketAddr, b: &Daemon, fastpath: &str) -> Daemon {
    let fastpath = if fastpath.contains("probe_options") { fastpath.to_owned() } else { format!("probe_options = false\n{fastpath}") };
    let sip = free_port();
    let tables = format!(
        "[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{proxy}\"\ndomain = \"{DOMAIN}\"\n{fastpath}\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"b.example\" = \"[127.0.0.1]:{}\"\n",
        b.smtp.port()
    );
    let a = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"a.example\"]", &tables);
    let out = cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    a
}

/// B without a fast path: the relay target every failure falls back to.
pub(crate) fn relay_target() -> Daemon {
    Daemon::start("local_domains = [\"b.example\"]", "")
}

/// The message `id` from A reached B exactly once, by relay, and A's history says `why`.
pub(crate) fn relayed_once(a: &Daemon, b: &Daemon, id: &str, why: &str) {
    b.wait_mailbox("b.example/bob", 1);
    let shown = wait_history(a, id, "no longer queued");
    assert!(shown.contains(&format!("fast path to +815022222222 failed: {why}")) && shown.contains("relaying"), "{shown}");
    assert!(shown.contains("relayed: 127.0.0.1"), "{shown}");
    assert!(!shown.contains("delivered via fast path"), "{shown}");
    assert_eq!(b.mailbox("b.example/bob").len(), 1, "delivered exactly once");
}

fn rejected_then_relayed(code: u16, reason: &str) {
    let b = relay_target();
    let sipp = Sipp::start("uas_reject.xml", &[("__CODE__", &code.to_string())], &[("reason", reason)]);
    let a = caller_towards(sipp.addr, &b, "5s");
    let id = send(&a, "bob@b.example", &format!("refused {code}"));
    let messages = sipp.passed();
    assert!(messages.contains("user=phone"), "{messages}");
    relayed_once(&a, &b, &id, &format!("SIP call to +815022222222: call rejected: {code} {reason}"));
}

#[test]
fn a_404_falls_back_to_relay() {
    rejected_then_relayed(404, "Not Found");
}

#[test]
fn a_486_falls_back_to_relay() {
    rejected_then_relayed(486, "Busy Here");
}

#[test]
fn a_488_falls_back_to_relay() {
    rejected_then_relayed(488, "Not Acceptable Here");
}

#[test]
fn no_answer_is_cancelled_and_falls_back_to_relay() {
    let b = relay_target();
    let sipp = Sipp::start("uas_no_answer.xml", &[], &[]);
    let a = caller_towards(sipp.addr, &b, "1s");
    let id = send(&a, "bob@b.example", "never answered");
    let messages = sipp.passed();
    assert!(messages.contains("CANCEL sip:"), "sipp saw the CANCEL: {messages}");
    relayed_once(&a, &b, &id, "SIP call to +815022222222: no answer within the budget (CANCEL sent)");
}

#[test]
fn an_answer_without_a_fast_path_stream_falls_back_to_relay() {
    let b = relay_target();
    // A telephone answered: audio only, nothing for an application stream.
    let sipp = Sipp::start("uas_answer_sdp.xml", &[("__SDP__", "m=audio 49170 RTP/AVP 0")], &[]);
    let a = caller_towards(sipp.addr, &b, "5s");
    let id = send(&a, "bob@b.example", "answered by a phone");
    // The scenario passes only if A ACKed the 200 and then hung up with BYE.
    let messages = sipp.passed();
    assert!(messages.contains("BYE sip:"), "{messages}");
    relayed_once(&a, &b, &id, "unusable SDP answer from +815022222222: answer declines the application/TCP stream");
}

/// sipp answers `calls` calls with a passive stream at the scripted peer's port, echoing each
/// offer's token.
pub(crate) fn answered_into(peer: &StreamPeer, calls: u32) -> Sipp {
    let sdp = format!("m=application {} TCP smtp\na=setup:passive\na=connection:new\na=fp-token:[$token]", peer.port);
    Sipp::start_calls("uas_answer_sdp.xml", &[("__SDP__", &sdp)], &[], calls)
}

#[test]
fn an_fp1_refusal_falls_back_to_relay() {
    let b = relay_target();
    let peer = StreamPeer::start(Script::RefuseInPreamble);
    let sipp = answered_into(&peer, 1);
    let a = caller_towards(sipp.addr, &b, "5s");
    let id = send(&a, "bob@b.example", "refused in FP/1");
    let seen = peer.finish();
    assert!(seen.starts_with("FP/1 HELLO "), "{seen}");
    sipp.passed();
    relayed_once(&a, &b, &id, "FP/1 with +815022222222: FP/1 peer refused: 503 overloaded");
}

#[test]
fn a_stream_reset_during_data_falls_back_to_relay() {
    let b = relay_target();
    let peer = StreamPeer::start(Script::ResetInData);
    let sipp = answered_into(&peer, 1);
    let a = caller_towards(sipp.addr, &b, "5s");
    let id = send(&a, "bob@b.example", "reset in DATA");
    let seen = peer.finish();
    assert!(seen.contains("FP/1 USE smtp") && seen.contains("RCPT TO:<bob@b.example>") && seen.contains("DATA"), "{seen}");
    sipp.passed();
    relayed_once(&a, &b, &id, "SMTP over the fast path to +815022222222: ");
    let mail = std::fs::read_to_string(&b.mailbox("b.example/bob")[0]).unwrap();
    assert!(mail.contains("Subject: reset in DATA"), "{mail}");
}

#[test]
fn a_refused_use_clears_the_protocol_table_and_falls_back_to_relay() {
    let b = relay_target();
    let peer = StreamPeer::sequence(vec![Script::Deliver, Script::RefuseUse]);
    let sipp = answered_into(&peer, 2);
    // A new session for each message, so the second one makes a call of its own.
    let a = caller_with(sipp.addr, &b, "session_idle = \"0s\"");
    // The first call negotiates smtp and the peer, a final server offering DSN, stores the
    // message: the sender's DSN requests go to it.
    let (mut raw, _) = Raw::connect(a.smtp);
    assert!(raw.cmd("EHLO client.test").starts_with("250"));
    assert!(raw.cmd("MAIL FROM:<alice@a.example> RET=HDRS ENVID=fp-envid-1").starts_with("250"));
    assert!(raw.cmd("RCPT TO:<carol@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@b.example").starts_with("250"));
    assert!(raw.cmd("DATA").starts_with("354"));
    let queued = raw.cmd("Subject: stored by the peer\r\n\r\nhello\r\n.");
    let first = queue_id(&queued);
    wait_history(&a, &first, "delivered via fast path to +815022222222");
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  smtp   0 uses  0 failures"), "{table}");
    // The second skips PROTOS? and the peer refuses the known protocol.
    let second = send(&a, "bob@b.example", "USE refused");
    let streams = peer.finish_all();
    assert!(streams[0].contains("FP/1 PROTOS?") && streams[0].contains("\n."), "{}", streams[0]);
    assert!(streams[0].contains("MAIL FROM:<alice@a.example> RET=HDRS ENVID=fp-envid-1"), "{}", streams[0]);
    assert!(streams[0].contains("RCPT TO:<carol@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@b.example"), "{}", streams[0]);
    assert!(!streams[1].contains("PROTOS?") && streams[1].contains("FP/1 USE smtp"), "{}", streams[1]);
    sipp.passed();
    relayed_once(&a, &b, &second, "FP/1 with +815022222222: FP/1 protocol smtp not supported by the callee");
    assert!(a.mailbox("a.example/alice").is_empty(), "the final server reports success, not A");
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  -      0 uses  1 failures  last failure: FP/1 protocol smtp not supported"), "{table}");
}
