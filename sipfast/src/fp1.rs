//! FP/1, the preamble that opens every fast-path TCP stream (DESIGN.md "Fast path", "FP/1
//! preamble"; seed 004 steps T203, R203 and T204).
//!
//! Once the SDP offer/answer ([`crate::sdp`]) has fixed who connects, the stream carries:
//!
//! ```text
//! FP/1 HELLO <token>        active side first; the passive side checks the token and echoes it
//!                           ("FP/1 HELLO <token>") or sends "FP/1 ERR 403 bad-token" and closes
//! FP/1 PROTOS?              caller asks what the callee supports (T203; optional)
//! FP/1 PROTOS smtp http     callee presents them (R203), the same list as its SDP answer
//! FP/1 USE smtp             caller announces the protocol (T204)
//! FP/1 OK smtp              callee confirms; the next octet belongs to that protocol (SMTP 220)
//! ```
//!
//! Two roles are independent. *Active/passive* (RFC 4145 §4) says who opened the TCP connection:
//! the active side speaks first with `HELLO`. *Caller/callee* says who sent the INVITE: the caller
//! asks `PROTOS?` (or skips it when its protocol table already knows the answer) and sends `USE`;
//! the callee answers.
//!
//! # Grammar
//!
//! Every line is `FP/1 <VERB>[ <args>]` ended by CRLF, printable ASCII (0x20-0x7E) only, at most
//! [`MAX_LINE`] = 512 octets *including* the CRLF. Separators are single spaces; verbs are upper
//! case and case-sensitive. A protocol name is an SDP `token` (RFC 4566 §9, the same word as the
//! `m=` format), 1 to 64 characters. The token is 128 bits in base64url without padding
//! ([`Token`]).
//!
//! # Errors on the wire
//!
//! `FP/1 ERR <code> <reason>`; whoever sends it closes the stream right after, and the session
//! falls back to the relay queue (DESIGN "Fallback triggers"). The codes ([`Refusal`]):
//!
//! | code | reason | when |
//! |---|---|---|
//! | 400 | `bad-request` | a line that does not parse, or a valid line out of order |
//! | 403 | `bad-token` | the `HELLO` token is not the session's (or not a token at all) |
//! | 415 | `unsupported-protocol` | `USE` names a protocol the callee does not support, or the caller finds nothing it wants in `PROTOS` |
//! | 500 | `internal-error` | the sender failed locally (for example it is shutting down) |
//!
//! A receiver accepts any code from 100 to 599 and any printable reason.
//!
//! This module is the sans-IO codec: [`parse_line`] tells a line that needs more bytes
//! ([`ParseError::Incomplete`]) from one that can never become valid (every other
//! [`ParseError`]), and reports invalid input as early as the first bad octet so garbage does
//! not wait for the timeout. The async handshakes are in [`driver`] and re-exported here.

pub mod driver;
mod token;

pub use driver::{DEFAULT_TIMEOUT, Fp1Error, Negotiated, callee_handshake, caller_handshake};
pub use token::{BadToken, RngError, TOKEN_CHARS, Token};

/// The longest line, CRLF included.
pub const MAX_LINE: usize = 512;
/// The longest protocol name.
pub const MAX_PROTOCOL: usize = 64;

const PREFIX: &[u8] = b"FP/1 ";

/// Which end of the TCP connection this side is (RFC 4145 §4): the active side connected and
/// speaks first; the passive side accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; sends `FP/1 HELLO` first.
    Active,
    /// Accepted the connection; checks the `HELLO` and echoes it.
    Passive,
}

/// One preamble line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `FP/1 HELLO <token>`: the active side's greeting, and the passive side's echo.
    Hello(Token),
    /// `FP/1 PROTOS?`: the caller asks for the callee's protocols.
    ProtosQuery,
    /// `FP/1 PROTOS <p>...`: the callee's protocols, at least one, in its preference order.
    Protos(Vec<String>),
    /// `FP/1 USE <p>`: the caller's choice.
    Use(String),
    /// `FP/1 OK <p>`: the callee's confirmation; the stream now carries `p`.
    Ok(String),
    /// `FP/1 ERR <code> <reason>`: a refusal; the sender closes the stream.
    Err {
        /// 100 to 599; see [`Refusal`] for the ones sipmta sends.
        code: u16,
        /// Printable ASCII, possibly empty.
        reason: String,
    },
}

