//! `sipmta demo` (issue 6, "Try it") as the README tells a newcomer to run it: no config, no
//! other software; one message crosses by fast path with the final verdict in the client's
//! reply, one falls back to relay, and both land in site B's Maildirs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

fn demo(args: &[&str]) -> Output {
    // The demo reads no config; make sure none leaks in from the environment either.
    Command::new(bin()).arg("demo").args(args).env_remove("SIPMTA_CONFIG").env_remove("SIPMTA_LOG").output().unwrap()
}

fn only_file(dir: &Path) -> String {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0]).unwrap()
}

#[test]
fn the_demo_sends_one_message_by_fast_path_and_one_by_relay() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = demo(&["--keep", keep.to_str().unwrap()]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    // The fast-path message: B's own 250 quoted in the reply to the client's final dot.
    let verdict = t.lines().find(|l| l.contains("S: 250 2.0.0 Ok: delivered as ")).unwrap_or_else(|| panic!("{t}"));
    assert!(verdict.contains(" via fast path to +815022222222 in ") && verdict.contains("(final server: 250 "), "{verdict}");
    assert!(t.contains("the client had the final server's verdict "), "{t}");
    // The relayed one: queued at once, then the history shows why and where it went.
    assert!(t.contains("S: 250 2.0.0 Ok: queued as "), "{t}");
    assert!(t.contains("carol@c.example: fast path to +815033333333 failed: ") && t.contains("404"), "{t}");
    assert!(t.contains("carol@c.example: relayed: 127.0.0.1 (250 "), "{t}");
    // Both sites registered with the registrar before any mail was sent.
    assert!(t.contains("registered  +815011111111 at sip:") && t.contains("registered  +815022222222 at sip:"), "{t}");
    // Each step carries its timing.
    assert!(t.lines().filter(|l| l.trim_start().starts_with('[') && l.contains(" ms] ")).count() >= 8, "{t}");
    // What was printed is on disk: both messages in B's Maildirs, kept for inspection.
    let bob = only_file(&keep.join("b/maildir/b.example/bob/new"));
    assert!(bob.contains("Subject: By fast path"), "{bob}");
    let carol = only_file(&keep.join("b/maildir/c.example/carol/new"));
    assert!(carol.contains("Subject: By relay"), "{carol}");
    assert!(t.contains(&format!("in B's Maildir: {}", keep.join("b/maildir/b.example/bob/new").display())), "{t}");
}

#[test]
fn the_demo_cleans_up_after_itself_and_refuses_to_reuse_a_directory() {
    let out = demo(&[]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    let line = t.lines().find(|l| l.starts_with("data in ")).unwrap_or_else(|| panic!("{t}"));
    let data = line.trim_start_matches("data in ").split(" (").next().unwrap();
    assert!(!Path::new(data).exists(), "{data} is left behind");

    let dir = tempfile::tempdir().unwrap();
    let out = demo(&["--keep", dir.path().to_str().unwrap()]);
    assert!(!out.status.success(), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists; name a new directory"), "{}", transcript(&out));
}
