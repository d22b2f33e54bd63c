//! FP/1 on any bytes: the line codec (a parsed line re-encodes to itself, within 512 octets), and
//! both handshakes, in either TCP role, with any bytes as the peer's side of the stream. No panic,
//! no hang (time is paused, so a stall ends at once as a timeout), and a handshake that succeeds
//! agreed on a protocol it allows.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sipfast::fp1::{self, MAX_LINE, Role, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: Token = Token::from_bytes(*b"0123456789abcdef");

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok((line, used)) = fp1::parse_line(data) {
        assert!(used <= MAX_LINE);
        let wire = line.encode().expect("a parsed line encodes");
        assert_eq!(fp1::parse_line(&wire), Ok((line, wire.len())));
    }

    let Some((&selector, peer_bytes)) = data.split_first() else { return };
    let role = if selector & 1 == 0 { Role::Active } else { Role::Passive };
    let known = (selector & 4 != 0).then_some("smtp");
    let peer_bytes = peer_bytes.to_vec();
    runtime().block_on(async move {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let peer = async move {
            let _ = theirs.write_all(&peer_bytes).await;
            let _ = theirs.shutdown().await;
            let mut sink = Vec::new();
            let _ = theirs.read_to_end(&mut sink).await;
        };
        let timeout = Duration::from_secs(1);
        // The stream is dropped inside each arm so the peer's read_to_end sees the end.
        if selector & 2 == 0 {
            let handshake = async {
                fp1::caller_handshake(ours, role, &TOKEN, known, &["smtp", "http"], timeout).await.map(|(_, n)| n)
            };
            let (result, ()) = tokio::join!(handshake, peer);
            if let Ok(n) = result {
                assert!(n.protocol == "smtp" || (known.is_none() && n.protocol == "http"), "{n:?}");
                assert_eq!(n.asked, known.is_none());
            }
        } else {
            let handshake =
                async { fp1::callee_handshake(ours, role, &TOKEN, &["smtp", "http"], timeout).await.map(|(_, p)| p) };
            let (result, ()) = tokio::join!(handshake, peer);
            if let Ok(p) = result {
                assert!(p == "smtp" || p == "http", "{p}");
            }
        }
    });
});
