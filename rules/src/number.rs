//! IP telephone numbers: the prefixes that mark them (DESIGN.md "Routing rules": `050`, `080`
//! followed by 8 digits by default), normalisation to E.164 (`050-1234-5678` ->
//! `+815012345678`), and finding them in text.
//!
//! Japanese mail writes numbers in many ways: hyphens, dots or spaces between groups, and
//! full-width digits and dashes (`０５０－１２３４－５６７８`). All are accepted. A number must
//! stand alone: digits directly before or after it (`1050-1234-5678`, `050-1234-56789`) mean it
//! is part of something longer and does not match.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A number prefix and how many digits follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefix {
    /// The national prefix digits, e.g. `050`.
    pub digits: String,
    /// Digits after the prefix, e.g. 8.
    pub length: u8,
}

/// How numbers are recognised and written in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberPlan {
    /// Country calling code without `+`, e.g. `81`.
    pub country_code: String,
    /// The prefixes that make a digit string an IP telephone number.
    pub prefixes: Vec<Prefix>,
}

impl Default for NumberPlan {
    fn default() -> Self {
        NumberPlan {
            country_code: "81".into(),
            prefixes: vec![Prefix { digits: "050".into(), length: 8 }, Prefix { digits: "080".into(), length: 8 }],
        }
    }
}

/// Why a string is not a number under the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Characters other than digits, separators and a leading `+`.
    #[error("{0:?} contains characters that are not digits or separators")]
    Characters(String),
    /// No configured prefix matches, or the digit count after it is wrong.
    #[error("{0:?} is not a number with a known prefix ({1})")]
    NoPrefix(String, String),
    /// An E.164 number for another country.
    #[error("{0:?} is not in country code +{1}")]
    OtherCountry(String, String),
}

/// A number in E.164 form, e.g. `+815012345678`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct E164(pub String);

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ASCII digit for an ASCII or full-width digit.
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        _ => None,
    }
}

/// Separators allowed between digit groups: ASCII `-`, `.`, space; full-width and typographic
/// hyphens and dashes; the ideographic space; and the katakana prolonged sound mark, which
/// Japanese text often uses as a hyphen.
fn separator(c: char) -> bool {
    matches!(c, '-' | '.' | ' ' | '－' | '‐' | '‑' | '‒' | '–' | '−' | '　' | 'ー' | '．')
}

impl NumberPlan {
    /// Normalise a number written by an operator or found in mail: national (`050-1234-5678`)
    /// or E.164 (`+81-50-1234-5678`), with any of the accepted separators.
    pub fn normalise(&self, input: &str) -> Result<E164, NumberError> {
        let trimmed = input.trim();
        let (plus, body) = match trimmed.strip_prefix('+').or_else(|| trimmed.strip_prefix('＋')) {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match digit(c) {
                Some(d) => digits.push(char::from(b'0' + d)),
                None if separator(c) => {}
                None => return Err(NumberError::Characters(input.into())),
            }
        }
        let national = if plus {
            let Some(rest) = digits.strip_prefix(&self.country_code) else {
                return Err(NumberError::OtherCountry(input.into(), self.country_code.clone()));
            };
            format!("0{rest}")
        } else {
            digits
        };
        self.national_to_e164(&national).ok_or_else(|| NumberError::NoPrefix(input.into(), self.describe()))
    }

    /// `05012345678` -> `+815012345678`, if a prefix matches with the right length.
    fn national_to_e164(&self, national: &str) -> Option<E164> {
        let ok = self.prefixes.iter().any(|p| national.len() == p.digits.len() + usize::from(p.length) && national.starts_with(&p.digits));
        if !ok {
            return None;
        }
        // The national trunk prefix 0 is dropped in international form.
        let subscriber = national.strip_prefix('0').unwrap_or(national);
        Some(E164(format!("+{}{subscriber}", self.country_code)))
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self.prefixes.iter().map(|p| format!("{} + {} digits", p.digits, p.length)).collect();
        if list.is_empty() { "no prefixes configured".into() } else { list.join(", ") }
    }

    /// Every number in `text`, in order, with its byte range. A candidate is a run of digits
    /// and single separators between digits; it matches only if it is not part of a longer
    /// digit run and its digits form a number under the plan.
    pub fn find(&self, text: &str) -> Vec<Found> {
        self.find_iter(text).collect()
    }

