//! SIP message handling on any bytes: rsip's parser (the one the user agent meets through
//! rsipstack), the registrar's stream framing (RFC 3261 §18.3) and its sans-IO proxy core,
//! fed several messages from several peers over UDP and TCP while the clock moves.
//!
//! Input layout: byte 0 picks the registrar's users (open registration, or numbers with and
//! without a password). The rest is split on NUL into chunks; a chunk's first byte says who
//! sends it and when:
//! - bits 0-1: the peer (four addresses, one IPv6);
//! - bit 2: TCP (the bytes go onto that peer's stream and through the framing) or UDP (one
//!   datagram);
//! - bits 3-5: how far the clock moves first (0 to 64 s), timers firing on the way;
//! - bit 6: the last transmission of a client transaction fails (`on_send_failed`);
//! - bit 7: the registrar starts draining.
//!
//! Checked: no panic; framing always takes something off the stream and never yields more
//! than `MAX_MESSAGE`; after the timers due have run none is still due (else the shell would
//! spin); everything the core sends parses with rsip and fits in `MAX_MESSAGE`; and once the
//! clock runs on far enough, every transaction has ended.
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;
use sipfast::registrar::fuzzing::{Frame, MAX_MESSAGE, Out, Proxy, next_frame};

const LOCAL: &str = "127.0.0.1:5060";
const PEERS: [&str; 4] = ["127.0.0.1:5071", "127.0.0.1:5072", "192.0.2.1:5060", "[::1]:5073"];
/// Clock steps around the RFC 3261 timers: T1 = 500 ms, T2 = 4 s, 64*T1 = 32 s.
const STEPS_MS: [u64; 8] = [0, 0, 100, 500, 4_000, 5_000, 32_000, 64_000];

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SipMessage::try_from(data) {
        let _ = message.to_string();
    }
    let Some((&setup, rest)) = data.split_first() else { return };
    let users: &[(&str, Option<&str>)] = match setup % 3 {
        0 => &[],
        1 => &[("+815087654321", None), ("+815011112222", None)],
        _ => &[("+815087654321", None), ("050-1111-2222", Some("secret"))],
    };
    let peers: Vec<SocketAddr> = PEERS.iter().map(|p| p.parse().expect("peer address")).collect();
    let mut proxy = Proxy::new(LOCAL.parse().expect("local address"), users);
    let mut streams: [Vec<u8>; 4] = Default::default();
    let mut last_client: Option<String> = None;

    for chunk in rest.split(|&b| b == 0) {
        let Some((&control, bytes)) = chunk.split_first() else { continue };
        let (peer, tcp) = (usize::from(control & 3), control & 4 != 0);
        advance(&mut proxy, Duration::from_millis(STEPS_MS[usize::from(control >> 3 & 7)]), &mut last_client);
        if control & 0x40 != 0
            && let Some(client) = last_client.take()
        {
            check(proxy.on_send_failed(&client), &mut last_client);
        }
        if control & 0x80 != 0 {
            proxy.drain();
        }
        if let Ok(message) = SipMessage::try_from(bytes) {
            let _ = message.to_string();
        }
        if tcp {
            let stream = &mut streams[peer];
            stream.extend_from_slice(bytes);
            loop {
                let before = stream.len();
                match next_frame(stream) {
                    Ok(Some(frame)) => {
                        assert!(stream.len() < before, "a frame that took nothing off the stream");
                        if let Frame::Message(m) = frame {
                            assert!(m.len() <= MAX_MESSAGE, "a frame of {} octets", m.len());
                            assert_eq!(m.len(), before - stream.len());
                            check(proxy.on_message(&m, true, peers[peer]), &mut last_client);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        // The shell closes the connection; the peer starts a new one.
                        stream.clear();
                        break;
                    }
                }
            }
        } else if !bytes.iter().all(u8::is_ascii_whitespace) {
            // As the shell: keep-alive datagrams carry nothing (RFC 5626 §3.5.1).
            check(proxy.on_message(bytes, false, peers[peer]), &mut last_client);
        }
    }

    // Run the clock out: Timer C (60 s) plus a CANCEL's and a 408's lingering, with room.
    for _ in 0..16 {
        advance(&mut proxy, Duration::from_secs(32), &mut last_client);
    }
    assert_eq!(proxy.transactions(), 0, "transactions left after the clock ran out");
    assert!(proxy.is_idle());
});

/// Moves the clock by `by`, stopping at every timer on the way as the shell would.
fn advance(proxy: &mut Proxy, by: Duration, last_client: &mut Option<String>) {
    let mut left = by;
    loop {
        let step = match proxy.next_timer() {
            Some(due) if due <= left => due,
            _ => {
                proxy.advance(left);
                break;
            }
        };
        proxy.advance(step);
        left -= step;
        check(proxy.on_timer(), last_client);
        assert_ne!(proxy.next_timer(), Some(Duration::ZERO), "a timer is still due after on_timer: the shell would spin");
    }
    check(proxy.on_timer(), last_client);
}

/// What the core sends must be SIP that fits one stream frame.
fn check(out: Vec<Out>, last_client: &mut Option<String>) {
    for o in out {
        assert!(o.data.len() <= MAX_MESSAGE, "sent {} octets", o.data.len());
        if let Err(e) = SipMessage::try_from(o.data.as_slice()) {
            panic!("sent a message rsip cannot parse ({e}):\n{}", String::from_utf8_lossy(&o.data));
        }
        if o.client.is_some() {
            *last_client = o.client;
        }
    }
}
