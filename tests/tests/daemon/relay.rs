//! Relaying to other domains is refused without authentication, on every listener.

use crate::support::*;

#[test]
fn relay_without_authentication_is_refused() {
    let d = Daemon::start("", "");
    let out = d.swaks(&["--to", "someone@remote.example", "--from", "sender@example.org"]);
    let t = transcript(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("<** 554 5.7.1 <someone@remote.example>: Relay access denied"), "{t}");
    // Submission wants AUTH before anything else, from loopback too.
    let out = swaks(d.submission, &["--to", "someone@remote.example", "--from", "sender@example.org"]);
    assert!(transcript(&out).contains("<** 530 5.7.0 Authentication required"), "{}", transcript(&out));
}

#[test]
fn relay_tricks_are_refused() {
    let d = Daemon::start("", "");
    for rcpt in [
        "user%remote.example@localhost",
        "remote.example!user@localhost",
        "@localhost:user@remote.example",
        "\"user@remote.example\"@localhost",
    ] {
        let out = d.swaks(&["--to", rcpt, "--from", "sender@example.org", "--quit-after", "RCPT"]);
        let t = transcript(&out);
        assert!(t.contains("<** 5"), "{rcpt} was not refused:\n{t}");
    }
}

#[test]
fn trusted_networks_relay_and_an_unreachable_next_hop_defers() {
    let d = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]", "");
    let out = d.swaks(&["--to", "someone@remote.example", "--from", "sender@example.org"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    let id = queue_id(&t);
    // The next hop (a closed port) refuses the connection: deferred with the reason and a retry
    // scheduled; nothing bounced. Watched through the running daemon's admin API.
    let mut shown = serde_json::Value::Null;
    wait_for("the deferral to be recorded", || {
        shown = queue_show(&d.config, &id);
        recipient(&shown, "someone@remote.example")["state"] == "deferred"
    });
    let r = recipient(&shown, "someone@remote.example");
    assert_eq!(r["route"]["route"], "relay", "{shown:#}");
    assert!(r["last_reply"].as_str().unwrap_or_default().contains("connect to 127.0.0.1[127.0.0.1] failed"), "{shown:#}");
    let history = shown["history"].to_string();
    assert!(!history.contains("DSN"), "a deferral sends no DSN yet:\n{shown:#}");
}
