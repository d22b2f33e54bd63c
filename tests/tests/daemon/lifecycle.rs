//! Start-up with embedded defaults, configuration checks, and clean shutdown.

use std::process::Command;

use crate::support::*;

#[test]
fn sigterm_exits_cleanly() {
    let mut d = Daemon::start("", "");
    d.wait_log("ready");
    let log_before = d.log();
    assert!(log_before.contains("smtp listener on 127.0.0.1:") && log_before.contains("submission listener on 127.0.0.1:"), "{log_before}");
    let (code, dir, _) = d.stop();
    assert_eq!(code, 0);
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("shutting down") && text.contains("stopped"), "{text}");
}

#[test]
fn check_config_reports_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "hostname = \"mx.test\"\nlocal_domain = [\"x\"]\n[limits]\nmax_recipients = \"many\"\nidle_timeout = \"5 parsecs\"\n[smtp]\nlisten = [\"nowhere\"]\n").unwrap();
    let out = Command::new(bin()).args(["check-config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("4 errors"), "{err}");
    for needle in ["2:1: unknown field `local_domain`", "4:18:", "5:16:", "7:"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let ok = Command::new(bin()).arg("check-config").output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("embedded defaults: ok"));
}

/// The README's first command, exactly: `sipmta serve` with no config, in an empty directory.
/// It binds the fixed default ports, so it runs in a private network namespace where nothing
/// else can hold them.
#[test]
fn embedded_defaults_serve_swaks_to_postmaster() {
    require("swaks");
    require("unshare");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"set -e
ip link set lo up
cd {dir}
{bin} serve 2> serve.log &
pid=$!
for i in $(seq 200); do grep -q ready serve.log && break; sleep 0.05; done
grep -q 'smtp listener on 127.0.0.1:2525' serve.log
grep -q 'submission listener on 127.0.0.1:2587' serve.log
grep -q 'registrar listener on 127.0.0.1:5060' serve.log
swaks --server 127.0.0.1:2525 --to postmaster@localhost --from someone@example.org --timeout 10 > swaks.log
swaks --server 127.0.0.1:2525 --to someone@remote.example --from someone@example.org --timeout 10 > relay.log || true
for i in $(seq 200); do ls sipmta-data/maildir/localhost/postmaster/new/* >/dev/null 2>&1 && break; sleep 0.05; done
kill -TERM $pid
wait $pid
"#,
        dir = dir.path().display(),
        bin = bin().display()
    );
    let out = Command::new("unshare").args(["-n", "bash", "-c", &script]).output().unwrap();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(out.status.success(), "{}\n{log}", transcript(&out));
    let delivered = std::fs::read_dir(dir.path().join("sipmta-data/maildir/localhost/postmaster/new")).unwrap().count();
    assert_eq!(delivered, 1, "{log}");
    let relay = std::fs::read_to_string(dir.path().join("relay.log")).unwrap();
    assert!(relay.contains("554 5.7.1"), "{relay}");
}
