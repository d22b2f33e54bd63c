//! Test support: a private DNS server for resolver and delivery tests, so no test depends on the
//! network or the machine's resolver.
//!
//! [`Zone`] collects records and [`Zone::start`] runs dnsmasq in the foreground on 127.0.0.1 on a
//! free high port, answering only from those records: every other name is NXDOMAIN
//! (`--local=/#/`), except domains handed to another server with [`Zone::forward`]. The process is
//! killed when the [`Dnsmasq`] is dropped. [`Servfail`] is a stub server that answers every query
//! with SERVFAIL, to forward a domain to.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long dnsmasq may take to answer its first query.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up, in case another process takes the free port first.
const PORT_TRIES: usize = 5;

/// Records for a test DNS server, as dnsmasq options.
#[derive(Debug, Default, Clone)]
pub(crate) struct Zone {
    args: Vec<String>,
}

impl Zone {
    pub(crate) fn new() -> Zone {
        Zone::default()
    }

    /// An MX record `domain -> host` with `preference`.
    pub(crate) fn mx(mut self, domain: &str, host: &str, preference: u16) -> Zone {
        self.args.push(format!("--mx-host={domain},{host},{preference}"));
        self
    }

    /// A null MX (RFC 7505): one MX record with preference 0 and the root as exchange.
    pub(crate) fn null_mx(self, domain: &str) -> Zone {
        self.mx(domain, ".", 0)
    }

    /// A and AAAA records for `name`, one per address (either family).
    pub(crate) fn host(mut self, name: &str, addrs: &[&str]) -> Zone {
        for addr in addrs {
            self.args.push(format!("--host-record={name},{addr}"));
        }
        self
    }

    /// A CNAME record `alias -> target`; dnsmasq serves it only when `target` has local records.
    pub(crate) fn cname(mut self, alias: &str, target: &str) -> Zone {
        self.args.push(format!("--cname={alias},{target}"));
        self
    }

    /// Makes `name` exist (a TXT record) without MX, A or AAAA records, so those queries get
    /// NODATA rather than NXDOMAIN.
    pub(crate) fn exists(mut self, name: &str) -> Zone {
        self.args.push(format!("--txt-record={name},exists"));
        self
    }

    /// Sends every query for `domain` and its subdomains to `server` and relays its answers.
    pub(crate) fn forward(mut self, domain: &str, server: SocketAddr) -> Zone {
        self.args.push(format!("--server=/{domain}/{}#{}", server.ip(), server.port()));
        self
    }

    /// Starts dnsmasq with these records and returns once it answers queries.
    pub(crate) fn start(self) -> Dnsmasq {
        let dir = tempfile::tempdir().expect("temp dir for dnsmasq");
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_udp_port();
            let log_path = dir.path().join(format!("dnsmasq-{port}.log"));
            let log = File::create(&log_path).expect("dnsmasq log file");
            let mut command = Command::new(program());
            command.args(base_args(port)).args(&self.args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
            let child = match command.spawn() {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("dnsmasq is not installed: run ./tests/run.sh, which installs the test peers")
                }
                Err(e) => panic!("cannot start dnsmasq: {e}"),
            };
            let mut server = Dnsmasq { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), log: log_path, _dir: None };
            if server.wait_ready() {
                server._dir = Some(dir);
                return server;
            }
            last_log = server.log();
            // The port was taken between probing and dnsmasq binding it: pick another.
            if !last_log.contains("in use") {
                break;
            }
        }
        panic!("dnsmasq did not start; its log:\n{last_log}");
    }
}

/// A running dnsmasq; killed on drop.
#[derive(Debug)]
pub(crate) struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    /// Holds the log directory until the server is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Dnsmasq {
    /// Where it listens (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything dnsmasq logged so far, including every query (`--log-queries`).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a query until one is answered. False when dnsmasq exited or never answered.
    fn wait_ready(&mut self) -> bool {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe socket");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("probe timeout");
        // Any answer will do, even NXDOMAIN: it proves dnsmasq reads its socket.
        let probe = probe_query();
        let deadline = Instant::now() + START_TIMEOUT;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            // Until dnsmasq binds, sends fail or draw an ICMP error; both just mean "not yet".
            if socket.send_to(&probe, self.addr).is_ok()
                && let Ok((n, from)) = socket.recv_from(&mut buf)
                && from == self.addr
                && n >= 12
                && buf[..2] == probe[..2]
            {
                return true;
            }
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS server that answers every query with SERVFAIL, like a recursive resolver whose
/// upstreams are broken. Runs on the current Tokio runtime until dropped.
#[derive(Debug)]
pub(crate) struct Servfail {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Servfail {
    pub(crate) async fn start() -> Servfail {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("servfail socket");
        let addr = socket.local_addr().expect("servfail address");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = servfail_reply(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Servfail { addr, task }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Servfail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The query echoed back as a response with RCODE 2 (SERVFAIL, RFC 1035 §4.1.1): same id and
/// question, QR set, RD copied, RA set, no records (the EDNS OPT record is dropped with them).
fn servfail_reply(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let question_end = 12 + question_len(&query[12..])?;
    let mut reply = query[..question_end].to_vec();
    reply[2] = 0x80 | (query[2] & 0x01);
    reply[3] = 0x80 | 0x02;
    reply[4..6].copy_from_slice(&[0, 1]);
    reply[6..12].fill(0);
    Some(reply)
}

/// Length of the first question: the name's labels, its zero byte, type and class.
fn question_len(question: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*question.get(at)?);
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    (at + 4 <= question.len()).then_some(at + 4)
}

/// A query for the root NS records, id 0x5a5a, recursion desired.
fn probe_query() -> Vec<u8> {
    let mut query = vec![0x5a, 0x5a, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(&[0, 0, 2, 0, 1]);
    query
}

/// Options shared by every test server: foreground, loopback only, no config file, no upstream
/// servers, no /etc/hosts, every unknown name NXDOMAIN, queries logged to stderr.
fn base_args(port: u16) -> Vec<String> {
    [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--local=/#/",
        "--log-queries",
        "--log-facility=-",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("--port={port}")])
    .collect()
}

/// dnsmasq lives in /usr/sbin, which is not on every user's PATH.
fn program() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() { "/usr/sbin/dnsmasq" } else { "dnsmasq" }
}

/// A UDP port that was free a moment ago: bound on port 0, read back, released.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP port");
    socket.local_addr().expect("UDP port").port()
}
