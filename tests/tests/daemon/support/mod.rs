//! Support for black-box tests: build and start the real `sipmta` binary in a temp dir on
//! ephemeral loopback ports, find its listeners in its log, and talk to it with real peers
//! (swaks) or a raw TCP client. Everything waits on conditions (a log line, a file, a reply),
//! never on fixed sleeps.

#![allow(dead_code, clippy::unwrap_used)]

pub mod peers;
pub mod sip;
pub mod smtp;
pub mod stream_peer;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `sipmta` binary: `$SIPMTA_BIN`, or the workspace's debug build (built once if missing
/// or older than the sources is not checked: `tests/run.sh` builds it first).
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("SIPMTA_BIN") {
            return PathBuf::from(path);
        }
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
        let status = Command::new(env!("CARGO")).args(["build", "-q", "-p", "sipmta"]).current_dir(workspace()).status().unwrap();
        assert!(status.success(), "building sipmta failed");
        target.join("debug/sipmta")
    })
}

/// A program the tests need, with a clear failure when it is missing.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(found, "{program} is not installed; run ./tests/run.sh, which installs the test peers");
}

/// Wait up to 20 s for `condition`.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after 20 s waiting for {what}");
}

/// A running daemon in its own data directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
}

/// The config every test daemon starts from: `extra_top` holds top-level keys, `extra` tables.
///
/// Tests never reach real DNS: unless `extra` configures `[relay...]` itself, mail for
/// `remote.example` is sent to a closed port on loopback, so it is deferred and stays queued.
pub fn config_text(data: &Path, extra_top: &str, extra: &str) -> String {
    let relay = if extra.contains("[relay") {
        ""
    } else {
        "[relay]\nnameservers = [\"127.0.0.1:9\"]\ndns_timeout = \"1s\"\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"\n"
    };
    // The registrar's default port is fixed; tests run in parallel.
    let registrar = if extra.contains("[registrar]") { "" } else { "[registrar]\nlisten = \"127.0.0.1:0\"\n" };
    format!(
        "hostname = \"mx.test\"\ndata_dir = \"{}\"\n{extra_top}\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[submission]\nlisten = [\"127.0.0.1:0\"]\n[spool]\nmin_free_space = 0\n[admin]\nlisten = [\"127.0.0.1:0\"]\n{registrar}{relay}{extra}\n",
        data.display()
    )
}

impl Daemon {
    /// Start with the test config plus `extra_top` (top-level keys) and `extra` (tables).
    pub fn start(extra_top: &str, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("sipmta.toml");
        fs::write(&config, config_text(&data, extra_top, extra)).unwrap();
        Daemon::start_with(dir, config)
    }

    /// A directory and config for a daemon not started yet (to prepare its store with the CLI).
    pub fn prepare(extra_top: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sipmta.toml");
        fs::write(&config, config_text(&dir.path().join("data"), extra_top, extra)).unwrap();
        (dir, config)
    }

