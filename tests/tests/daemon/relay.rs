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
fn trusted_networks_relay_and_the_message_waits_for_the_relay_queue() {
    let d = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]", "");
    let out = d.swaks(&["--to", "someone@remote.example", "--from", "sender@example.org"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    let id = queue_id(&t);
    let (_, _dir, config) = d.stop();
    let show = cli(&config, &["queue", "show", &id], "");
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success() && text.contains("\"route\": \"relay\"") && text.contains("\"state\": \"queued\""),
        "{}",
        transcript(&show)
    );
}
