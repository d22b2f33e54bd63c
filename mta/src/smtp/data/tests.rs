#![allow(clippy::unwrap_used)]

use super::*;

fn decode(input: &[u8]) -> (Option<usize>, Result<Vec<u8>, DataProblem>) {
    decode_with(input, BareEndings::Normalise)
}

fn decode_with(input: &[u8], bare: BareEndings) -> (Option<usize>, Result<Vec<u8>, DataProblem>) {
    let mut d = DataDecoder::new(1 << 20, 998, bare);
    let end = d.feed(input);
    (end, d.finish())
}

/// Feed one byte at a time: the result must not depend on how the input is split.
fn decode_bytewise(input: &[u8]) -> (Option<usize>, Vec<u8>) {
    let mut d = DataDecoder::new(1 << 20, 998, BareEndings::Normalise);
    for (i, b) in input.iter().enumerate() {
        if d.feed(std::slice::from_ref(b)).is_some() {
            return (Some(i + 1), d.finish().unwrap());
        }
    }
    (None, d.finish().unwrap())
}

#[test]
fn plain_message_ends_at_crlf_dot_crlf() {
    let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let (end, body) = decode(input);
    assert_eq!(end, Some(input.len() - 6));
    assert_eq!(body.unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
}

#[test]
fn empty_message() {
    let (end, body) = decode(b".\r\n");
    assert_eq!(end, Some(3));
    assert_eq!(body.unwrap(), b"");
}

#[test]
fn dot_unstuffing() {
    let (_, body) = decode(b"..leading\r\n...two\r\n.\r\n");
    assert_eq!(body.unwrap(), b".leading\r\n..two\r\n");
    let (_, body) = decode(b"a\r\n..\r\n.\r\n");
    assert_eq!(body.unwrap(), b"a\r\n.\r\n");
}

#[test]
fn dots_inside_lines_are_content() {
    let (_, body) = decode(b"a.b\r\nx .\r\n.\r\n");
    assert_eq!(body.unwrap(), b"a.b\r\nx .\r\n");
}

/// Every smuggling form: none may end the message, so the "smuggled" command stays content.
#[test]
fn no_smuggling_form_ends_data() {
    let forms: &[&[u8]] = &[
        b"\n.\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r.\n",
        b"\r\n.\r\r\n",
        b"\r\n.\n\r\n",
        b"\n\n.\n\n",
        b"\r\r.\r\r",
        b"\r\n\x00.\r\n",
    ];
    for form in forms {
        let mut input = b"Subject: test\r\n\r\nhello".to_vec();
        input.extend_from_slice(form);
        input.extend_from_slice(b"MAIL FROM:<attacker@evil.example>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\nsmuggled\r\n");
        let (end, body) = decode(&input);
        assert_eq!(end, None, "form {form:?} ended DATA");
        let (end_bytewise, _) = decode_bytewise(&input);
        assert_eq!(end_bytewise, None, "form {form:?} ended DATA when fed bytewise");
        // With the real terminator appended, it is one message containing the payload.
        input.extend_from_slice(b"\r\n.\r\n");
        let (end, body2) = decode(&input);
        assert_eq!(end, Some(input.len()), "form {form:?}");
        let stored = body2.unwrap();
        assert!(stored.windows(9).any(|w| w == b"MAIL FROM"), "payload must stay inside the message");
        drop(body);
    }
}

#[test]
fn normalised_output_has_only_crlf() {
    let (_, body) = decode(b"a\nb\rc\r\r\nd\n.\ne\r\n.\r\n");
    let body = body.unwrap();
    assert_eq!(body, b"a\r\nb\r\nc\r\n\r\nd\r\n.\r\ne\r\n");
    for (i, b) in body.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(body[i - 1], b'\r');
        }
        if *b == b'\r' {
            assert_eq!(body[i + 1], b'\n');
        }
    }
}

#[test]
fn bare_endings_can_be_rejected() {
    let (end, body) = decode_with(b"a\nb\r\n.\r\n", BareEndings::Reject);
    assert_eq!(end, Some(8));
    assert_eq!(body, Err(DataProblem::BareLineEnding));
    let (_, body) = decode_with(b"clean\r\n.\r\n", BareEndings::Reject);
    assert_eq!(body.unwrap(), b"clean\r\n");
}

#[test]
fn size_limit_keeps_reading_to_the_end() {
    let mut d = DataDecoder::new(10, 998, BareEndings::Normalise);
    assert_eq!(d.feed(b"0123456789abcdef\r\n"), None);
    assert_eq!(d.feed(b"more\r\n.\r\nNOOP\r\n"), Some(9));
    assert_eq!(d.finish(), Err(DataProblem::TooBig));
}

#[test]
fn exactly_the_size_limit_is_accepted() {
    let mut d = DataDecoder::new(10, 998, BareEndings::Normalise);
    assert_eq!(d.feed(b"12345678\r\n.\r\n"), Some(13));
    assert_eq!(d.finish().unwrap().len(), 10);
}

#[test]
fn long_lines_are_detected_after_unstuffing() {
    let mut line = vec![b'x'; 998];
    line.extend_from_slice(b"\r\n.\r\n");
    let mut d = DataDecoder::new(1 << 20, 998, BareEndings::Normalise);
    d.feed(&line);
    assert!(d.finish().is_ok());
    let mut stuffed = vec![b'.'; 999];
    stuffed.extend_from_slice(b"\r\n.\r\n");
    let mut d = DataDecoder::new(1 << 20, 998, BareEndings::Normalise);
    d.feed(&stuffed);
    assert!(d.finish().is_ok(), "the stuffing dot does not count");
    let mut long = vec![b'y'; 999];
    long.extend_from_slice(b"\r\n.\r\n");
    let mut d = DataDecoder::new(1 << 20, 998, BareEndings::Normalise);
    d.feed(&long);
    assert_eq!(d.finish(), Err(DataProblem::LineTooLong));
}

#[test]
fn split_points_do_not_matter() {
    let input: &[u8] = b"A: b\r\n\r\n..x\r\ny\nz\r.\r\n.\r\n";
    let (end, whole) = decode(input);
    let (end2, bytewise) = decode_bytewise(input);
    assert_eq!(end, end2);
    assert_eq!(whole.unwrap(), bytewise);
    for split in 0..input.len() {
        let mut d = DataDecoder::new(1 << 20, 998, BareEndings::Normalise);
        let first = d.feed(&input[..split]);
        let end = first.or_else(|| d.feed(&input[split..]).map(|n| n + split));
        assert_eq!(end, Some(input.len()), "split at {split}");
        assert_eq!(d.finish().unwrap(), bytewise, "split at {split}");
    }
}
