//! Loopback ports for peers that must be told their port before they start (Kamailio, sipp,
//! a site's SIP user agent), shared by sipfast's `ua` and `registrar` test binaries and the
//! workspace's daemon tests (each includes this file with `#[path]`).
//!
//! Asking the kernel for port 0 and releasing it races: the port comes from the ephemeral
//! range (`net.ipv4.ip_local_port_range`, 32768-60999 by default), where the kernel hands the
//! same numbers to every listener bound to port 0 and to every outgoing connection, so a
//! daemon's admin listener or a client socket can take it before the peer binds. These ports
//! come from below that range instead, and a process-wide counter never hands one out twice.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The range handed out: above the well-known and common service ports, below the kernel's
/// default ephemeral range.
const FIRST: u32 = 20_000;
const LAST: u32 = 32_767;

/// A loopback port free for both UDP and TCP right now, never returned before by this process,
/// and outside the kernel's ephemeral range.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = LAST - FIRST + 1;
    // Start each process at its own place so that test binaries run side by side rarely meet.
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id().wrapping_mul(7919) % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if udp.is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {LAST}");
}
