//! `sipmta sendmail` from a shell pipe, as cron and PHP call /usr/sbin/sendmail (issue 9 item
//! 5): through the wrapper script deploy/INSTALL.md installs, to the running daemon, and into
//! the queue while no daemon runs (delivered when it starts). `-bp` lists the queue like mailq.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{Daemon, bin};

/// Run `script` with sh, the config in SIPMTA_CONFIG (as a cron job's environment would have
/// it) and the wrapper directory first in PATH.
fn shell(script: &str, config: &Path, wrapper_dir: &Path) -> Output {
    let path = format!("{}:{}", wrapper_dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("sh").args(["-c", script]).env("SIPMTA_CONFIG", config).env("PATH", path).env("LOGNAME", "cron").output().unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sendmail_from_a_pipe_reaches_the_mailbox_with_and_without_a_daemon() {
    // A fixed port on an address of its own: sendmail finds the daemon at smtp.listen.
    let top = "local_domains = [\"example.org\"]\ntrusted_networks = [\"127.0.0.0/8\"]";
    let (dir, config) = Daemon::prepare(top, "");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("[smtp]\nlisten = [\"127.0.0.1:0\"]", "[smtp]\nlisten = [\"127.0.26.1:2525\"]");
    std::fs::write(&config, text).unwrap();
    // The wrapper INSTALL.md puts at /usr/sbin/sendmail.
    let wrappers = dir.path().join("sbin");
    std::fs::create_dir(&wrappers).unwrap();
    let wrapper = wrappers.join("sendmail");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} sendmail \"$@\"\n", bin().display())).unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();

    // No daemon: the message is queued in the store.
    ok(&shell("printf 'To: root\\nSubject: while stopped\\n\\nqueued first\\n' | sendmail -oi -t", &config, &wrappers));
    let listed = shell("sendmail -bp", &config, &wrappers);
    ok(&listed);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("root@example.org"), "{}", String::from_utf8_lossy(&listed.stdout));

    // The daemon delivers it at start; then a cron-style call goes to the running daemon.
    let d = Daemon::start_with(dir, config.clone());
    let first = d.wait_mailbox("example.org/root", 1);
    assert!(first[0].contains("Subject: while stopped") && first[0].contains("queued first"), "{}", first[0]);
    assert!(first[0].contains("From: cron@example.org"), "a From header is added: {}", first[0]);
    ok(&shell(
        "printf 'Subject: cron <cron@example.org> ls\\n\\nline 1\\n.\\nline 3\\n' | sendmail -FCronDaemon -i -B8BITMIME -oem root",
        &config,
        &wrappers,
    ));
    let both = d.wait_mailbox("example.org/root", 2);
    let second = both.iter().find(|m| m.contains("Subject: cron")).unwrap();
    assert!(second.contains("From: \"CronDaemon\" <cron@example.org>"), "{second}");
    assert!(second.contains("line 1\n.\nline 3"), "-i keeps the lone dot: {second}");
    assert!(second.contains("Message-ID: <") && second.contains("Date: "), "{second}");
    assert!(second.starts_with("Return-Path: <cron@example.org>"), "the login name is the envelope sender: {second}");
    // -f sets the envelope sender (bounces go there), not the From header.
    ok(&shell("printf 'Subject: with -f\\n\\nbody\\n' | sendmail -i -f bounces@example.org root", &config, &wrappers));
    let three = d.wait_mailbox("example.org/root", 3);
    let third = three.iter().find(|m| m.contains("Subject: with -f")).unwrap();
    assert!(third.starts_with("Return-Path: <bounces@example.org>"), "{third}");

    // An ordinary user (cron runs jobs as their owners) reaches the daemon too: through its
    // port, without rights on the store. Only where that user can run the built binary.
    let runs_as_nobody = |cmd: &str| {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "sh", "-c", cmd]).env("SIPMTA_CONFIG", &config);
        c
    };
    let readable = |p: &Path, mode| {
        let mut perms = std::fs::metadata(p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, mode);
        std::fs::set_permissions(p, perms).unwrap();
    };
    readable(d.dir.path(), 0o755);
    readable(&config, 0o644);
    if runs_as_nobody(&format!("test -x {}", bin().display())).status().is_ok_and(|s| s.success()) {
        let script = format!("printf 'Subject: from nobody\\n\\nhi\\n' | {} sendmail -i root", wrapper.display());
        let out = runs_as_nobody(&script).output().unwrap();
        ok(&out);
        let all = d.wait_mailbox("example.org/root", 4);
        let mail = all.iter().find(|m| m.contains("Subject: from nobody")).unwrap();
        assert!(mail.contains("From: nobody@example.org"), "{mail}");
    } else {
        eprintln!("note: `nobody` cannot run {}; the unprivileged sendmail check is skipped", bin().display());
    }

    // Modes other than -bm and -bp are usage errors (64); an address the daemon refuses is 69.
    let bad = shell("echo x | sendmail -bs root", &config, &wrappers);
    assert_eq!(bad.status.code(), Some(64), "{}", String::from_utf8_lossy(&bad.stderr));
    let refused = shell("echo x | sendmail 'bad address'", &config, &wrappers);
    assert_eq!(refused.status.code(), Some(69), "{}", String::from_utf8_lossy(&refused.stderr));
    d.stop();
}
