//! Line-level helpers shared by building and parsing DSNs: cleaning untrusted text, folding long
//! lines, CRLF normalisation, the header section of a stored message, dates, and the RFC 6533
//! `utf-8` address type.
//!
//! Invariant: whatever [`clean`] returns contains no control characters and no runs of
//! whitespace, so once it is placed in a header field it cannot end the field early or start a
//! new one, and [`fold`] can always fold before a single space that has text after it.

use mail_builder::headers::date::Date;

/// Fold at whitespace so lines stay within this width where the text allows (RFC 5322 §2.1.1
/// SHOULD).
const SOFT: usize = 78;

/// No line may be longer than this many octets, CRLF excluded (RFC 5322 §2.1.1 MUST, RFC 5321
/// §4.5.3.1.6).
pub(super) const HARD: usize = 998;

/// Make untrusted text (a remote reply, an address, an envelope id) safe for one header field or
/// one text line: control characters (CR and LF among them) and Unicode line breaks become
/// spaces, runs of whitespace become one space, the ends are trimmed. Without `utf8` (the
/// report is not RFC 6533 global) non-ASCII characters become `?`, since RFC 3464 §2.1.1 fields
/// are US-ASCII.
pub(super) fn clean(s: &str, utf8: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(if utf8 || c.is_ascii() { c } else { '?' });
    }
    out
}

/// Append a header field to `out` as one or more wire lines, each ending in CRLF.
///
/// Folding happens before a space (RFC 5322 §2.2.3), so unfolding gives the text back exactly:
/// the last space within 78 octets if there is one, else the first within 998. A run of 998
/// octets with no space at all is split hard and the next line starts with a space: that adds a
/// space to the unfolded value, which is the only way to honour the 998 limit for such text.
pub(super) fn fold(field: &str, out: &mut Vec<u8>) {
    split(field, out, None);
}

/// Append a line of body text to `out`, broken like [`fold`] but with the space at each break
/// replaced by `indent` at the start of the next line.
pub(super) fn wrap(text: &str, indent: &str, out: &mut Vec<u8>) {
    split(text, out, Some(indent));
}

/// [`fold`] when `indent` is `None`, [`wrap`] otherwise.
fn split(line: &str, out: &mut Vec<u8>, indent: Option<&str>) {
    let mut rest = line;
    // Octets already on the current wire line (an indent, or the space of a hard split).
    let mut used = 0;
    while used + rest.len() > SOFT {
        let b = rest.as_bytes();
        // A break point is a space with text on both sides. Index 0 never is: after a fold it
        // is the space we folded before. A space after a space or at the end would leave a
        // whitespace-only line, which RFC 5322 §3.2.2 forbids in a header.
        let points = || (1..b.len().saturating_sub(1)).filter(|&i| b[i] == b' ' && b[i - 1] != b' ');
        let soft = points().take_while(|&i| used + i <= SOFT).last();
        let cut = soft.or_else(|| points().find(|&i| used + i <= HARD).filter(|_| used + rest.len() > HARD));
        let (next, skip) = match cut {
            Some(i) => (i, usize::from(indent.is_some())),
            None if used + rest.len() <= HARD => break,
            None => {
                let mut i = HARD - used;
                while !rest.is_char_boundary(i) {
                    i -= 1;
                }
                (i, 0)
            }
        };
        out.extend_from_slice(&b[..next]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[next + skip..];
        used = match (indent, cut) {
            (Some(indent), _) => {
                out.extend_from_slice(indent.as_bytes());
                indent.len()
            }
            // The folded line starts with the space we folded before.
            (None, Some(_)) => 0,
            (None, None) => {
                out.push(b' ');
                1
            }
        };
    }
    out.extend_from_slice(rest.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The lines of `bytes`, accepting CRLF, bare LF and bare CR as line ends (RFC 5322 §2.3 allows
/// only CRLF, but a report must not break on a sloppy original); the ends are not part of the
/// lines. A final line without an end is still a line; an empty input has none.
pub(super) fn lines(bytes: &[u8]) -> Lines<'_> {
    Lines { rest: bytes }
}

/// Iterator returned by [`lines`].
#[derive(Debug)]
pub(super) struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(i) = memchr::memchr2(b'\r', b'\n', self.rest) else {
            return Some(std::mem::take(&mut self.rest));
        };
        let line = &self.rest[..i];
        let end = if self.rest[i] == b'\r' && self.rest.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
        self.rest = &self.rest[i + end..];
        Some(line)
    }
}

/// Write lines with CRLF ends, splitting any line over 998 octets with CRLF SP.
///
/// Used for the returned header section only: a header line that long is already broken, and
/// a continuation keeps it one (slightly altered) field rather than dropping it. A returned body
/// is never split; see `build::returned`.
pub(super) fn write_limited<'a>(lines: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for line in lines {
        let mut rest = line;
        let mut room = HARD;
        while rest.len() > room {
            out.extend_from_slice(&rest[..room]);
            out.extend_from_slice(b"\r\n ");
            rest = &rest[room..];
            room = HARD - 1;
        }
        out.extend_from_slice(rest);
        out.extend_from_slice(b"\r\n");
    }
}

/// An RFC 5322 §3.3 date-time for Unix seconds, in UTC.
pub(super) fn date(secs: u64) -> String {
    // Clamp to the year 9999 so the four-digit year of RFC 5322 §3.3 holds for any input.
    const MAX: u64 = 253_402_300_799;
    Date::new(secs.min(MAX) as i64).to_rfc822()
}

