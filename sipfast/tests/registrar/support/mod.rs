//! Support for the registrar tests: the registrar on a free loopback port, agents configured
//! against it, raw SIP over UDP and TCP, and sipp as a foreign user agent
//! (tests/common/sipp.rs, shared with the ua tests). Everything waits on conditions (a bound
//! port, an answer, an exit), never on fixed sleeps.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Once;
use std::time::{Duration, Instant};

use sipfast::registrar::{Locations, MemoryLocations, Registrar, RegistrarConfig, RegistrarHandle, RegistrarUser};
use sipfast::ua::{Registration, SipConfig, Transport};

#[path = "../../common/sipp.rs"]
mod sipp;
pub use sipp::Sipp;

/// The SIP domain of every test agent.
pub const DOMAIN: &str = "sip.example";
/// The password of every configured user.
pub const PASSWORD: &str = "secret";
/// A's and B's numbers; C is configured but never registers.
pub const A: &str = "+815012345678";
pub const B: &str = "+815087654321";
pub const C: &str = "+815011112222";

/// Logs to the test output; `RUST_LOG` overrides the default.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "sipfast=debug,rsipstack=warn".into());
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().init();
    });
}

/// A program the tests need (searched in `PATH`, then /usr/sbin), with a clear failure when it
/// is missing.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (Debian package sip-tester); run ./tests/run.sh"))
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

/// A registrar on a free loopback port for [`DOMAIN`], with its location table.
pub struct TestRegistrar {
    pub handle: RegistrarHandle,
    pub locations: Arc<MemoryLocations>,
}

impl TestRegistrar {
    /// Starts one where A, B and C are configured with [`PASSWORD`] (`auth`), or open
    /// registration (no users).
    pub async fn start(auth: bool) -> TestRegistrar {
        let mut config = RegistrarConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN);
        if auth {
            config.users = [A, B, C].iter().map(|n| RegistrarUser::new(*n, PASSWORD)).collect();
        }
        TestRegistrar::with_config(config).await
    }

    pub async fn with_config(config: RegistrarConfig) -> TestRegistrar {
        let locations = Arc::new(MemoryLocations::new());
        let handle = Registrar::start(config, locations.clone()).await.unwrap();
        TestRegistrar { handle, locations }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// How many live bindings `aor` has.
    pub fn bindings(&self, aor: &str) -> usize {
        let now = std::time::SystemTime::now();
        self.locations.bindings(aor).unwrap().iter().filter(|b| b.is_live(now)).count()
    }
}

/// Sends one request over UDP from a fresh socket and returns the first final answer
/// (provisional ones are skipped), within 10 s.
pub async fn udp_request(to: SocketAddr, request: &str) -> String {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = request.replace("[local]", &socket.local_addr().unwrap().to_string());
    socket.send_to(request.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buf)).await.expect("an answer").unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        if !answer.starts_with("SIP/2.0 1") {
            return answer;
        }
    }
}

/// Sends one request on a new TCP connection, returns the first final answer and closes the
/// connection.
pub async fn tcp_request(to: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(to).await.unwrap();
    let request = request.replace("[local]", &stream.local_addr().unwrap().to_string());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).to_string();
        if let Some(end) = text.find("\r\n\r\n")
            && !text.starts_with("SIP/2.0 1")
        {
            return text[..end + 4].to_string();
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed before answering");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// A REGISTER of `user` with `contact` (third-party registration: the contact need not be the
/// sender), open registration; `[local]` is replaced by the sender's address.
pub fn register_request(user: &str, contact: &str, transport: &str) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} [local];branch=z9hG4bK{user}reg;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=t1\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: third-party-{user}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <{contact}>\r\n\
         Expires: 600\r\n\
         Content-Length: 0\r\n\r\n"
    )
}