    /// [`find`](Self::find) as a lazy iterator: the routing rules want only the first number,
    /// and a body can be 256 KiB, so nothing is scanned past the match that is used.
    pub fn find_iter<'p, 't>(&'p self, text: &'t str) -> FindIter<'p, 't> {
        self.find_iter_starting_by(text, text.len())
    }

    /// Like [`find_iter`](Self::find_iter), but only digit runs that start at or before byte
    /// `last_start` are looked at (a run may still end after it): when something else already
    /// matched there, the rest of the text need not be read.
    pub fn find_iter_starting_by<'p, 't>(&'p self, text: &'t str, last_start: usize) -> FindIter<'p, 't> {
        let stop = last_start.saturating_add(1).min(text.len());
        FindIter { plan: self, text, pos: 0, stop, counts: self.digit_counts(), digits: String::new() }
    }
}

/// Iterator over the numbers in a text; see [`NumberPlan::find_iter`].
#[derive(Debug)]
pub struct FindIter<'p, 't> {
    plan: &'p NumberPlan,
    text: &'t str,
    /// Byte offset where the search resumes: always just past a digit run (or 0), so a run
    /// found from here is never preceded by a digit.
    pos: usize,
    /// Digit runs must start before this byte offset.
    stop: usize,
    /// [`NumberPlan::digit_counts`].
    counts: u64,
    /// Reused buffer for the ASCII digits of the current run.
    digits: String,
}

impl Iterator for FindIter<'_, '_> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        let bytes = self.text.as_bytes();
        while self.pos < self.stop {
            // Skip to the next byte that may start a digit: the hot path of a body scan, so it
            // looks at eight bytes at a time, not at decoded chars.
            let Some(start) = crate::scan::next_digit_start(&bytes[..self.stop], self.pos) else {
                self.pos = self.stop;
                return None;
            };
            // `start` is a char boundary: ASCII digits and the lead byte EF are never
            // continuation bytes.
            let (end, found) = self.plan.run_at(self.text, start, self.counts, &mut self.digits);
            self.pos = end;
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

impl NumberPlan {
    /// The digit counts (bit n; bit 63 for 63 or more) a digit run can have and still form a
    /// number under the plan, national or after `+` and the country code: any other run is
    /// turned away without looking at its digits.
    pub(crate) fn digit_counts(&self) -> u64 {
        let bit = |n: usize| 1u64 << n.min(63);
        self.prefixes
            .iter()
            .map(|p| p.digits.len() + usize::from(p.length))
            .fold(0, |counts, n| counts | bit(n) | bit((n + self.country_code.len()).saturating_sub(1)))
    }

    /// The digit run starting at byte `start` of `text`, a char boundary that no digit run
    /// covers: where the search resumes (just past the run, or past `start` when no digit
    /// starts there) and the number the run forms, if any. `counts` is [`Self::digit_counts`];
    /// `digits` is a reused buffer.
    ///
    /// A run is digits and single separators between digits. It is read a byte at a time
    /// while it is ASCII (a char at a time only where it is not), once to find its end and
    /// count its digits, and a second time, for its digits, only if the count can fit.
    pub(crate) fn run_at(&self, text: &str, start: usize, counts: u64, digits: &mut String) -> (usize, Option<Found>) {
        let (end, count) = run_end(text, start);
        if end == start {
            return (start + 1, None);
        }
        if counts & (1 << count.min(63)) == 0 {
            return (end, None);
        }
        digits.clear();
        walk_run(text, start, |d| digits.push(char::from(b'0' + d)));
        let before = &text[..start];
        let plus = before.strip_suffix('+').or_else(|| before.strip_suffix('＋'));
        // Borrowed in the common national case: most digit runs in mail (dates, prices)
        // are not numbers, and should cost no allocation.
        let national: Option<Cow<'_, str>> = match plus {
            Some(_) => digits.strip_prefix(self.country_code.as_str()).map(|rest| Cow::Owned(format!("0{rest}"))),
            None => Some(Cow::Borrowed(digits)),
        };
        let found =
            national.and_then(|n| self.national_to_e164(&n)).map(|number| Found { start: plus.map_or(start, str::len), end, number });
        (end, found)
    }
}

