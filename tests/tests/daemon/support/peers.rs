//! Remote peers for relay tests: Postfix's smtp-sink as the remote server and dnsmasq as the
//! DNS server that names it in an MX record, both on loopback with ephemeral ports.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{require, wait_for};

/// smtp-sink, dumping each message it accepts into a directory.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Start with extra options (`-f rcpt`: RCPT gets 500 5.3.0; `-r rcpt`: 450 4.3.0; `-w N`:
    /// wait N seconds before answering DATA), on `port` or a free one.
    pub fn start(options: &[&str], port: Option<u16>) -> Sink {
        require("smtp-sink");
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink writes its dumps as `nobody`.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = port.unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = Command::new("smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/msg.", dir.path().display()))
            .args(options)
            .arg(addr.to_string())
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..250 {
            if TcpStream::connect(addr).is_ok() {
                return Sink { child, addr, dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("smtp-sink did not start on {addr}");
    }

    /// Every dump: smtp-sink's own headers, then the message. A transaction cut off half-way
    /// leaves a partial dump, so tests end their bodies with a marker to tell complete ones.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path()).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq answering for one test zone.
pub struct Dns {
    child: Child,
    pub addr: SocketAddr,
}

impl Dns {
    /// `records` are dnsmasq options such as `--mx-host=remote.example,mx1.remote.example,10`
    /// and `--host-record=mx1.remote.example,127.0.0.1`. Everything else is NXDOMAIN.
    pub fn start(records: &[String]) -> Dns {
        // The probe socket is closed before dnsmasq binds the port.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Dns::start_on(port, records)
    }

    /// [`Dns::start`] on a port chosen beforehand (for configs written before it starts).
    pub fn start_on(port: u16, records: &[String]) -> Dns {
        require("dnsmasq");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--listen-address=127.0.0.1", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--local=/#/"])
            .arg(format!("--port={port}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready when it answers a query (any answer will do).
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1];
        let mut ready = false;
        wait_for("dnsmasq to answer", || {
            let _ = probe.send_to(&query, addr);
            let mut buf = [0u8; 512];
            ready = probe.recv_from(&mut buf).is_ok();
            ready || child.try_wait().ok().flatten().is_some()
        });
        assert!(ready, "dnsmasq exited at start");
        Dns { child, addr }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
