//! Relay through the built daemon to real remote servers: swaks submits, dnsmasq names the
//! MX, smtp-sink plays the remote server. A bounce is checked with an independent RFC 3464
//! reader (Python's email package), and a daemon killed with deliveries in flight delivers
//! every message exactly once after restart.

use std::process::Command;

use crate::support::peers::{Dns, Sink};
use crate::support::*;

const END: &str = "END-OF-TEST-BODY";

/// A site whose DNS is a dnsmasq naming `mx1.remote.example` (127.0.0.1) as the MX of
/// `remote.example`, reached on the sink's port; alice@localhost may submit.
fn site_with_mx(dns: &Dns, sink: &Sink, extra: &str) -> Daemon {
    let relay = format!("[relay]\nnameservers = [\"{}\"]\nmx_port = {}\nretry = [\"1s\"]\n{extra}", dns.addr, sink.addr.port());
    let (dir, config) = Daemon::prepare("", &relay);
    let out = cli(&config, &["user", "add", "alice@localhost"], "alice's password\n");
    assert!(out.status.success(), "{}", transcript(&out));
    Daemon::start_with(dir, config)
}

fn mx_zone() -> Dns {
    Dns::start(&["--mx-host=remote.example,mx1.remote.example,10".into(), "--host-record=mx1.remote.example,127.0.0.1".into()])
}

fn submit_as_alice(d: &Daemon, to: &str, subject: &str) -> String {
    let out = swaks(
        d.submission,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@localhost",
            "--auth-password",
            "alice's password",
            "--from",
            "alice@localhost",
            "--to",
            to,
            "--h-Subject",
            subject,
            "--body",
            &format!("hello\n{END}"),
        ],
    );
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    queue_id(&t)
}

#[test]
fn swaks_submission_reaches_the_mx_found_in_dns() {
    let sink = Sink::start(&[], None);
    let dns = mx_zone();
    let d = site_with_mx(&dns, &sink, "");
    let id = submit_as_alice(&d, "bob@remote.example", "via MX");
    wait_for("smtp-sink to receive the message", || sink.messages().iter().any(|m| m.contains(END)));
    let got = sink.messages().into_iter().find(|m| m.contains(END)).unwrap();
    assert!(got.contains("Subject: via MX") && got.contains(&format!("by mx.test (sipmta) with ESMTPA id {id}")), "{got}");
    let mut shown = String::new();
    wait_for("the message to be recorded as relayed", || {
        shown = String::from_utf8_lossy(&cli(&d.config, &["queue", "show", &id], "").stdout).into_owned();
        shown.contains("no longer queued")
    });
    assert!(shown.contains("relayed: mx1.remote.example (250"), "{shown}");
}

#[test]
fn a_5xx_bounces_with_an_rfc3464_dsn() {
    require("python3");
    let sink = Sink::start(&["-f", "rcpt"], None);
    let dns = mx_zone();
    let d = site_with_mx(&dns, &sink, "");
    submit_as_alice(&d, "nobody@remote.example", "will bounce");
    let bounces = d.wait_mailbox("localhost/alice", 1);
    let file = d.mailbox("localhost/alice").remove(0);
    // An independent reader: Python's email package walks the MIME structure.
    let script = r#"
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
parts = [p.get_content_type() for p in m.walk()]
assert parts[1:4] == ['text/plain', 'message/delivery-status', 'message/rfc822'] or parts[1:3] == ['text/plain', 'message/delivery-status'], parts
status = next(p for p in m.walk() if p.get_content_type() == 'message/delivery-status')
groups = status.get_payload()
per_msg, per_rcpt = groups[0], groups[1]
print(per_msg['Reporting-MTA'], per_rcpt['Final-Recipient'], per_rcpt['Action'], per_rcpt['Status'], per_rcpt['Remote-MTA'], sep='|')
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}\n{}", transcript(&out), bounces[0]);
    let fields = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(fields, "dns; mx.test|rfc822; nobody@remote.example|failed|5.3.0|dns; mx1.remote.example", "{}", bounces[0]);
    assert!(bounces[0].starts_with("Return-Path: <>\n"), "{}", bounces[0]);
}

#[test]
fn a_daemon_killed_with_deliveries_in_flight_delivers_each_message_once() {
    // The remote waits 2 s before answering DATA, so the kill lands mid-transaction.
    let slow = Sink::start(&["-w", "2"], None);
    let dns = mx_zone();
    // One connection at a time: deliveries go one by one, 2 s each.
    let d = site_with_mx(&dns, &slow, "max_connections_per_destination = 1\n");
    let subjects: Vec<String> = (0..8).map(|i| format!("in flight {i}")).collect();
    for s in &subjects {
        submit_as_alice(&d, "bob@remote.example", s);
    }
    let mut d = d;
    // Kill once the first delivery has finished: the others are mid-transaction.
    d.wait_log("result=\"relayed\"");
    let (dir, config) = d.kill9();
    let port = slow.addr.port();
    let before: Vec<String> = slow.messages().into_iter().filter(|m| m.contains(END)).collect();
    assert!(!before.is_empty() && before.len() < subjects.len(), "the kill must land with deliveries in flight ({} done)", before.len());
    drop(slow);
    let sink = Sink::start(&[], Some(port));
    let d = Daemon::start_with(dir, config);
    let complete = || before.iter().cloned().chain(sink.messages().into_iter().filter(|m| m.contains(END))).collect::<Vec<_>>();
    wait_for("every message to arrive after the restart", || {
        subjects.iter().all(|s| complete().iter().any(|m| m.contains(&format!("Subject: {s}\n"))))
    });
    for s in &subjects {
        let copies = complete().iter().filter(|m| m.contains(&format!("Subject: {s}\n"))).count();
        assert_eq!(copies, 1, "{s} arrived {copies} times");
    }
    drop(d);
}
