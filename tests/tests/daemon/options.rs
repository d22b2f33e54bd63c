//! The capability answer (issue 7 item 4): before the first INVITE to a number, a site asks the
//! number's site with SIP OPTIONS which fast-path protocols it accepts, stores the one it will
//! use in its protocol table, and calls; a peer that accepts none of ours gets no INVITE and the
//! mail is relayed, as after a 488; a peer whose answer says nothing (no SDP) is called all the
//! same and the FP/1 `PROTOS?` fills the table.

use crate::fastpath::{ENABLED, caller_with, relay_target, relayed_once, send, site, wait_history};
use crate::support::sip::{Kamailio, Sipp};
use crate::support::stream_peer::{Script, StreamPeer};
use crate::support::*;

fn protocol_table(d: &Daemon) -> String {
    String::from_utf8_lossy(&cli(&d.config, &["protocol", "list"], "").stdout).into_owned()
}

/// sipp answering an OPTIONS with `status` and `body` (its Content-Length line and any body),
/// then, for `calls` = 2, a call whose answer has the media lines `sdp`.
fn asked_then_called(status: &str, body: &str, sdp: &str, calls: u32) -> Sipp {
    let replace = [("__OPTIONS_STATUS__", status), ("__OPTIONS_BODY__", body), ("__SDP__", sdp)];
    Sipp::start_calls("uas_options_then_answer.xml", &replace, &[], calls)
}

/// An SDP body listing `protocols` with port 0, as a capability answer does.
fn described(protocols: &str) -> String {
    format!(
        "Content-Type: application/sdp\nContent-Length: [len]\n\n\
         v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=application 0 TCP {protocols}"
    )
}

#[test]
fn the_first_message_to_a_number_asks_with_options_then_calls_by_fast_path() {
    let kam = Kamailio::start();
    let b = site(&kam, "b.example", "050-2222-2222", ENABLED, "");
    let relay = format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port());
    let a = site(&kam, "a.example", "050-1111-1111", "enabled = true\nsession_idle = \"0s\"", &relay);
    assert!(cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "").status.success());
    assert!(!protocol_table(&a).contains("+815022222222"), "nothing known yet");
    let id = send(&a, "bob@b.example", "asked first");
    let mail = &b.wait_mailbox("b.example/bob", 1)[0];
    assert!(mail.contains("Subject: asked first"), "{mail}");
    wait_history(&a, &id, "delivered via fast path to +815022222222");
    // A asked (B's agent answered for its number through Kamailio) before it called.
    let log = a.log();
    let asked = log.find("protocol learned from OPTIONS").unwrap_or_else(|| panic!("no OPTIONS answer in A's log:\n{log}"));
    let called = log.find("sip call").unwrap_or_else(|| panic!("no call in A's log:\n{log}"));
    assert!(asked < called, "OPTIONS before the INVITE:\n{log}");
    assert!(log[..asked].contains("outcome=\"answered\" protocols=[\"smtp\"]"), "{log}");
    assert!(kam.log().contains("method:  <OPTIONS>"), "Kamailio routed the OPTIONS");
    // The table came from OPTIONS, so the call skipped PROTOS? and counted one use of it.
    let table = protocol_table(&a);
    assert!(table.contains("+815022222222  smtp   1 uses  0 failures"), "{table}");
}

#[test]
fn a_peer_accepting_none_of_our_protocols_gets_no_invite_and_the_mail_is_relayed() {
    let b = relay_target();
    // One call only: the OPTIONS. An INVITE after it would find sipp gone and fail otherwise.
    let sipp = asked_then_called("200 OK", &described("http"), "m=application 9 TCP smtp", 1);
    let a = caller_with(sipp.addr, &b, "probe_options = true");
    let id = send(&a, "bob@b.example", "no smtp over there");
    let messages = sipp.passed();
    assert!(messages.contains("OPTIONS sip:+815022222222@") && messages.contains("Accept: application/sdp"), "{messages}");
    relayed_once(&a, &b, &id, "OPTIONS to +815022222222: it accepts none of our fast-path protocols (it lists: http)");
    let log = a.log();
    assert!(!log.contains("sip call"), "no INVITE was sent:\n{log}");
    assert!(!protocol_table(&a).contains("+815022222222"), "nothing to store");
}

#[test]
fn a_peer_answering_options_without_sdp_is_called_all_the_same() {
    let b = relay_target();
    let peer = StreamPeer::start(Script::Deliver);
    let sdp = format!("m=application {} TCP smtp\na=setup:passive\na=connection:new\na=fp-token:[$token]", peer.port);
    let sipp = asked_then_called("200 OK", "Content-Length: 0\n", &sdp, 2);
    let a = caller_with(sipp.addr, &b, "probe_options = true");
    let id = send(&a, "bob@b.example", "called anyway");
    let seen = peer.finish();
    assert!(seen.contains("FP/1 PROTOS?") && seen.contains("RCPT TO:<bob@b.example>"), "negotiated as without OPTIONS: {seen}");
    let messages = sipp.passed();
    let (options, invite) = (messages.find("OPTIONS sip:"), messages.find("INVITE sip:"));
    assert!(options.is_some() && invite.is_some() && options < invite, "{messages}");
    wait_history(&a, &id, "delivered via fast path to +815022222222");
    let table = protocol_table(&a);
    assert!(table.contains("+815022222222  smtp   0 uses  0 failures"), "PROTOS? filled the table: {table}");
}