/// The refusals sipmta sends (the table in the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400 `bad-request`: unparsable or out-of-order line.
    BadRequest,
    /// 403 `bad-token`: the `HELLO` token is wrong.
    BadToken,
    /// 415 `unsupported-protocol`: `USE` of a protocol the callee does not speak, or no
    /// protocol in common.
    UnsupportedProtocol,
    /// 500 `internal-error`: a local failure.
    Internal,
}

impl Refusal {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::BadToken => 403,
            Refusal::UnsupportedProtocol => 415,
            Refusal::Internal => 500,
        }
    }

    /// The reason word.
    pub const fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad-request",
            Refusal::BadToken => "bad-token",
            Refusal::UnsupportedProtocol => "unsupported-protocol",
            Refusal::Internal => "internal-error",
        }
    }

    /// The `FP/1 ERR` line for this refusal.
    pub fn line(self) -> Line {
        Line::Err { code: self.code(), reason: self.reason().to_owned() }
    }
}

/// Why bytes are not (yet) a preamble line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes so far are the start of a valid line: read more.
    #[error("incomplete FP/1 line")]
    Incomplete,
    /// No CRLF within 512 octets.
    #[error("FP/1 line longer than 512 octets")]
    TooLong,
    /// A CR not followed by LF, a LF without CR, or an octet outside printable ASCII.
    #[error("FP/1 line has a control or non-ASCII octet or a bare CR/LF")]
    BadOctet,
    /// The line does not start with `FP/1 `.
    #[error("not an FP/1 line")]
    NotFp1,
    /// The verb is not one of HELLO, PROTOS?, PROTOS, USE, OK, ERR.
    #[error("unknown FP/1 verb")]
    UnknownVerb,
    /// The verb's arguments are missing, extra or malformed.
    #[error("malformed FP/1 arguments")]
    BadArguments,
    /// `HELLO` with something that is not a [`Token`].
    #[error("FP/1 HELLO without a valid token")]
    BadToken,
}

/// Whether `name` can be a protocol name: an RFC 4566 §9 `token`, 1 to [`MAX_PROTOCOL`] octets.
pub fn is_protocol_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_PROTOCOL && name.bytes().all(is_token_char)
}

/// RFC 4566 §9 `token-char`: visible ASCII except `"(),/:;<=>?@[\]`.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&c)
}

/// Parses the first line of `buf`. On success returns it and the number of octets it used
/// (CRLF included); the octets after it are not looked at.
pub fn parse_line(buf: &[u8]) -> Result<(Line, usize), ParseError> {
    // Scan once: stop at the first LF, reject any other octet that can never be part of a line.
    let mut end = None;
    for (i, &c) in buf.iter().enumerate() {
        if i < PREFIX.len() && c != PREFIX[i] {
            return Err(ParseError::NotFp1);
        }
        match c {
            b'\n' => {
                if i == 0 || buf[i - 1] != b'\r' {
                    return Err(ParseError::BadOctet);
                }
                end = Some(i + 1);
                break;
            }
            b'\r' => {
                if buf.get(i + 1).is_some_and(|&n| n != b'\n') {
                    return Err(ParseError::BadOctet);
                }
            }
            0x20..=0x7e => {}
            _ => return Err(ParseError::BadOctet),
        }
        if i + 1 >= MAX_LINE {
            return Err(ParseError::TooLong);
        }
    }
    let Some(end) = end else { return Err(ParseError::Incomplete) };
    // Printable ASCII, so UTF-8; the prefix was checked while scanning.
    let text = std::str::from_utf8(&buf[PREFIX.len()..end - 2]).map_err(|_| ParseError::BadOctet)?;
    Ok((parse_body(text)?, end))
}

