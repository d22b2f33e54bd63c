//! SIP peers for the fast-path tests, on free loopback ports: Kamailio (the reference test
//! config, a copy of ../shared/reference/kamailio-test.cfg, or another such as
//! deploy/kamailio.cfg) as the registrar/proxy between
//! sipmta sites, and sipp running one of sipfast's scenarios (sipfast/tests/sipp/) as the
//! remote user agent.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{wait_for, workspace};

/// The SIP domain the config serves.
pub const DOMAIN: &str = "sip.example";

#[path = "../../../../sipfast/tests/common/ports.rs"]
mod ports;
pub use ports::free_port;

fn port_bound(proto: &str, port: u16) -> bool {
    let table = std::fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 3 && f[1] == local && (proto == "udp" || f[3] == "0A")
    })
}

/// Kamailio in the foreground, logging every request; stopped on drop.
pub struct Kamailio {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

/// The installed `kamailio` binary.
pub fn kamailio_bin() -> &'static str {
    ["/usr/sbin/kamailio", "/usr/bin/kamailio"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("kamailio is not installed; run ./tests/run.sh"))
}

impl Kamailio {
    /// The reference test config: open registration, no auth.
    pub fn start() -> Kamailio {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/daemon/support/kamailio-test.cfg");
        Kamailio::start_config(&cfg, &[], &[])
    }

    /// `cfg` with `SIP_PORT` set to a free port plus `defines` (each passed as `-A`), run in
    /// a temp dir holding `files` (`(name, contents)`): a relative `include_file` finds them
    /// there first, as Kamailio looks in its current directory before the config's.
    pub fn start_config(cfg: &Path, defines: &[String], files: &[(&str, &str)]) -> Kamailio {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, contents) in files {
            std::fs::write(d.join(name), contents).unwrap();
        }
        let log = std::fs::File::create(d.join("kamailio.log")).unwrap();
        let mut command = Command::new(kamailio_bin());
        command.args(["-DD", "-E", "--debug=3", "-f"]).arg(cfg).args(["-A", &format!("SIP_PORT={port}")]);
        for define in defines {
            command.args(["-A", define]);
        }
        let child = command
            .arg("-Y")
            .arg(d)
            .arg("-w")
            .arg(d)
            .arg("-P")
            .arg(d.join("kamailio.pid"))
            .args(["-m", "64", "-M", "8"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut k = Kamailio { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        wait_for("kamailio to listen", || {
            if let Some(status) = k.child.try_wait().unwrap() {
                panic!("kamailio exited at start ({status}):\n{}", k.log());
            }
            port_bound("udp", port) && port_bound("tcp", port)
        });
        k
    }

    /// The directory Kamailio runs in (its `-Y`, `-w` and current directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM to the main process stops its workers too.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..500 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sipp playing one scenario over UDP, as the UAS a daemon's INVITE reaches directly
/// (the daemon's `fastpath.proxy`); killed on drop.
pub struct Sipp {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sipp {
    /// Starts `scenario` with each `(placeholder, value)` replaced in a copy (sipp takes status
    /// codes and bodies only from the scenario text) and `-key` pairs, and waits until it listens.
    pub fn start(scenario: &str, replace: &[(&str, &str)], keys: &[(&str, &str)]) -> Sipp {
        Sipp::start_calls(scenario, replace, keys, 1)
    }

    /// [`Sipp::start`] for `calls` calls, one after the other.
    pub fn start_calls(scenario: &str, replace: &[(&str, &str)], keys: &[(&str, &str)], calls: u32) -> Sipp {
        let sipp = ["/usr/bin/sipp", "/usr/local/bin/sipp"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("sipp is not installed (Debian package sip-tester); run ./tests/run.sh"));
        let dir = tempfile::tempdir().unwrap();
        let mut text = std::fs::read_to_string(workspace().join("sipfast/tests/sipp").join(scenario)).unwrap();
        for (placeholder, value) in replace {
            text = text.replace(placeholder, value);
        }
        let copy = dir.path().join(scenario);
        std::fs::write(&copy, text).unwrap();
        let port = free_port();
        let d = dir.path();
        let mut command = Command::new(sipp);
        command
            .arg("-sf")
            .arg(&copy)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "u1",
                "-m",
                &calls.to_string(),
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
            ])
            .args(["-trace_msg", "-trace_err", "-trace_logs"])
            .arg("-message_file")
            .arg(d.join("messages.log"))
            .arg("-error_file")
            .arg(d.join("errors.log"))
            .arg("-log_file")
            .arg(d.join("log.log"));
        for (key, value) in keys {
            command.args(["-key", key, value]);
        }
        let stderr = std::fs::File::create(d.join("stderr.log")).unwrap();
        let child = command.current_dir(d).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        let mut sipp = Sipp { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        wait_for("sipp to listen", || {
            if let Some(status) = sipp.child.try_wait().unwrap() {
                panic!("sipp {scenario} exited at start ({status}): {}", sipp.read("stderr.log"));
            }
            port_bound("udp", port)
        });
        sipp
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits for the scenario to end, asserts that it passed (every expected request came, in
    /// order) and returns the SIP messages it sent and received.
    pub fn passed(mut self) -> String {
        let mut status = None;
        wait_for("sipp to finish its scenario", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let messages = self.read("messages.log");
        assert!(
            status.is_some_and(|s| s.success()),
            "sipp scenario failed ({status:?}); errors:\n{}\nlog:\n{}\nmessages:\n{messages}",
            self.read("errors.log"),
            self.read("log.log")
        );
        messages
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
