//! Support for the user-agent tests: real peers (Kamailio as registrar/proxy, sipp as the
//! remote UA or registrar) started on free loopback ports in temp dirs and stopped on drop,
//! and agents configured against them. Everything waits on conditions (a bound port, a log
//! line, an exit), never on fixed sleeps.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use sipfast::ua::{Registration, SipConfig, Transport};

#[path = "../../common/sipp.rs"]
mod sipp;
pub use sipp::Sipp;

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

#[path = "../../common/ports.rs"]
mod ports;
pub use ports::free_port;

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
