//! The fast path in real time (issue 6): the sending client's DATA reply carries the final
//! server's verdict, a single recipient's refusal comes back as that 5xx with no bounce, a
//! verdict that takes longer than the budget leaves the reply at "queued" while the fast path
//! finishes, and an open session carries the next message to the same number. The message is
//! spooled before the attempt starts, so a crash during it loses nothing, and the client's
//! resend after that crash is recognised rather than spooled twice.

use crate::fastpath::{ENABLED, answered_into, caller_with, relay_target, send, site, wait_history};
use crate::support::sip::{Kamailio, Sipp};
use crate::support::stream_peer::{Script, StreamPeer};
use crate::support::*;

/// A and B registered with `kam`; A routes b.example to B's number and relays it to B.
fn two_sites(kam: &Kamailio, b_extra: &str) -> (Daemon, Daemon) {
    let b = site(kam, "b.example", "050-2222-2222", ENABLED, b_extra);
    let a = site(kam, "a.example", "050-1111-1111", ENABLED, &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    let out = cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    (a, b)
}

/// B (for relay), a final server that holds its answer until released, the sipp that answers
/// one call into it, and A whose fast path calls there with an inline budget of `budget`.
fn held_final_server(budget: &str) -> (Daemon, StreamPeer, Sipp, Daemon) {
    let b = relay_target();
    let peer = StreamPeer::start(Script::DeliverWhenReleased);
    let sipp = answered_into(&peer, 1);
    let a = caller_with(sipp.addr, &b, &format!("inline_budget = \"{budget}\"\nsession_idle = \"0s\""));
    (b, peer, sipp, a)
}

#[test]
fn the_client_hears_the_final_servers_verdict() {
    let kam = Kamailio::start();
    let (a, b) = two_sites(&kam, "");
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "verdict inline"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    let reply = t.lines().find(|l| l.contains("delivered as ")).unwrap_or_else(|| panic!("no inline verdict:\n{t}"));
    assert!(reply.contains("250 2.0.0 Ok: delivered as ") && reply.contains(" via fast path to +815022222222 in "), "{reply}");
    assert!(reply.contains("(final server: 250 2.0.0 Ok: queued as "), "B's own answer is quoted: {reply}");
    // B's 250 (the verdict) means B has spooled it; its Maildir delivery follows.
    b.wait_mailbox("b.example/bob", 1);
    wait_history(&a, &queue_id(&t), "delivered via fast path to +815022222222");
}

#[test]
fn a_single_recipients_refusal_comes_back_as_the_5xx_without_a_bounce() {
    let kam = Kamailio::start();
    // B knows no users: RCPT for nobody@b.example is refused for good.
    let (a, _b) = two_sites(&kam, "\n[local]\nknown_users_only = [\"b.example\"]\n");
    let message = [
        "--to",
        "nobody@b.example",
        "--from",
        "alice@a.example",
        "--h-Subject",
        "to nobody",
        "--h-Date",
        "Sat, 21 Nov 2026 10:00:00 +0000",
        "--h-Message-Id",
        "<refused-1@a.example>",
    ];
    let out = a.swaks(&message);
    let t = transcript(&out);
    assert!(!out.status.success(), "the client sees the refusal:\n{t}");
    assert!(t.contains("<** 550 5.1.1 final server via fast path to +815022222222: "), "{t}");
    // Sent again, it is tried again: a refused message is not one we took (spool.resend_window).
    let again = transcript(&a.swaks(&message));
    assert!(again.contains("<** 550 5.1.1 final server via fast path to +815022222222: "), "{again}");
    let mut shown = String::new();
    wait_for("A to record the refusal", || {
        shown = String::from_utf8_lossy(&cli(&a.config, &["history", "--rcpt", "nobody@b.example"], "").stdout).into_owned();
        shown.contains("the sending client got this refusal as its DATA reply; no DSN")
    });
    assert!(shown.contains("failed via fast path to +815022222222 (550 5.1.1"), "{shown}");
    assert!(a.mailbox("a.example/alice").is_empty(), "no bounce for a refusal the client already has");
}

#[test]
fn past_the_budget_the_reply_says_queued_and_the_fast_path_still_delivers_once() {
    let (b, peer, sipp, a) = held_final_server("500ms");
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "slow final server"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("250 2.0.0 Ok: queued as "), "{t}");
    let id = queue_id(&t);
    // Only now may the final server answer; the fast path's result still counts.
    peer.release();
    peer.finish();
    sipp.passed();
    let shown = wait_history(&a, &id, "no longer queued");
    assert!(shown.contains("delivered via fast path to +815022222222 (250 2.0.0 stored)"), "{shown}");
    assert!(!shown.contains("relaying"), "never relayed as well: {shown}");
    assert!(b.mailbox("b.example/bob").is_empty(), "nothing went by relay");
}

#[test]
fn an_open_session_carries_the_next_message() {
    let kam = Kamailio::start();
    let (a, b) = two_sites(&kam, "");
    let first = send(&a, "bob@b.example", "opens the session");
    let second = send(&a, "carol@b.example", "rides the same session");
    b.wait_mailbox("b.example/bob", 1);
    b.wait_mailbox("b.example/carol", 1);
    wait_history(&a, &first, "delivered via fast path to +815022222222");
    wait_history(&a, &second, "delivered via fast path to +815022222222");
    let log = a.log();
    assert_eq!(log.matches("sip call number=+815022222222 outcome=\"answered\"").count(), 1, "one call for both:\n{log}");
    assert!(log.contains("reused=true"), "{log}");
}

#[test]
fn a_message_is_durable_before_the_fast_path_starts_and_its_resend_after_a_crash_is_recognised() {
    let (_b, peer, sipp, a) = held_final_server("30s");
    // A real client's resend is the same message: pinned here where swaks would vary it.
    let message = [
        "--to",
        "bob@b.example",
        "--from",
        "alice@a.example",
        "--h-Subject",
        "held by the final server",
        "--h-Date",
        "Sat, 21 Nov 2026 10:00:00 +0000",
        "--h-Message-Id",
        "<resend-1@a.example>",
    ];
    let smtp = a.smtp;
    let client = std::thread::spawn(move || transcript(&swaks(smtp, &message)));
    // The final server has the whole message and holds its reply; the client waits for ours.
    peer.wait_held();
    let queue = transcript(&cli(&a.config, &["queue", "list"], ""));
    assert!(
        queue.contains("-- 1 messages in the queue") || queue.contains("-- 1 message in the queue"),
        "spooled before the fast path started:\n{queue}"
    );
    let id = queue.split_whitespace().next().unwrap().to_owned();
    let (dir, config) = a.kill9();
    let t = client.join().unwrap();
    assert!(!t.contains("delivered as") && !t.contains("queued as"), "no reply to the final dot before the kill:\n{t}");
    // The client sends it again, as it must; the restarted A knows it already has it.
    let a = Daemon::start_with(dir, config);
    let t = transcript(&a.swaks(&message));
    assert!(t.contains(&format!("250 2.0.0 Ok: already accepted, the same message was sent again: queued as {id}")), "{t}");
    wait_history(&a, &id, "sent again by 127.0.0.1");
    drop(sipp);
}
