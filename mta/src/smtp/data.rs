//! The DATA reader (RFC 5321 §4.1.1.4, §4.5.2), sans-IO.
//!
//! Only `CRLF . CRLF` ends a message. A bare LF or bare CR never starts a line, so no mixed
//! form (`<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`, ...) ends DATA: this is
//! what closes the SMTP smuggling class (CVE-2023-51764 and relatives). Bare line endings are
//! either normalised to CRLF (so a relayed copy can never carry one to a server that reads them
//! differently; the outbound client dot-stuffs the resulting lines) or make the message
//! rejected, by configuration. A line that begins with `.` after a real CRLF loses that dot
//! (dot-unstuffing, §4.5.2); after a bare line ending nothing is unstuffed, since such a client
//! cannot be trusted to have stuffed.
//!
//! smtp-proto has a DATA receiver, but it ends DATA on `CRLF . CR CR LF` and passes bare line
//! endings through untouched, which is the ambiguity we must not relay; hence this module.

/// What to do with a CR or LF that is not part of a CRLF pair (config `bare_line_endings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareEndings {
    /// Store it as CRLF (the message is accepted), like Postfix's `normalize`.
    #[default]
    #[serde(rename = "normalize", alias = "normalise")]
    Normalise,
    /// Refuse the message after its end.
    Reject,
}

/// Why a complete message must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProblem {
    /// More than the size limit; the excess was not stored.
    TooBig,
    /// A line longer than the line limit.
    LineTooLong,
    /// A bare CR or LF with [`BareEndings::Reject`].
    BareLineEnding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a real CRLF (or the start of the message).
    LineStart,
    /// Inside a line.
    Text,
    /// Saw CR inside a line; the line is real if LF follows.
    Cr,
    /// Saw `.` at a real line start.
    Dot,
    /// Saw `.` CR at a real line start; LF ends the message.
    DotCr,
}

/// Incremental DATA decoder: feed it bytes as they arrive, it writes the unstuffed message
/// with CRLF line endings into its buffer and says where the message ended.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    out: Vec<u8>,
    max_size: usize,
    max_line: usize,
    line_len: usize,
    bare: BareEndings,
    too_big: bool,
    line_too_long: bool,
    saw_bare: bool,
}

impl DataDecoder {
    /// A decoder for a message of at most `max_size` octets and lines of at most `max_line`
    /// octets (CRLF excluded).
    pub fn new(max_size: usize, max_line: usize, bare: BareEndings) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            out: Vec::with_capacity(max_size.min(64 * 1024)),
            max_size,
            max_line,
            line_len: 0,
            bare,
            too_big: false,
            line_too_long: false,
            saw_bare: false,
        }
    }

    /// Consume bytes. Returns `Some(n)` when the end of data was found after `n` bytes of
    /// `input` (the rest belongs to the next command), `None` when all of it was consumed and
    /// more is needed.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Fast path: copy the run of ordinary bytes up to the next CR or LF.
                let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                self.text(&input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            if self.byte(b) {
                return Some(i);
            }
        }
        None
    }

    /// Handle one byte outside the fast path; true at the end of data.
    fn byte(&mut self, b: u8) -> bool {
        match (self.state, b) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::LineStart | State::Text, b'\r') => self.state = State::Cr,
            (State::LineStart | State::Text, b'\n') => self.bare_ending(),
            (State::LineStart | State::Text, _) => self.text(&[b]),
            (State::Cr, b'\n') => {
                self.push(b"\r\n");
                self.line_len = 0;
                self.state = State::LineStart;
            }
            (State::Cr, _) => {
                // The CR before `b` was bare.
                self.bare_ending();
                self.reprocess_in_text(b);
            }
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::Dot, b'\n') => {
                // `.` then a bare LF: the dot is content, the line ending is bare.
                self.text(b".");
                self.bare_ending();
            }
            (State::Dot, _) => {
                // Dot-stuffed line: drop the leading dot (§4.5.2).
                self.state = State::Text;
                self.text(&[b]);
            }
            (State::DotCr, b'\n') => return true,
            (State::DotCr, _) => {
                // `.` CR x: a stuffed line whose CR was bare.
                self.bare_ending();
                self.reprocess_in_text(b);
            }
        }
        false
    }

    /// After a bare ending the next line is not a real line start: a `.` there is content.
    fn reprocess_in_text(&mut self, b: u8) {
        self.state = State::Text;
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => self.bare_ending(),
            _ => self.text(&[b]),
        }
    }

    fn bare_ending(&mut self) {
        self.saw_bare = true;
        self.push(b"\r\n");
        self.line_len = 0;
        self.state = State::Text;
    }

    fn text(&mut self, bytes: &[u8]) {
        self.state = State::Text;
        self.line_len += bytes.len();
        if self.line_len > self.max_line {
            self.line_too_long = true;
        }
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.out.len() + bytes.len() > self.max_size {
            self.too_big = true;
            return;
        }
        if !self.too_big {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Octets stored so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Nothing stored yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The finished message, or why it must be refused (size first: it is what a client can
    /// fix most easily).
    pub fn finish(self) -> Result<Vec<u8>, DataProblem> {
        if self.too_big {
            Err(DataProblem::TooBig)
        } else if self.saw_bare && self.bare == BareEndings::Reject {
            Err(DataProblem::BareLineEnding)
        } else if self.line_too_long {
            Err(DataProblem::LineTooLong)
        } else {
            Ok(self.out)
        }
    }
}

#[cfg(test)]
mod tests;
