//! AUTH on submission (plaintext only on loopback), STARTTLS, implicit TLS, with swaks and a
//! user created by `sipmta user add`.

use crate::support::*;

/// A daemon whose store has alice@localhost / "correct horse", added with the CLI.
pub(crate) fn with_alice(extra: &str) -> Daemon {
    let (dir, config) = Daemon::prepare("", extra);
    let out = cli(&config, &["user", "add", "alice@localhost"], "correct horse\n");
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added user alice@localhost"));
    let list = cli(&config, &["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice@localhost\n");
    Daemon::start_with(dir, config)
}

fn submit(server: std::net::SocketAddr, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--to", "friend@remote.example", "--from", "alice@localhost", "--auth-user", "alice@localhost"];
    args.extend_from_slice(extra);
    swaks(server, &args)
}

#[test]
fn auth_plain_and_login_on_loopback_submission() {
    let d = with_alice("");
    for mech in ["PLAIN", "LOGIN"] {
        let out = submit(d.submission, &["--auth", mech, "--auth-password", "correct horse"]);
        let t = transcript(&out);
        assert!(out.status.success(), "{mech}: {t}");
        assert!(t.contains("235 2.7.0 Authentication successful") && t.contains("queued as"), "{mech}: {t}");
    }
}

#[test]
fn a_wrong_password_is_535() {
    let d = with_alice("");
    let out = submit(d.submission, &["--auth", "PLAIN", "--auth-password", "wrong"]);
    let t = transcript(&out);
    assert!(t.contains("<** 535 5.7.8 Authentication credentials invalid"), "{t}");
    assert!(d.log().contains("authentication failed"), "operators see failed logins in the log");
    assert!(!d.log().contains("wrong"), "passwords never reach the log");
}

#[test]
fn starttls_then_auth_on_submission() {
    let d = with_alice("");
    let out = submit(d.submission, &["--tls", "--auth", "PLAIN", "--auth-password", "correct horse"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("220 2.0.0 Ready to start TLS") && t.contains("TLS started"), "{t}");
}

#[test]
fn starttls_on_the_mx_port_to_a_local_mailbox() {
    let d = Daemon::start("", "");
    let out = d.swaks(&["--tls", "--to", "postmaster@localhost", "--from", "sender@example.org"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let mail = &d.wait_mailbox("localhost/postmaster", 1)[0];
    assert!(mail.contains("with ESMTPS id") && mail.contains("(using TLSv1_3"), "{mail}");
}

#[test]
fn implicit_tls_submission() {
    let d = with_alice("[submissions]\nlisten = [\"127.0.0.1:0\"]\n");
    let addr = d.listener_addr("submissions");
    let out = submit(addr, &["--tls-on-connect", "--auth", "LOGIN", "--auth-password", "correct horse"]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("220 mx.test ESMTP sipmta"), "{t}");
}

/// While the daemon runs it holds the store; `sipmta user ...` then goes through its admin API,
/// and the new user can log in at once.
#[test]
fn users_are_managed_while_the_daemon_runs() {
    let d = with_alice("");
    let out = cli(&d.config, &["user", "add", "bob@localhost"], "bobs secret\n");
    assert!(out.status.success(), "{}", transcript(&out));
    let list = cli(&d.config, &["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice@localhost\nbob@localhost\n");
    let out = swaks(
        d.submission,
        &[
            "--to",
            "friend@remote.example",
            "--from",
            "bob@localhost",
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob@localhost",
            "--auth-password",
            "bobs secret",
        ],
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let out = cli(&d.config, &["user", "rm", "bob@localhost"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let out = swaks(
        d.submission,
        &[
            "--to",
            "friend@remote.example",
            "--from",
            "bob@localhost",
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob@localhost",
            "--auth-password",
            "bobs secret",
        ],
    );
    assert!(transcript(&out).contains("535 5.7.8"), "a removed user can no longer log in:\n{}", transcript(&out));
    let queue = cli(&d.config, &["queue", "list"], "");
    assert!(String::from_utf8_lossy(&queue.stdout).contains("friend@remote.example"), "{}", transcript(&queue));
}
