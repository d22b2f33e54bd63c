//! Oversize messages are refused with 552 and nothing is spooled.

use crate::support::*;

#[test]
fn oversize_message_is_552() {
    let d = Daemon::start("", "[limits]\nmax_message_size = \"4KiB\"\n");
    let body = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n".repeat(100);
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--body", &body]);
    let t = transcript(&out);
    assert!(t.contains("SIZE 4096"), "{t}");
    assert!(t.contains("<** 552 5.3.4 Message size exceeds fixed maximum message size"), "{t}");
    // A message within the limit still goes through on the same daemon.
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert_eq!(d.wait_mailbox("localhost/postmaster", 1).len(), 1);
}
