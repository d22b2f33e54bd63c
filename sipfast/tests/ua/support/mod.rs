//! Support for the user-agent tests: real peers (Kamailio as registrar/proxy, sipp as the
//! remote UA or registrar) started on free loopback ports in temp dirs and stopped on drop,
//! and agents configured against them. Everything waits on conditions (a bound port, a log
//! line, an exit), never on fixed sleeps.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use sipfast::ua::{Registration, SipConfig, Transport};

/// The SIP domain of every test agent.
pub const DOMAIN: &str = "sip.example";
/// The password Kamailio's config expects with `WITH_AUTH` (its default `TEST_PASSWORD`).
pub const PASSWORD: &str = "secret";
/// A's and B's numbers.
pub const A: &str = "+815012345678";
pub const B: &str = "+815087654321";

/// Logs to the test output; `RUST_LOG` overrides the default.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "sipfast=debug,rsipstack=warn".into());
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().init();
    });
}

/// A program the tests need (searched in `PATH`, then /usr/sbin where kamailio lives), with a
/// clear failure when it is missing.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (Debian packages kamailio, sip-tester); run ./tests/run.sh"))
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether something listens on 127.0.0.1:`port` over `proto` ("udp" or "tcp"), read from
/// /proc/net so that checking does not disturb the peer.
pub fn port_bound(proto: &str, port: u16) -> bool {
    let table = std::fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // TCP: only a listening socket (state 0A) counts.
        fields.len() > 3 && fields[1] == local && (proto == "udp" || fields[3] == "0A")
    })
}

/// Waits up to 20 s for `condition`.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after 20 s waiting for {what}");
}

/// A test agent's configuration: `numbers` registered through `proxy` with `password`.
pub fn agent_config(transport: Transport, proxy: SocketAddr, numbers: &[&str], password: Option<&str>) -> SipConfig {
    let mut config = SipConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN);
    config.transport = transport;
    config.proxy = Some(proxy);
    config.numbers = numbers.iter().map(|n| Registration { password: password.map(str::to_string), ..Registration::new(*n) }).collect();
    config
}

/// An SDP body standing in for the fast-path offer/answer (opaque to the agent).
pub fn sdp(port: u16, setup: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=application {port} TCP smtp http\r\na=setup:{setup}\r\na=connection:new\r\n"
    )
}

/// Kamailio with the reference test config (tests/kamailio/kamailio-test.cfg, a copy of
/// ../shared/reference/kamailio-test.cfg) on a free port, logging at debug level so every
/// request it receives is in its log. Stopped with SIGTERM on drop.
pub struct Kamailio {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Kamailio {
    /// Starts it with extra `-A` defines (e.g. `WITH_AUTH`) and waits until it listens.
    pub async fn start(defines: &[&str]) -> Kamailio {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/kamailio-test.cfg");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let mut command = Command::new(program("kamailio"));
        command.args(["-DD", "-E", "--debug=3", "-f"]).arg(&cfg).args(["-A", &format!("SIP_PORT={port}")]);
        for define in defines {
            command.args(["-A", define]);
        }
        let d = dir.path();
        command.arg("-Y").arg(d).arg("-w").arg(d).arg("-P").arg(d.join("kamailio.pid")).args(["-m", "64", "-M", "8"]);
        let child = command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let kamailio = Kamailio { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        wait_for("kamailio to listen", || port_bound("udp", port) && port_bound("tcp", port)).await;
        kamailio
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM to the main process (which we started) makes it stop its workers; SIGKILL
        // would leave them running.
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().ok();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

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

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}