/// The end of the digit run starting at byte `start` of `text` (`start` when no digit starts
/// there) and how many digits it has: [`walk_run`] without the digits, reading ASCII digits
/// eight at a time.
#[inline]
fn run_end(text: &str, start: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let (mut end, mut count) = (start, 0);
    loop {
        let ascii = crate::scan::ascii_digits(bytes, end);
        end += ascii;
        count += ascii;
        let next = match digit_at(text, end) {
            Some((_, len)) => Some(len),
            // A single separator between two digits belongs to the run.
            None if end > start => separator_len(text, end).and_then(|sep| Some(sep + digit_at(text, end + sep)?.1)),
            None => None,
        };
        let Some(len) = next else { return (end, count) };
        count += 1;
        end += len;
    }
}

/// Walk the digit run starting at byte `start` of `text`, giving each digit's value to
/// `digit`; the run's end (`start` when no digit starts there).
fn walk_run(text: &str, start: usize, mut digit: impl FnMut(u8)) -> usize {
    let mut end = start;
    loop {
        let next = match digit_at(text, end) {
            Some(d) => Some((0, d)),
            // A single separator between two digits belongs to the run.
            None if end > start => separator_len(text, end).and_then(|sep| Some((sep, digit_at(text, end + sep)?))),
            None => None,
        };
        let Some((sep, (d, len))) = next else { return end };
        digit(d);
        end += sep + len;
    }
}

/// The value and byte length of the digit (ASCII or full-width) at byte `at` of `text`.
#[inline]
fn digit_at(text: &str, at: usize) -> Option<(u8, usize)> {
    let bytes = text.as_bytes();
    match *bytes.get(at)? {
        b @ b'0'..=b'9' => Some((b - b'0', 1)),
        // `０`..`９` are U+FF10..U+FF19: EF BC 90..99.
        0xEF => match *bytes.get(at + 1..at + 3)? {
            [0xBC, b @ 0x90..=0x99] => Some((b - 0x90, 3)),
            _ => None,
        },
        _ => None,
    }
}

/// The byte length of the separator at byte `at` of `text` (a char boundary), if one is there.
#[inline]
fn separator_len(text: &str, at: usize) -> Option<usize> {
    match *text.as_bytes().get(at)? {
        b'-' | b'.' | b' ' => Some(1),
        b if b.is_ascii() => None,
        _ => text.get(at..)?.chars().next().filter(|&c| separator(c)).map(char::len_utf8),
    }
}