    /// The address of a listener announced in the log (`smtp`, `submission`, `submissions`).
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        self.listener(name)
    }

    /// Start on an existing directory and config (for restarts).
    pub fn start_with(dir: tempfile::TempDir, config: PathBuf) -> Daemon {
        let log = dir.path().join(format!("serve-{}.log", unique()));
        let err = fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("SIPMTA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let mut d = Daemon { dir, config, child: Some(child), log, smtp: ([0, 0, 0, 0], 0).into(), submission: ([0, 0, 0, 0], 0).into() };
        d.wait_line(|line| line.trim_end().ends_with(" ready"));
        d.smtp = d.listener("smtp");
        d.submission = d.listener("submission");
        d
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for a log line containing `needle`; fail early if the daemon exited.
    pub fn wait_log(&mut self, needle: &str) {
        self.wait_line(|line| line.contains(needle));
    }

    /// Wait for a log line that satisfies `matches`; fail early if the daemon exited.
    pub fn wait_line(&mut self, matches: impl Fn(&str) -> bool) {
        let log = self.log.clone();
        let start = Instant::now();
        let needle = "the expected line";
        loop {
            if fs::read_to_string(&log).unwrap_or_default().lines().any(&matches) {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("sipmta exited ({status}) before logging {needle:?}:\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no {needle:?} in the log after 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn listener(&self, name: &str) -> SocketAddr {
        let needle = format!(" {name} listener on ");
        let log = self.log();
        let line = log.lines().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no {name} listener in the log:\n{log}"));
        let rest = &line[line.find(&needle).unwrap() + needle.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Files delivered to a mailbox (`localhost/postmaster`).
    pub fn mailbox(&self, mailbox: &str) -> Vec<PathBuf> {
        let dir = self.data().join("maildir").join(mailbox).join("new");
        let mut files: Vec<PathBuf> = fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        files.sort();
        files
    }

    /// Wait until a mailbox holds `n` messages and return their contents.
    pub fn wait_mailbox(&self, mailbox: &str, n: usize) -> Vec<String> {
        wait_for(&format!("{n} message(s) in {mailbox}"), || self.mailbox(mailbox).len() >= n);
        self.mailbox(mailbox).iter().map(|p| fs::read_to_string(p).unwrap()).collect()
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn stop(mut self) -> (i32, tempfile::TempDir, PathBuf) {
        let mut child = self.child.take().unwrap();
        signal(&child, libc::SIGTERM);
        let status = wait_exit(&mut child);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (status.code().unwrap_or(-1), dir, self.config.clone())
    }

    /// `GET path` on the admin listener without a token (`/metrics`, `/status`): the body of
    /// a `200`.
    pub fn admin_get(&self, path: &str) -> String {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(self.listener("admin")).unwrap();
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: sipmta\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_owned()
    }

    /// Send `sig` to the running daemon (SIGHUP to reload, say).
    pub fn signal(&self, sig: i32) {
        signal(self.child.as_ref().unwrap(), sig);
    }

    /// SIGKILL, as a crash; returns the directory and config for a restart.
    pub fn kill9(mut self) -> (tempfile::TempDir, PathBuf) {
        let mut child = self.child.take().unwrap();
        signal(&child, libc::SIGKILL);
        wait_exit(&mut child);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.config.clone())
    }

    /// Run `sipmta <args> --config <this config>` (the daemon must be stopped for commands
    /// that open the store directly).
    pub fn cli(config: &Path, args: &[&str], stdin: &str) -> Output {
        cli(config, args, stdin)
    }

    /// swaks against the smtp listener.
    pub fn swaks(&self, args: &[&str]) -> Output {
        swaks(self.smtp, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: sending a signal to our own child process by pid.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "sipmta did not exit within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Run the CLI with a config file and some standard input.
pub fn cli(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `sipmta queue show ID --json`, parsed: `{"envelope": ..., "history": [...]}`.
pub fn queue_show(config: &Path, id: &str) -> serde_json::Value {
    let out = cli(config, &["queue", "show", id, "--json"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("queue show --json is not JSON ({e}):\n{}", transcript(&out)))
}

/// The recipient with `address` in a `queue show --json` answer.
pub fn recipient<'a>(shown: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    shown["envelope"]["recipients"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .unwrap_or_else(|| panic!("no recipient {address} in {shown:#}"))
}

/// Run swaks against `server` with a 10 s timeout; the transcript is in stdout.
pub fn swaks(server: SocketAddr, args: &[&str]) -> Output {
    require("swaks");
    Command::new("swaks")
        .arg("--server")
        .arg(server.to_string())
        .args(["--timeout", "10", "--helo", "client.test"])
        .args(args)
        .output()
        .unwrap()
}

/// The transcript of a swaks run, for assertions and failure messages.
pub fn transcript(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The queue id in a swaks transcript's `250 ... queued as ID` line, or the inline fast path's
/// `250 ... delivered as ID via fast path ...`.
pub fn queue_id(transcript: &str) -> String {
    let line = transcript
        .lines()
        .find(|l| l.contains("queued as ") || l.contains("delivered as "))
        .unwrap_or_else(|| panic!("no queue id in\n{transcript}"));
    // An inline reply quotes the final server, whose text may say "queued as" with its own id.
    let marker = if line.contains("delivered as ") { "delivered as " } else { "queued as " };
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().trim().to_owned()
}
