//! SMTP replies as values (RFC 5321 §4.2), written to the wire in one place.
//!
//! Handlers return a [`Reply`]; the session queues it and the connection flushes queued replies
//! when the client's pipelined batch is consumed (RFC 2920 §3.1). Enhanced status codes
//! (RFC 3463, announced per RFC 2034) go on every line except the greeting and EHLO lines.

use std::borrow::Cow;

/// One SMTP reply, possibly multi-line (lines separated by `\n` in `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The RFC 3463 enhanced status code (`"2.1.0"`), if any.
    pub enhanced: Option<Cow<'static, str>>,
    /// Human-readable text; `\n` separates lines of a multi-line reply.
    pub text: Cow<'static, str>,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply { code, enhanced: Some(Cow::Borrowed(enhanced)), text: text.into() }
    }

    /// A reply without an enhanced status code (greeting, EHLO).
    pub fn bare(code: u16, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply { code, enhanced: None, text: text.into() }
    }

    /// `2xx` or `3xx`.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Append the wire form to `out`. Text is sanitised: a CR or LF inside a line, or any other
    /// control character, could otherwise forge extra reply lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(enhanced) = &self.enhanced {
                out.extend_from_slice(enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend(line.bytes().map(|b| if b.is_ascii_control() { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (tests and logs).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        assert_eq!(Reply::new(250, "2.1.0", "Ok").to_wire(), "250 2.1.0 Ok\r\n");
        assert_eq!(Reply::bare(250, "a\nb\nc").to_wire(), "250-a\r\n250-b\r\n250 c\r\n");
        assert_eq!(Reply::new(214, "2.0.0", "x\ny").to_wire(), "214-2.0.0 x\r\n214 2.0.0 y\r\n");
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(Reply::new(550, "5.1.1", "bad\ruser").to_wire(), "550 5.1.1 bad user\r\n");
    }
}
