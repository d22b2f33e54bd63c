//! Mail for a local domain lands in Maildir: plain, pipelined, 8-bit, UTF-8 addresses.

use crate::support::smtp::Raw;
use crate::support::*;

#[test]
fn swaks_mail_to_postmaster_lands_in_maildir() {
    let d = Daemon::start("", "");
    let out = d.swaks(&[
        "--to",
        "postmaster@localhost",
        "--from",
        "sender@example.org",
        "--h-Subject",
        "hello maildir",
        "--body",
        "first line\nsecond line",
    ]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("<-  250 2.0.0 Ok: queued as "), "{t}");
    let mail = &d.wait_mailbox("localhost/postmaster", 1)[0];
    assert!(mail.starts_with("Return-Path: <sender@example.org>\nDelivered-To: postmaster@localhost\nReceived: from client.test ([127.0.0.1])\n\tby mx.test (sipmta) with ESMTP id "), "{mail}");
    assert!(mail.contains(&format!("id {}\n", queue_id(&t))), "{mail}");
    assert!(mail.contains("Subject: hello maildir\n") && mail.contains("\nfirst line\nsecond line\n"), "{mail}");
    // Every recipient finished: the spool is empty (checked with the CLI once stopped).
    let (code, _dir, config) = d.stop();
    assert_eq!(code, 0);
    let q = cli(&config, &["queue", "list"], "");
    assert!(String::from_utf8_lossy(&q.stdout).contains("-- 0 messages in the queue"), "{}", transcript(&q));
}

#[test]
fn pipelined_submission_with_swaks() {
    let d = Daemon::start("", "");
    let out = d.swaks(&["--pipeline", "--to", "postmaster@localhost,abuse@localhost", "--from", "sender@example.org"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    d.wait_mailbox("localhost/postmaster", 1);
    d.wait_mailbox("localhost/abuse", 1);
}

#[test]
fn eight_bit_bodies_arrive_intact() {
    let d = Daemon::start("", "");
    let body = "Grüße aus Köln — 東京の事務所より";
    let out = d.swaks(&[
        "--to",
        "postmaster@localhost",
        "--from",
        "sender@example.org",
        "--h-Content-Type",
        "text/plain; charset=utf-8",
        "--body",
        body,
    ]);
    assert!(out.status.success(), "{}", transcript(&out));
    let mail = &d.wait_mailbox("localhost/postmaster", 1)[0];
    assert!(mail.contains(body), "{mail}");
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let d = Daemon::start("", "");
    // swaks cannot send SMTPUTF8, so it must be refused with the RFC 6531 code ...
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "δοκιμή@example.org"]);
    assert!(transcript(&out).contains("553 5.6.7"), "{}", transcript(&out));
    // ... and a client that says SMTPUTF8 gets it delivered.
    let (mut c, greeting) = Raw::connect(d.smtp);
    assert!(greeting.starts_with("220 "));
    assert!(c.cmd("EHLO client.test").contains("SMTPUTF8"));
    assert_eq!(c.cmd("MAIL FROM:<δοκιμή@example.org> SMTPUTF8"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<用户@localhost>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: utf8\r\n\r\nhi\r\n.").starts_with("250 2.0.0"));
    let mail = &d.wait_mailbox("localhost/用户", 1)[0];
    assert!(mail.starts_with("Return-Path: <δοκιμή@example.org>\n"), "{mail}");
    assert!(mail.contains("with UTF8SMTP id"), "{mail}");
}