/// `text` is the line after `FP/1 ` and before CRLF.
fn parse_body(text: &str) -> Result<Line, ParseError> {
    let (verb, args) = match text.split_once(' ') {
        Some((verb, args)) => (verb, Some(args)),
        None => (text, None),
    };
    let one_protocol = |args: Option<&str>| match args {
        Some(p) if is_protocol_name(p) => Ok(p.to_owned()),
        _ => Err(ParseError::BadArguments),
    };
    match verb {
        "HELLO" => match args {
            Some(t) => Token::parse(t).map(Line::Hello).map_err(|_| ParseError::BadToken),
            None => Err(ParseError::BadToken),
        },
        "PROTOS?" => match args {
            None => Ok(Line::ProtosQuery),
            Some(_) => Err(ParseError::BadArguments),
        },
        "PROTOS" => {
            let list = args.ok_or(ParseError::BadArguments)?;
            let protos: Vec<String> = list.split(' ').map(str::to_owned).collect();
            if protos.iter().all(|p| is_protocol_name(p)) { Ok(Line::Protos(protos)) } else { Err(ParseError::BadArguments) }
        }
        "USE" => one_protocol(args).map(Line::Use),
        "OK" => one_protocol(args).map(Line::Ok),
        "ERR" => {
            let args = args.ok_or(ParseError::BadArguments)?;
            let (code, reason) = match args.split_once(' ') {
                Some((code, reason)) => (code, reason),
                None => (args, ""),
            };
            if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
                return Err(ParseError::BadArguments);
            }
            let code: u16 = code.parse().map_err(|_| ParseError::BadArguments)?;
            if !(100..=599).contains(&code) {
                return Err(ParseError::BadArguments);
            }
            Ok(Line::Err { code, reason: reason.to_owned() })
        }
        _ => Err(ParseError::UnknownVerb),
    }
}

