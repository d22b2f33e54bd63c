//! SIGHUP reload (issue 9 item 6): a new config applies to new sessions while a session opened
//! before it carries on; an invalid config is refused with its errors and the old one stays;
//! settings bound at start are named as waiting for a restart.

use std::fs;

use crate::support::smtp::Raw;
use crate::support::{Daemon, wait_for};

/// Wait until `needle` has appeared `n` times in the daemon's log.
fn wait_count(d: &Daemon, needle: &str, n: usize) {
    wait_for(&format!("{n} × {needle:?} in the log"), || d.log().matches(needle).count() >= n);
}

fn rcpt(d: &Daemon, address: &str) -> String {
    let (mut c, _) = Raw::connect(d.smtp);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@elsewhere.test>");
    c.cmd(&format!("RCPT TO:<{address}>"))
}

#[test]
fn sighup_applies_a_valid_config_to_new_sessions_and_refuses_an_invalid_one() {
    let d = Daemon::start("local_domains = [\"a.example\"]", "");
    let original = fs::read_to_string(&d.config).unwrap();
    assert!(rcpt(&d, "x@b.example").starts_with("554 5.7.1"), "b.example is not ours yet");

    // A session opened before the reload, in the middle of a transaction.
    let (mut open, _) = Raw::connect(d.smtp);
    open.cmd("EHLO client.test");
    assert!(open.cmd("MAIL FROM:<a@elsewhere.test>").starts_with("250"));
    assert!(open.cmd("RCPT TO:<x@a.example>").starts_with("250"));

    fs::write(&d.config, original.replace("local_domains = [\"a.example\"]", "local_domains = [\"a.example\", \"b.example\"]")).unwrap();
    d.signal(libc::SIGHUP);
    wait_count(&d, "configuration reloaded", 1);
    assert!(rcpt(&d, "x@b.example").starts_with("250"), "a new session sees b.example");
    // The open session was not dropped: its transaction completes.
    assert!(open.cmd("DATA").starts_with("354"));
    assert!(open.cmd("Subject: across the reload\r\n\r\nstill here\r\n.").starts_with("250 "), "the message sent across the reload");
    d.wait_mailbox("a.example/x", 1);

    // An invalid file: every error is logged, nothing changes.
    fs::write(&d.config, format!("{original}\ntypo_key = 1\n[limits]\nmax_recipients = \"many\"\n")).unwrap();
    d.signal(libc::SIGHUP);
    wait_count(&d, "configuration not reloaded", 1);
    let log = d.log();
    assert!(log.contains("typo_key") && log.contains("max_recipients"), "both errors are named:\n{log}");
    assert!(rcpt(&d, "x@b.example").starts_with("250"), "the running config stays");

    // A listener change waits for a restart, and says so; the rest applies.
    let moved = original.replace("[smtp]\nlisten = [\"127.0.0.1:0\"]", "[smtp]\nlisten = [\"127.0.0.1:1\"]");
    assert_ne!(moved, original);
    fs::write(&d.config, moved).unwrap();
    d.signal(libc::SIGHUP);
    wait_count(&d, "configuration reloaded", 2);
    let log = d.log();
    let line = log.lines().rev().find(|l| l.contains("configuration reloaded")).unwrap();
    assert!(line.contains("smtp.listen") && line.contains("restart"), "{line}");
    assert!(rcpt(&d, "x@b.example").starts_with("554 5.7.1"), "b.example is gone again with the file's other changes");
    let (status, ..) = d.stop();
    assert_eq!(status, 0);
}

/// A self-signed certificate for `name` written to `cert` and `key`, as a renewal would.
fn certificate(name: &str, cert: &std::path::Path, key: &std::path::Path) {
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::transcript(&out));
}

/// The subject of the certificate the daemon presents after STARTTLS.
fn presented(d: &Daemon) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect", &d.smtp.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let subject = text.lines().find(|l| l.starts_with("subject="));
    subject.unwrap_or_else(|| panic!("no certificate:\n{}", crate::support::transcript(&out))).replace(' ', "")
}

/// A renewed certificate (deploy/INSTALL.md step 5's hook, then `systemctl reload`) is served
/// to the next STARTTLS after SIGHUP, with no restart.
#[test]
fn sighup_serves_a_renewed_certificate() {
    crate::support::require("openssl");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("fullchain.pem"), dir.path().join("privkey.pem"));
    certificate("before.example", &cert, &key);
    let tls = format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display());
    let d = Daemon::start("", &tls);
    assert_eq!(presented(&d), "subject=CN=before.example");
    certificate("renewed.example", &cert, &key);
    assert_eq!(presented(&d), "subject=CN=before.example", "the running daemon keeps its certificate until told");
    d.signal(libc::SIGHUP);
    wait_count(&d, "configuration reloaded", 1);
    assert_eq!(presented(&d), "subject=CN=renewed.example");
}
