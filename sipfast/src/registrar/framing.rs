//! Framing of SIP over a byte stream (RFC 3261 §18.3): a message is its header section up to
//! the empty line plus `Content-Length` octets of body, which is mandatory on streams. Between
//! messages a client may send the RFC 5626 §4.4.1 keep-alive ping, CRLFCRLF, which is answered
//! with a single CRLF (the pong); stray CRLFs before a start line are skipped (RFC 3261 §7.5).
//!
//! Sans-IO: the connection task appends what it reads to a buffer and takes frames off the
//! front until [`next_frame`] says it needs more.

/// Upper bound on one message on a stream; a peer that sends more is out of sync or hostile.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// One unit taken off the front of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// CRLFCRLF: answer with a CRLF.
    Ping,
    /// A lone CRLF: a pong or padding; nothing to do.
    Pong,
    /// A complete SIP message (header section and body).
    Message(Vec<u8>),
}

/// Why a stream cannot be read on: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// More than [`MAX_MESSAGE`] octets without a complete message.
    #[error("message larger than {MAX_MESSAGE} octets")]
    TooLarge,
    /// A header section without a usable Content-Length (required on streams, §18.3).
    #[error("missing or invalid Content-Length on a stream")]
    BadContentLength,
}

/// Takes the next frame off the front of `buf`; `Ok(None)` means "incomplete, read more".
pub(crate) fn next_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    if buf.starts_with(b"\r\n\r\n") {
        buf.drain(..4);
        return Ok(Some(Frame::Ping));
    }
    if buf.starts_with(b"\r\n") {
        // "\r\n" alone may be the first half of a ping: wait for one more octet to tell.
        if buf.len() < 3 || (buf.len() == 3 && buf[2] == b'\r') {
            return Ok(None);
        }
        buf.drain(..2);
        return Ok(Some(Frame::Pong));
    }
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE { Err(FrameError::TooLarge) } else { Ok(None) };
    };
    let head = &buf[..end];
    let length = content_length(head).ok_or(FrameError::BadContentLength)?;
    let total = end + 4 + length;
    if total > MAX_MESSAGE {
        return Err(FrameError::TooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let message: Vec<u8> = buf.drain(..total).collect();
    Ok(Some(Frame::Message(message)))
}

/// The value of `Content-Length` (or its compact form `l`) in a header section.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")).then(|| value.trim().parse().ok())?
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn messages_pings_and_partial_reads() {
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(OPTIONS);
        buf.extend_from_slice(&OPTIONS[..20]);
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Ping)));
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Message(OPTIONS.to_vec()))));
        assert_eq!(next_frame(&mut buf), Ok(None), "incomplete");
        buf.extend_from_slice(&OPTIONS[20..]);
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Message(OPTIONS.to_vec()))));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_lone_crlf_waits_for_the_next_octet() {
        let mut buf = b"\r\n".to_vec();
        assert_eq!(next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(b"\r");
        assert_eq!(next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Ping)));
        let mut buf = b"\r\nOPTIONS".to_vec();
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Pong)));
        assert_eq!(buf, b"OPTIONS");
    }

    #[test]
    fn compact_content_length_and_errors() {
        let mut buf = b"BYE sip:a@b SIP/2.0\r\nl: 0\r\n\r\n".to_vec();
        assert!(matches!(next_frame(&mut buf), Ok(Some(Frame::Message(_)))));
        let mut buf = b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n".to_vec();
        assert_eq!(next_frame(&mut buf), Err(FrameError::BadContentLength));
        let mut buf = vec![b'a'; MAX_MESSAGE + 1];
        assert_eq!(next_frame(&mut buf), Err(FrameError::TooLarge));
        let mut buf = format!("BYE sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\n", MAX_MESSAGE).into_bytes();
        assert_eq!(next_frame(&mut buf), Err(FrameError::TooLarge));
    }
}
