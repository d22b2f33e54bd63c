//! Remote peers for relay tests: Postfix's smtp-sink as the remote server and dnsmasq as the
//! DNS server that names it in an MX record, both on loopback with ephemeral ports.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};

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
        let port = port.unwrap_or_else(super::sip::free_port);
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

    /// The directory the dumps are written to.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
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
        Dns::start_at(Dns::address(), records)
    }

    /// A free address for a DNS server, for configs written before it starts. Each server gets
    /// its own loopback address (127.0.53.n, all of 127/8 is local on Linux): on 127.0.0.1 a
    /// port found free could be taken, before dnsmasq binds it, by another test's connection.
    pub fn address() -> SocketAddr {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let ip = std::net::Ipv4Addr::new(127, 0, 53, NEXT.fetch_add(1, Ordering::Relaxed));
        loop {
            let udp = UdpSocket::bind((ip, 0)).unwrap();
            let addr = udp.local_addr().unwrap();
            if TcpListener::bind(addr).is_ok() {
                return addr;
            }
        }
    }

    /// [`Dns::start`] on an address from [`Dns::address`].
    pub fn start_at(addr: SocketAddr, records: &[String]) -> Dns {
        require("dnsmasq");
        let mut child = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--bind-interfaces"])
            .arg(format!("--listen-address={}", addr.ip()))
            .args(["--no-resolv", "--no-hosts", "--local=/#/"])
            .arg(format!("--port={}", addr.port()))
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
