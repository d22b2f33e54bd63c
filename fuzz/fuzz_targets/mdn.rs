//! The MDN policy and builder (RFC 8098) on any message: no panic, and every receipt built has
//! CRLF line ends, no line over 998 octets, and exactly the header fields the builder writes,
//! whatever the original's header section holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipmta::dsn::mdn;

/// The fields `mdn::build` may write at the top level, in any case.
const OWN_FIELDS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

fuzz_target!(|data: &[u8]| {
    // A request from the envelope sender, so that most inputs get as far as `build`.
    let mut message = b"Disposition-Notification-To: alice@a.example\r\n".to_vec();
    message.extend_from_slice(data);
    let Ok(target) = mdn::should_send("alice@a.example", &message) else { return };
    assert_eq!(target.to(), "alice@a.example");
    let out = mdn::build("mx.b.example", "bob@b.example", &target, &message, 1_700_000_000);
    assert!(out.ends_with(b"\r\n"));
    let mut in_header = true;
    for line in out.split(|&b| b == b'\n') {
        let line = match line.strip_suffix(b"\r") {
            Some(l) => l,
            None => {
                assert!(line.is_empty(), "bare LF");
                continue;
            }
        };
        assert!(!line.contains(&b'\r'), "bare CR");
        assert!(line.len() <= 998, "line of {} octets", line.len());
        if in_header {
            if line.is_empty() {
                in_header = false;
            } else if !line.starts_with(b" ") && !line.starts_with(b"\t") {
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                assert!(OWN_FIELDS.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(name)), "{:?}", String::from_utf8_lossy(line));
            }
        }
    }
});
