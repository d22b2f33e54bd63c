//! kill -9 right after `250`: the message must be found again after a restart (RFC 5321 §6.1).

use std::collections::HashSet;

use crate::support::smtp::Raw;
use crate::support::*;

#[test]
fn messages_survive_sigkill_right_after_250() {
    let (mut dir, mut config) = Daemon::prepare("trusted_networks = [\"127.0.0.0/8\"]", "");
    let mut ids = Vec::new();
    for round in 0..5 {
        let d = Daemon::start_with(dir, config);
        let (mut c, _) = Raw::connect(d.smtp);
        c.cmd("EHLO client.test");
        assert_eq!(c.cmd("MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>"), "250 2.1.5 Ok");
        assert_eq!(c.cmd("RCPT TO:<far@remote.example>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        let reply = c.cmd(&format!("Subject: crash round {round}\r\n\r\nbody\r\n."));
        // Kill the instant the 250 is read: nothing after it may be needed for durability.
        (dir, config) = d.kill9();
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
        ids.push(reply.rsplit(' ').next().unwrap().to_owned());
    }
    // Restart: the local copies are delivered (now or before the kill) ...
    let d = Daemon::start_with(dir, config);
    let mails = d.wait_mailbox("localhost/postmaster", ids.len());
    let mut found = HashSet::new();
    for id in &ids {
        // The Received header names the id (followed by `;` when there is no single `for`).
        let copies = mails.iter().filter(|m| m.contains(&format!(" id {id};")) || m.contains(&format!(" id {id}\n"))).count();
        assert!(copies >= 1, "message {id} was lost");
        if copies > 1 {
            eprintln!("message {id} delivered {copies} times (killed between delivery and bookkeeping)");
        }
        found.insert(id.clone());
    }
    assert_eq!(found.len(), 5);
    // ... and the relay recipients are still queued (their next hop refuses connections).
    let (code, _dir, config) = d.stop();
    assert_eq!(code, 0);
    for id in &ids {
        let shown = queue_show(&config, id);
        let state = &recipient(&shown, "far@remote.example")["state"];
        assert!(state == "queued" || state == "deferred", "{id}: {shown:#}");
    }
}