/// A number found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// The number.
    pub number: E164,
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan() -> NumberPlan {
        NumberPlan::default()
    }

    #[test]
    fn national_and_international_forms() {
        for input in [
            "050-1234-5678",
            "05012345678",
            "050.1234.5678",
            "050 1234 5678",
            "+81-50-1234-5678",
            "+815012345678",
            "０５０－１２３４－５６７８",
            "０５０ー１２３４ー５６７８",
            "＋８１５０１２３４５６７８",
        ] {
            assert_eq!(plan().normalise(input), Ok(E164("+815012345678".into())), "{input}");
        }
        assert_eq!(plan().normalise("080-0000-9999"), Ok(E164("+818000009999".into())));
    }

    #[test]
    fn wrong_numbers_say_why() {
        assert!(matches!(plan().normalise("03-1234-5678"), Err(NumberError::NoPrefix(..))));
        assert!(matches!(plan().normalise("050-1234-567"), Err(NumberError::NoPrefix(..))));
        assert!(matches!(plan().normalise("050-1234-56789"), Err(NumberError::NoPrefix(..))));
        assert!(matches!(plan().normalise("+1-650-555-0100"), Err(NumberError::OtherCountry(..))));
        assert!(matches!(plan().normalise("050-1234-abcd"), Err(NumberError::Characters(_))));
        let message = plan().normalise("03-1234-5678").unwrap_err().to_string();
        assert!(message.contains("050 + 8 digits, 080 + 8 digits"), "{message}");
    }

    #[test]
    fn custom_prefixes_and_country() {
        let p = NumberPlan { country_code: "44".into(), prefixes: vec![Prefix { digits: "056".into(), length: 7 }] };
        assert_eq!(p.normalise("056 1234567"), Ok(E164("+44561234567".into())));
        assert_eq!(p.normalise("+44 56 1234567"), Ok(E164("+44561234567".into())));
    }

    #[test]
    fn numbers_in_text() {
        let text = "Call 050-1234-5678 or ０８０－００００－９９９９, not 1050-1234-5678 nor 050-1234-56789; +81 50 1111 2222.";
        let found: Vec<String> = plan().find(text).into_iter().map(|f| f.number.0).collect();
        assert_eq!(found, ["+815012345678", "+818000009999", "+815011112222"]);
        let f = &plan().find("tel:050-1234-5678.")[0];
        assert_eq!(&"tel:050-1234-5678."[f.start..f.end], "050-1234-5678");
    }

    #[test]
    fn runs_edges_and_separators() {
        let all = |t: &str| -> Vec<String> { plan().find(t).into_iter().map(|f| f.number.0).collect() };
        assert_eq!(all("05012345678"), ["+815012345678"], "whole text");
        assert_eq!(all("x05012345678"), ["+815012345678"], "letters do not extend a digit run");
        assert_eq!(all("050--1234-5678"), Vec::<String>::new(), "a double separator ends the run");
        assert_eq!(all("050-1234-5678-"), ["+815012345678"], "a trailing separator is not part of it");
        assert_eq!(all("０５０‐１２３４‐５６７８"), ["+815012345678"], "typographic hyphen");
        assert_eq!(all("０５０　１２３４　５６７８"), ["+815012345678"], "ideographic space");
        assert_eq!(all("＋８１　５０　１２３４　５６７８"), ["+815012345678"], "full-width plus");
        assert_eq!(all("+1 050 1234 5678"), Vec::<String>::new(), "another country's number");
        assert_eq!(all("2024-050-1234-5678"), Vec::<String>::new(), "glued to a date by a separator");
        assert_eq!(all("\u{FF}ｱ050-1234-5678ｱ"), ["+815012345678"], "non-digit full-width neighbours");
    }

    /// The straightforward char-vector scan `find` used before it became an iterator; the
    /// iterator must agree with it on any text.
    pub(crate) fn reference_find(p: &NumberPlan, text: &str) -> Vec<Found> {
        let mut found = Vec::new();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            if digit(chars[i].1).is_none() {
                i += 1;
                continue;
            }
            let start = i;
            let mut digits = String::new();
            let mut end = i;
            while end < chars.len() {
                let c = chars[end].1;
                if let Some(d) = digit(c) {
                    digits.push(char::from(b'0' + d));
                    end += 1;
                } else if separator(c) && end + 1 < chars.len() && digit(chars[end + 1].1).is_some() && digit(chars[end - 1].1).is_some() {
                    end += 1;
                } else {
                    break;
                }
            }
            let byte_end = chars.get(end).map_or(text.len(), |(b, _)| *b);
            let plus = start > 0 && matches!(chars[start - 1].1, '+' | '＋');
            let candidate = if plus { digits.strip_prefix(&p.country_code).map(|r| format!("0{r}")) } else { Some(digits) };
            if let Some(e164) = candidate.and_then(|n| p.national_to_e164(&n)) {
                found.push(Found { start: if plus { chars[start - 1].0 } else { chars[start].0 }, end: byte_end, number: e164 });
            }
            i = end.max(i + 1);
        }
        found
    }

    #[test]
    fn iterator_agrees_with_the_reference_scan() {
        // Texts built from the characters that matter, by a fixed xorshift sequence.
        const ALPHABET: [&str; 19] = [
            "0",
            "5",
            "8",
            "1",
            "-",
            " ",
            ".",
            "+",
            "＋",
            "０",
            "５",
            "８",
            "－",
            "ー",
            "a",
            "ｱ",
            "050-1234-5678",
            "０８０１２３４５６７８",
            "81 50 1111 2222",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut hits = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias towards digits so that whole numbers come up often.
                let pick = if x.is_multiple_of(3) { (x >> 8) % 19 } else { [0, 1, 2, 3, 9, 10, 11][((x >> 8) % 7) as usize] };
                text.push_str(ALPHABET[pick as usize]);
            }
            let expected = reference_find(&plan(), &text);
            hits += usize::from(!expected.is_empty());
            assert_eq!(plan().find(&text), expected, "{text:?}");
        }
        assert!(hits > 50, "the generator must produce real numbers too, got {hits}");
    }

    #[test]
    fn numbers_in_addresses() {
        let found = plan().find("050-0000-9999@gw.example");
        assert_eq!(found[0].number.0, "+815000009999");
        // DESIGN.md writes `taro@0500009999.example`, one digit short of 050 + 8: with the
        // default plan that is not a number; a full one in a domain label is.
        assert!(plan().find("taro@0500009999.example").is_empty());
        let found = plan().find("taro@05000009999.example");
        assert_eq!(found[0].number.0, "+815000009999");
        assert!(plan().find("taro@105000009999.example").is_empty());
    }
}