impl Line {
    /// The wire form, CRLF included. Fails when the value cannot be written as a valid line (a
    /// protocol name that is not a token, an empty `PROTOS` list, a code outside 100-599, a reason
    /// with control octets, more than 512 octets): the encoding is checked by parsing it back, so
    /// whatever this returns, [`parse_line`] reads as `self`.
    pub fn encode(&self) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(PREFIX);
        match self {
            Line::Hello(token) => {
                out.extend_from_slice(b"HELLO ");
                out.extend_from_slice(token.to_string().as_bytes());
            }
            Line::ProtosQuery => out.extend_from_slice(b"PROTOS?"),
            Line::Protos(list) => {
                out.extend_from_slice(b"PROTOS");
                for p in list {
                    out.push(b' ');
                    out.extend_from_slice(p.as_bytes());
                }
            }
            Line::Use(p) => {
                out.extend_from_slice(b"USE ");
                out.extend_from_slice(p.as_bytes());
            }
            Line::Ok(p) => {
                out.extend_from_slice(b"OK ");
                out.extend_from_slice(p.as_bytes());
            }
            Line::Err { code, reason } => {
                out.extend_from_slice(format!("ERR {code}").as_bytes());
                if !reason.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(reason.as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        match parse_line(&out) {
            Ok((ref back, n)) if back == self && n == out.len() => Ok(out),
            Ok(_) => Err(ParseError::BadArguments),
            // A value too long to fit parses as "incomplete" only if it has no CRLF, which it has.
            Err(e) => Err(e),
        }
    }

    /// The verb, for logs and error messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Line::Hello(_) => "HELLO",
            Line::ProtosQuery => "PROTOS?",
            Line::Protos(_) => "PROTOS",
            Line::Use(_) => "USE",
            Line::Ok(_) => "OK",
            Line::Err { .. } => "ERR",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::from_bytes(*b"0123456789abcdef")
    }

    fn parse(s: &str) -> Result<(Line, usize), ParseError> {
        parse_line(s.as_bytes())
    }

    #[test]
    fn every_verb_round_trips() {
        let lines = [
            Line::Hello(token()),
            Line::ProtosQuery,
            Line::Protos(vec!["smtp".into(), "http".into()]),
            Line::Protos(vec!["smtp".into()]),
            Line::Use("smtp".into()),
            Line::Ok("smtp".into()),
            Line::Err { code: 403, reason: "bad-token".into() },
            Line::Err { code: 500, reason: "".into() },
            Refusal::UnsupportedProtocol.line(),
        ];
        for line in lines {
            let wire = line.encode().expect("encodes");
            assert_eq!(parse_line(&wire), Ok((line.clone(), wire.len())), "{:?}", String::from_utf8_lossy(&wire));
        }
    }

    #[test]
    fn design_transcript_lines() {
        let hello = format!("FP/1 HELLO {}\r\n", token());
        assert_eq!(parse(&hello), Ok((Line::Hello(token()), hello.len())));
        assert_eq!(parse("FP/1 PROTOS?\r\n"), Ok((Line::ProtosQuery, 14)));
        assert_eq!(parse("FP/1 PROTOS smtp http\r\n"), Ok((Line::Protos(vec!["smtp".into(), "http".into()]), 23)));
        assert_eq!(parse("FP/1 USE smtp\r\n"), Ok((Line::Use("smtp".into()), 15)));
        assert_eq!(parse("FP/1 OK smtp\r\n"), Ok((Line::Ok("smtp".into()), 14)));
        assert_eq!(parse("FP/1 ERR 403 bad-token\r\n"), Ok((Refusal::BadToken.line(), 24)));
        assert_eq!(parse("FP/1 ERR 421 going away now\r\n"), Ok((Line::Err { code: 421, reason: "going away now".into() }, 29)));
        assert_eq!(parse("FP/1 ERR 500\r\n"), Ok((Line::Err { code: 500, reason: String::new() }, 14)));
    }

    #[test]
    fn bytes_after_the_line_are_left_alone() {
        assert_eq!(parse("FP/1 OK smtp\r\n220 mx ESMTP\r\n"), Ok((Line::Ok("smtp".into()), 14)));
        assert_eq!(parse_line(b"FP/1 OK smtp\r\n\x00\xff"), Ok((Line::Ok("smtp".into()), 14)));
    }

    #[test]
    fn incomplete_only_for_a_valid_prefix() {
        for partial in ["", "F", "FP/1", "FP/1 ", "FP/1 USE sm", "FP/1 USE smtp", "FP/1 USE smtp\r"] {
            assert_eq!(parse(partial), Err(ParseError::Incomplete), "{partial:?}");
        }
        // Invalid as soon as the bad octet arrives, before any CRLF.
        assert_eq!(parse("G"), Err(ParseError::NotFp1));
        assert_eq!(parse("FP/2"), Err(ParseError::NotFp1));
        assert_eq!(parse("fp/1 "), Err(ParseError::NotFp1));
        assert_eq!(parse("EHLO x\r\n"), Err(ParseError::NotFp1));
        assert_eq!(parse("FP/1 USE \x01"), Err(ParseError::BadOctet));
        assert_eq!(parse("FP/1 USE s\rx"), Err(ParseError::BadOctet));
        assert_eq!(parse("FP/1 USE é"), Err(ParseError::BadOctet));
    }

    #[test]
    fn line_length_limit_counts_the_crlf() {
        let fill = |n: usize| format!("FP/1 ERR 400 {}", "x".repeat(n - 13 - 2));
        let at_limit = format!("{}\r\n", fill(MAX_LINE));
        assert_eq!(at_limit.len(), MAX_LINE);
        assert!(matches!(parse(&at_limit), Ok((Line::Err { code: 400, .. }, MAX_LINE))));
        let over = format!("{}\r\n", fill(MAX_LINE + 1));
        assert_eq!(parse(&over), Err(ParseError::TooLong));
        // Without any CRLF: too long as soon as 512 octets are buffered, not before.
        let no_end = "FP/1 ERR 400 ".to_owned() + &"x".repeat(MAX_LINE);
        assert_eq!(parse(&no_end[..MAX_LINE - 1]), Err(ParseError::Incomplete));
        assert_eq!(parse(&no_end[..MAX_LINE]), Err(ParseError::TooLong));
        assert_eq!(Line::Err { code: 400, reason: "x".repeat(600) }.encode(), Err(ParseError::TooLong));
    }

    #[test]
    fn line_endings() {
        assert_eq!(parse("FP/1 USE smtp\n"), Err(ParseError::BadOctet));
        assert_eq!(parse("FP/1 USE smtp\r\r\n"), Err(ParseError::BadOctet));
        assert_eq!(parse("\r\n"), Err(ParseError::NotFp1));
        assert_eq!(parse("FP/1\r\n"), Err(ParseError::NotFp1));
    }

    #[test]
    fn bad_syntax() {
        for (text, err) in [
            ("FP/1 \r\n", ParseError::UnknownVerb),
            ("FP/1 hello x\r\n", ParseError::UnknownVerb),
            ("FP/1 QUIT\r\n", ParseError::UnknownVerb),
            ("FP/1 HELLO\r\n", ParseError::BadToken),
            ("FP/1 HELLO short\r\n", ParseError::BadToken),
            ("FP/1 HELLO MDEyMzQ1Njc4OWFiY2RlZg \r\n", ParseError::BadToken),
            ("FP/1 PROTOS? smtp\r\n", ParseError::BadArguments),
            ("FP/1 PROTOS\r\n", ParseError::BadArguments),
            ("FP/1 PROTOS \r\n", ParseError::BadArguments),
            ("FP/1 PROTOS smtp  http\r\n", ParseError::BadArguments),
            ("FP/1 PROTOS smtp \r\n", ParseError::BadArguments),
            ("FP/1 PROTOS smtp/1\r\n", ParseError::BadArguments),
            ("FP/1 USE\r\n", ParseError::BadArguments),
            ("FP/1 USE smtp http\r\n", ParseError::BadArguments),
            ("FP/1 OK \r\n", ParseError::BadArguments),
            ("FP/1 ERR\r\n", ParseError::BadArguments),
            ("FP/1 ERR 40 x\r\n", ParseError::BadArguments),
            ("FP/1 ERR 4000 x\r\n", ParseError::BadArguments),
            ("FP/1 ERR 099 x\r\n", ParseError::BadArguments),
            ("FP/1 ERR 600 x\r\n", ParseError::BadArguments),
            ("FP/1 ERR +40 x\r\n", ParseError::BadArguments),
        ] {
            assert_eq!(parse(text), Err(err), "{text:?}");
        }
        let long_name = "p".repeat(MAX_PROTOCOL + 1);
        assert_eq!(parse(&format!("FP/1 USE {long_name}\r\n")), Err(ParseError::BadArguments));
    }

    #[test]
    fn encode_refuses_what_cannot_be_written() {
        assert_eq!(Line::Protos(vec![]).encode(), Err(ParseError::BadArguments));
        assert_eq!(Line::Use("s mtp".into()).encode(), Err(ParseError::BadArguments));
        assert_eq!(Line::Use(String::new()).encode(), Err(ParseError::BadArguments));
        assert_eq!(Line::Ok("smtp\r\nEHLO".into()).encode(), Err(ParseError::BadArguments));
        assert_eq!(Line::Err { code: 99, reason: "x".into() }.encode(), Err(ParseError::BadArguments));
        assert_eq!(Line::Err { code: 400, reason: "a\tb".into() }.encode(), Err(ParseError::BadOctet));
    }

    #[test]
    fn protocol_names_are_sdp_tokens() {
        assert!(is_protocol_name("smtp"));
        assert!(is_protocol_name("x-lmtp.v2+tls"));
        assert!(!is_protocol_name(""));
        assert!(!is_protocol_name("a/b"));
        assert!(!is_protocol_name("a b"));
        assert!(!is_protocol_name("PROTOS?"));
    }
}
