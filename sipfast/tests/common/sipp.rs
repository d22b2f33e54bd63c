//! sipp as a foreign user agent or registrar, shared by the `ua` and `registrar` test
//! binaries (each includes this file from its `support` module with `#[path]`). It waits on
//! conditions (its port bound, its exit), never on fixed sleeps.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sipfast::ua::Transport;

use super::{free_port, port_bound, program};

/// A sipp instance running one of our scenarios (tests/sipp/) once.
pub struct Sipp {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl Sipp {
    /// Starts `scenario` listening on a free port (as a UAS or registrar) with `-key` pairs and
    /// further arguments (e.g. a remote host for a UAC), and waits until it has bound its port.
    pub async fn start(scenario: &str, transport: Transport, keys: &[(&str, &str)], args: &[&str]) -> Sipp {
        Sipp::start_template(scenario, &[], transport, keys, args).await
    }

    /// [`Sipp::start`] on a copy of `scenario` with each `(placeholder, value)` replaced, for what
    /// sipp will not take from a `-key` (a status code).
    pub async fn start_template(
        scenario: &str,
        replace: &[(&str, &str)],
        transport: Transport,
        keys: &[(&str, &str)],
        args: &[&str],
    ) -> Sipp {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut text = std::fs::read_to_string(scenario_path(scenario)).unwrap();
        for (placeholder, value) in replace {
            text = text.replace(placeholder, value);
        }
        let copy = dir.path().join(scenario);
        std::fs::write(&copy, text).unwrap();
        let mut command = tokio::process::Command::new(program("sipp"));
        command
            .arg("-sf")
            .arg(copy)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", if transport == Transport::Tcp { "t1" } else { "u1" }])
            .args(["-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_msg", "-trace_err", "-trace_logs"])
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-log_file")
            .arg(dir.path().join("log.log"));
        for (key, value) in keys {
            command.args(["-key", key, value]);
        }
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        command.args(args).current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).kill_on_drop(true);
        let child = command.spawn().unwrap();
        let proto = if transport == Transport::Tcp { "tcp" } else { "udp" };
        let mut sipp = Sipp { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        // A UAC over TCP does not listen; a UAS or registrar does.
        if !args.iter().any(|a| a.contains(':')) {
            let start = Instant::now();
            while !port_bound(proto, port) {
                if let Some(status) = sipp.child.try_wait().unwrap() {
                    panic!("sipp {scenario} exited at start ({status}):\n{}", sipp.read("stderr.log"));
                }
                assert!(start.elapsed() < Duration::from_secs(20), "sipp did not bind its port");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        sipp
    }

    /// The SIP messages sipp has sent and received so far.
    pub fn messages(&self) -> String {
        self.read("messages.log")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits (up to 30 s) for the scenario to end and asserts it passed, showing its traces
    /// otherwise.
    pub async fn passed(mut self) -> String {
        let status: ExitStatus = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("sipp did not finish; messages:\n{}", self.messages()),
        };
        let messages = self.messages();
        assert!(
            status.success(),
            "sipp scenario failed ({status}); stderr:\n{}\nerrors:\n{}\nlog:\n{}\nmessages:\n{messages}",
            self.read("stderr.log"),
            self.read("errors.log"),
            self.read("log.log")
        );
        messages
    }
}

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}