/// An address for the RFC 6533 §3 `utf-8` address type. Printable ASCII other than `+`, `=`
/// and `\` stands for itself; with `unicode` (a global report: `utf-8-addr-unitext`) so do
/// non-ASCII characters; everything else is written `\x{HEX}` with the Unicode code point
/// (`utf-8-addr-xtext`), which keeps spaces and controls out of the field as well.
pub(super) fn utf8_addr_text(addr: &str, unicode: bool) -> String {
    let mut out = String::with_capacity(addr.len());
    for c in addr.chars() {
        let plain = matches!(c, '!'..='~') && !matches!(c, '+' | '=' | '\\');
        if plain || (unicode && !c.is_ascii() && !c.is_control() && !c.is_whitespace()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    out
}

/// Undo [`utf8_addr_text`] (and accept the raw UTF-8 of `utf-8-addr-unitext`, RFC 6533 §3).
/// A malformed escape is kept as written rather than rejected: the value is for display and
/// matching, and a broken remote report should still be recorded.
pub(super) fn decode_utf8_addr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("\\x{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let decoded = after
            .find('}')
            .filter(|&end| (1..=6).contains(&end))
            .and_then(|end| Some((u32::from_str_radix(&after[..end], 16).ok().and_then(char::from_u32)?, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("\\x{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(line: &str) -> String {
        let mut out = Vec::new();
        fold(line, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn clean_removes_line_breaks_and_runs_of_space() {
        assert_eq!(clean(" 550 a\r\nInjected: x\t\u{2028}b  ", true), "550 a Injected: x b");
        assert_eq!(clean("bj\u{f6}rn", false), "bj?rn");
        assert_eq!(clean("bj\u{f6}rn", true), "bj\u{f6}rn");
    }

    #[test]
    fn short_lines_are_not_folded() {
        assert_eq!(folded("Action: failed"), "Action: failed\r\n");
    }

    #[test]
    fn folding_is_before_a_space_and_unfolds_to_the_same_text() {
        let words = vec!["word"; 60].join(" ");
        let line = format!("Diagnostic-Code: smtp; {words}");
        let out = folded(&line);
        assert!(out.split("\r\n").all(|l| l.len() <= SOFT));
        assert_eq!(out.replace("\r\n", ""), line);
    }

    #[test]
    fn a_long_token_is_split_within_998_octets() {
        let line = format!("X: {}", "a".repeat(5000));
        let out = folded(&line);
        assert!(out.ends_with("\r\n"));
        for l in out.trim_end_matches("\r\n").split("\r\n") {
            assert!(l.len() <= HARD, "{}", l.len());
            assert!(!l.trim().is_empty());
        }
        // Hard splits add a space each; nothing else changes.
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(squeeze(&out), squeeze(&line));
    }

    #[test]
    fn multibyte_text_is_split_on_character_boundaries() {
        let out = folded(&"\u{e9}".repeat(1000));
        assert!(String::from_utf8(out.into_bytes()).is_ok());
    }

    #[test]
    fn lines_accept_every_line_end() {
        let all = |b: &'static [u8]| lines(b).collect::<Vec<_>>();
        assert_eq!(all(b"a\r\nb\nc\rd"), vec![&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(all(b"a\r\n\r\nb"), vec![&b"a"[..], b"", b"b"]);
        assert_eq!(all(b"a\r\n"), vec![&b"a"[..]]);
        assert!(all(b"").is_empty());
    }

    #[test]
    fn wrapped_text_drops_the_space_at_each_break() {
        let text = vec!["word"; 40].join(" ");
        let mut out = Vec::new();
        wrap(&text, "", &mut out);
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(out.lines().all(|l| l.len() <= SOFT && !l.starts_with(' ') && !l.ends_with(' ')));
        assert_eq!(out.trim_end().replace("\r\n", " "), text);
        let mut out = Vec::new();
        wrap(&text, "    ", &mut out);
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(out.lines().skip(1).all(|l| l.len() <= SOFT && l.starts_with("    word")));
        assert_eq!(out.trim_end().replace("\r\n    ", " "), text);
    }

    #[test]
    fn long_header_lines_are_continued() {
        let long = vec![b'x'; 2500];
        let mut out = Vec::new();
        write_limited([&long[..]].into_iter(), &mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        assert!(text.split("\r\n").all(|l| l.len() <= HARD));
        assert_eq!(text.replace("\r\n ", "").trim_end().len(), 2500);
    }

    #[test]
    fn utf8_addresses_round_trip_through_xtext_and_unitext() {
        let addr = "j\u{f6}rg+x=1\\@b\u{fc}cher.example";
        let x = utf8_addr_text(addr, false);
        assert!(x.is_ascii());
        assert_eq!(x, "j\\x{F6}rg\\x{2B}x\\x{3D}1\\x{5C}@b\\x{FC}cher.example");
        assert_eq!(decode_utf8_addr(&x), addr);
        let u = utf8_addr_text(addr, true);
        assert_eq!(u, "j\u{f6}rg\\x{2B}x\\x{3D}1\\x{5C}@b\u{fc}cher.example");
        assert_eq!(decode_utf8_addr(&u), addr);
        assert_eq!(utf8_addr_text("a b\r\n", true), "a\\x{20}b\\x{D}\\x{A}");
        assert_eq!(decode_utf8_addr("a\\x{zz}b\\x{"), "a\\x{zz}b\\x{");
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert!(date(u64::MAX).contains("9999"));
    }
}
