//! Following one message in the daemon's own log (issue 9 item 3): `sipmta log ID` picks its
//! reception and delivery lines out of a log that also holds another message's.

use crate::support::{Daemon, cli, queue_id, transcript, wait_for};

#[test]
fn sipmta_log_follows_one_message_through_the_daemons_log() {
    let d = Daemon::start("local_domains = [\"a.example\"]", "");
    let first = d.swaks(&["--to", "bob@a.example", "--from", "x@elsewhere.test", "--h-Subject", "followed"]);
    assert!(first.status.success(), "{}", transcript(&first));
    let id = queue_id(&transcript(&first));
    let other = d.swaks(&["--to", "carol@a.example", "--from", "y@elsewhere.test"]);
    assert!(other.status.success(), "{}", transcript(&other));
    let other_id = queue_id(&transcript(&other));
    d.wait_mailbox("a.example/bob", 1);
    d.wait_mailbox("a.example/carol", 1);
    wait_for("both delivery lines", || d.log().matches(" delivery ").count() >= 2 || d.log().matches("delivery queue_id").count() >= 2);
    // `sipmta serve` capped glibc's arenas at start (mta/src/malloc.rs, RELIABILITY.md §5).
    assert!(d.log().contains("malloc arenas capped"), "{}", d.log());
    let log_file = d.dir.path().join("copy.log");
    std::fs::write(&log_file, d.log()).unwrap();

    let out = cli(&d.config, &["log", &id, log_file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(lines.lines().any(|l| l.contains("message accepted") && l.contains("listener=")), "{lines}");
    assert!(
        lines.lines().any(|l| l.contains("delivery") && l.contains("rcpt=bob@a.example") && l.contains("result=\"delivered\"")),
        "{lines}"
    );
    assert!(!lines.contains(&other_id) && !lines.contains("carol@a.example"), "only the message asked for: {lines}");
    // From standard input, as `journalctl -o cat | sipmta log ID` gives it.
    let piped = cli(&d.config, &["log", &id], &d.log());
    assert_eq!(String::from_utf8_lossy(&piped.stdout), lines);
    // An id the log never mentions: a clear error, exit 1.
    let none = cli(&d.config, &["log", "0000000000000001"], &d.log());
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("no log line about 0000000000000001"));
}
