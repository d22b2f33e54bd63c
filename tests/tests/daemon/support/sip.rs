//! Kamailio (the reference test config, a copy of ../shared/reference/kamailio-test.cfg) as the
//! SIP registrar/proxy between sipmta sites, on free loopback ports.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::wait_for;

/// The SIP domain the config serves.
pub const DOMAIN: &str = "sip.example";

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

impl Kamailio {
    pub fn start() -> Kamailio {
        let kamailio = ["/usr/sbin/kamailio", "/usr/bin/kamailio"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("kamailio is not installed; run ./tests/run.sh"));
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/daemon/support/kamailio-test.cfg");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let d = dir.path();
        let child = Command::new(kamailio)
            .args(["-DD", "-E", "--debug=3", "-f"])
            .arg(&cfg)
            .args(["-A", &format!("SIP_PORT={port}")])
            .arg("-Y")
            .arg(d)
            .arg("-w")
            .arg(d)
            .arg("-P")
            .arg(d.join("kamailio.pid"))
            .args(["-m", "64", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let k = Kamailio { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        wait_for("kamailio to listen", || port_bound("udp", port) && port_bound("tcp", port));
        k
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
