//! The DATA decoder: no panic, and its invariants hold for any input and any split point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipmta::smtp::data::{BareEndings, DataDecoder};

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    let split = usize::from(input[0]) % input.len();
    let data = &input[1..];
    let mut whole = DataDecoder::new(4096, 998, BareEndings::Normalise);
    let end = whole.feed(data);
    let mut parts = DataDecoder::new(4096, 998, BareEndings::Normalise);
    let split = split.min(data.len());
    let end2 = parts.feed(&data[..split]).or_else(|| parts.feed(&data[split..]).map(|n| n + split));
    assert_eq!(end, end2, "the end of data must not depend on how input is split");
    if let Some(n) = end {
        // The only terminator is CRLF . CRLF, and it is what was consumed last.
        assert!(n >= 3 && &data[n - 3..n] == b".\r\n");
        assert!(n == 3 || &data[n - 5..n - 3] == b"\r\n");
    }
    let (a, b) = (whole.finish(), parts.finish());
    assert_eq!(a, b);
    if let Ok(body) = a {
        // Normalised output has no bare CR or LF.
        for (i, &c) in body.iter().enumerate() {
            if c == b'\n' {
                assert!(i > 0 && body[i - 1] == b'\r');
            }
            if c == b'\r' {
                assert_eq!(body.get(i + 1), Some(&b'\n'));
            }
        }
    }
});
