//! Byte-class scanning for the hot loops of a body scan: where a digit run may start
//! (numbers) and where an ASCII word starts (keywords).
//!
//! A per-byte loop costs about a nanosecond per byte on the 2-core benchmark machines, which
//! alone would spend the 50 µs budget on a 64 KiB body. Two tools, both safe code:
//! - [`Blocks`], for the body scan of rules 5 and 6: 64 bytes at a time, each byte is
//!   classified by a branch-free loop over a fixed-size array, which the compiler turns into
//!   16-byte SIMD compares (SSE2 is the x86-64 baseline), and the classes are packed into one
//!   bit per byte; where digit runs and words start, and how long they are, then comes from
//!   shifts of those masks, and the callers visit set bits only.
//! - For the number iterator ([`crate::number::FindIter`]) and digit runs, helpers that
//!   classify a `u64` of eight bytes with a handful of integer operations (SWAR: "SIMD within
//!   a register"), setting bit 7 of every byte in the class.
//!
//! Every classifier is exact (no false positives) and checked against the plain definition
//! for all 256 byte values in the tests.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 set in each byte of `x` that is in `lo..=hi` (both below 128).
#[inline]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let x7 = x & !HI;
    // Adding at most 128 + 127 to a 7-bit value never carries into the next byte.
    let at_least_lo = x7 + u64::from(128 - lo) * LO;
    let above_hi = x7 + u64::from(127 - hi) * LO;
    at_least_lo & !above_hi & !x & HI
}

/// Bit 7 set in each byte of `x` that may start a digit: an ASCII digit, or `0xEF`, the lead
/// byte of the full-width digits `U+FF10..U+FF19`.
#[inline]
fn digit_start_bits(x: u64) -> u64 {
    let v = x ^ (0xEF * LO);
    // Bit 7 of `nonzero` is set in every byte of `v` that is not zero.
    let nonzero = ((v & !HI) + !HI) | v;
    in_range(x, b'0', b'9') | (!nonzero & HI)
}

fn load(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// How many ASCII digits `bytes` has in a row from offset `at`.
#[inline]
pub(crate) fn ascii_digits(bytes: &[u8], at: usize) -> usize {
    let mut n = 0;
    while let Some(x) = load(bytes, at + n) {
        let other = !in_range(x, b'0', b'9') & HI;
        if other != 0 {
            return n + (other.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + bytes.get(at + n..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The first offset at or after `from` whose byte may start a digit (see `digit_start_bits`).
pub(crate) fn next_digit_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(x) = load(bytes, at) {
        let bits = digit_start_bits(x);
        if bits != 0 {
            // Little-endian load: the lowest set byte is the first in the text.
            return Some(at + (bits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|&b| b.is_ascii_digit() || b == 0xEF).map(|p| at + p)
}

// Byte classes, as bits of one byte, before they are packed into a `Block`'s masks.
/// An ASCII digit or `0xEF`, the lead byte of the full-width digits: where a digit may be.
const DIGIT: u8 = 1;
/// An ASCII letter or digit.
const ALNUM: u8 = 2;
/// An ASCII separator of digit groups: `-`, `.` or a space.
const SEPARATOR: u8 = 4;

/// Which word starts a [`Block`] flags, by the kind of their first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WordKinds {
    /// Words starting with an ASCII letter.
    pub letters: bool,
    /// Words starting with an ASCII digit.
    pub digits: bool,
}

/// 64 bytes of a text, as bit masks for both scanners: bit `i` is byte `i` of the block.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Block {
    /// Offset of the block's first byte in the text.
    pub base: usize,
    /// Bytes where a digit run may start: an ASCII digit or `0xEF` (the lead byte of the
    /// full-width digits) not preceded by either.
    pub numbers: u64,
    /// Bytes where an ASCII word starts (a letter or digit not preceded by one) whose first
    /// byte is of a kind the caller asked for.
    pub words: u64,
    /// ASCII letters and digits.
    pub alnum: u64,
    /// ASCII digits and `0xEF` bytes, the lead byte of the full-width digits (see
    /// [`Block::numbers`]).
    pub digits: u64,
    /// ASCII separators of digit groups (`-`, `.`, space).
    pub separators: u64,
}

impl Block {
    /// The length of the ASCII word starting at byte `at` of the block, which belongs to the
    /// text `bytes` (the word may go on past the block).
    #[inline]
    pub(crate) fn word_len(&self, at: usize, bytes: &[u8]) -> usize {
        let run = (!(self.alnum >> at)).trailing_zeros() as usize;
        if at + run < 64 {
            return run;
        }
        let rest = bytes.get(self.base + 64..).unwrap_or_default();
        run + rest.iter().take_while(|b| b.is_ascii_alphanumeric()).count()
    }

    /// The digit run starting at byte `at` of the block, when the block alone shows where it
    /// ends: its end (an offset in the block) and its number of digits. `None` when the run
    /// may go on past the block or through a character that is not ASCII (a full-width digit,
    /// a non-ASCII separator), which a char-by-char reading must settle. `bytes` is the text
    /// the block belongs to. The runs are those of [`crate::number`]: digits, and single
    /// separators between two digits.
    #[inline]
    pub(crate) fn ascii_run(&self, at: usize, bytes: &[u8]) -> Option<(usize, u32)> {
        // In a run: a digit, or a separator with a digit on each side (within the block).
        // `digits` also has the `0xEF` lead bytes, but a continuation byte follows each, which
        // ends `inside` at a byte that is not ASCII: a run with a full-width digit is never
        // settled here.
        let inside = self.digits | (self.separators & (self.digits << 1) & (self.digits >> 1));
        let end = at + (!(inside >> at)).trailing_zeros() as usize;
        if end >= 64 {
            return None;
        }
        // The run ends at `end` if the byte there is ASCII and is not a separator that a digit
        // past the block or a full-width digit follows.
        match bytes.get(self.base + end) {
            Some(&b) if !b.is_ascii() => return None,
            Some(b'-' | b'.' | b' ') if bytes.get(self.base + end + 1).is_some_and(|&n| n.is_ascii_digit() || !n.is_ascii()) => {
                return None;
            }
            _ => {}
        }
        let run = (self.digits >> at) & ((1 << (end - at)) - 1);
        Some((end, run.count_ones()))
    }

    /// The word starts whose word is at least `min` bytes long, as far as the block shows:
    /// a word that runs to the end of the block is kept whatever its length.
    #[inline]
    pub(crate) fn words_at_least(&self, min: usize) -> u64 {
        // Bit i of `long`: bytes i..i + `have` are all letters or digits (or past the block).
        // `have` doubles by shifts by constants (the branches go the same way for every block
        // of a text), then one more step reaches `min`.
        let min = min.clamp(1, 64);
        let mut long = self.alnum;
        let mut have = 1;
        for step in [1, 2, 4, 8, 16, 32] {
            if min >= 2 * step {
                long &= (long >> step) | (u64::MAX << (64 - step));
                have = 2 * step;
            }
        }
        let rest = min - have;
        if rest > 0 {
            long &= (long >> rest) | (u64::MAX << (64 - rest));
        }
        self.words & long
    }
}

/// The blocks of a text, classified from one read of it: [`Blocks::next_block`] fills a
/// [`Block`] in place.
///
/// Each byte is classified by a loop over a fixed-size array with no branches, which the
/// compiler turns into 16-byte SIMD compares (SSE2, the x86-64 baseline) in safe code; the
/// classes are packed into one bit per byte eight bytes at a time, and where runs start is
/// found with shifts of those masks. The scalar callers visit the set bits only. A block
/// costs about two hundred instructions, three per byte.
#[derive(Debug)]
pub(crate) struct Blocks<'a> {
    bytes: &'a [u8],
    /// Offset of the next block.
    next: usize,
    /// Which word starts to keep.
    words: WordKinds,
    /// Bit 0: whether the byte before the next block is an ASCII letter or digit, an ASCII
    /// digit (0 at the start: nothing precedes the text).
    alnum_before: u64,
    digit_before: u64,
}

impl<'a> Blocks<'a> {
    pub(crate) fn new(bytes: &'a [u8], words: WordKinds) -> Blocks<'a> {
        Blocks { bytes, next: 0, words, alnum_before: 0, digit_before: 0 }
    }

    /// Classify the next block into `block`; `false` at the end of the text. Without `WORDS`
    /// (no word starts wanted) letters are not classified, and `words` and `alnum` stay empty.
    #[inline]
    pub(crate) fn next_block<const WORDS: bool>(&mut self, block: &mut Block) -> bool {
        let base = self.next;
        if base >= self.bytes.len() {
            return false;
        }
        self.next = base + 64;
        // The block, read in place when the text has all of it; the last one is copied and
        // padded with zero bytes, which are in no class.
        let mut padded = [0u8; 64];
        let bytes: &[u8; 64] = match self.bytes.get(base..base + 64).and_then(|b| b.try_into().ok()) {
            Some(full) => full,
            None => {
                let rest = self.bytes.get(base..).unwrap_or_default();
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        let mut classes = [0u8; 64];
        for (class, &b) in classes.iter_mut().zip(bytes) {
            *class = class_of::<WORDS>(b);
        }
        let (mut digits, mut alnum, mut separators) = (0, 0, 0);
        for (i, chunk) in classes.chunks_exact(8).enumerate() {
            let x = load(chunk, 0).unwrap_or(0);
            digits |= pack(x) << (8 * i);
            if WORDS {
                alnum |= pack(x >> 1) << (8 * i);
            }
            separators |= pack(x >> 2) << (8 * i);
        }
        let word_starts = alnum & !((alnum << 1) | self.alnum_before);
        let kinds = match (self.words.letters, self.words.digits) {
            (true, true) => u64::MAX,
            (true, false) => !digits,
            (false, true) => digits,
            (false, false) => 0,
        };
        *block = Block {
            base,
            // In valid UTF-8, `0xEF` is followed by a continuation byte, so it never precedes
            // an ASCII digit or another `0xEF`: an ASCII digit after a "digit" is after an ASCII
            // digit, and `0xEF` after one is inside that digit's run (it reads full-width digits
            // too), so neither can start one.
            numbers: digits & !((digits << 1) | self.digit_before),
            words: word_starts & kinds,
            alnum,
            digits,
            separators,
        };
        self.alnum_before = alnum >> 63;
        self.digit_before = digits >> 63;
        true
    }
}

/// Bit 0 of each byte of `x`, as eight bits, byte 0 in bit 0.
#[inline]
fn pack(x: u64) -> u64 {
    // Each bit lands in the top byte at its byte's index, with no carries between them.
    ((x & LO).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The classes of `b` ([`DIGIT`], [`ALNUM`] (exact only with `WORDS`), [`SEPARATOR`]).
#[inline(always)]
fn class_of<const WORDS: bool>(b: u8) -> u8 {
    let digit = u8::from(b.wrapping_sub(b'0') < 10);
    // `| 0x20` folds A-Z onto a-z and maps no other byte into a-z.
    let letter = if WORDS { u8::from((b | 0x20).wrapping_sub(b'a') < 26) } else { 0 };
    let separator = u8::from(b == b'-') | u8::from(b == b'.') | u8::from(b == b' ');
    const _: () = assert!(DIGIT == 1 && ALNUM == 2 && SEPARATOR == 4);
    (digit | u8::from(b == 0xEF)) | ((digit | letter) << 1) | (separator << 2)
}

/// The set bits of `mask`, lowest first.
#[inline]
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let at = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight bit-7 flags of `bits` as the low eight bits of the result, byte 0 first.
    fn movemask(bits: u64) -> u64 {
        ((bits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    }

    #[test]
    fn classifiers_are_exact_for_every_byte_value() {
        for v in 0..=255u8 {
            // The byte alone, and among neighbours that are and are not in the class.
            for fill in [0u8, b'a', b'5', 0xEF, 0xFF, b'@'] {
                let mut word = [fill; 8];
                word[3] = v;
                let x = u64::from_le_bytes(word);
                let expect = |f: fn(u8) -> bool| word.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(f(b)) << i));
                assert_eq!(movemask(digit_start_bits(x)), expect(|b| b.is_ascii_digit() || b == 0xEF), "digit {v:#x} among {fill:#x}");
            }
            let class = class_of::<true>(v);
            assert_eq!(class_of::<false>(v) & !ALNUM, class & !ALNUM, "{v:#x}");
            assert_eq!(class & DIGIT != 0, v.is_ascii_digit() || v == 0xEF, "{v:#x}");
            assert_eq!(class & ALNUM != 0, v.is_ascii_alphanumeric(), "{v:#x}");
            assert_eq!(class & SEPARATOR != 0, matches!(v, b'-' | b'.' | b' '), "{v:#x}");
        }
    }

    /// Number and word starts of every block of `text`, as offsets in the text, and the
    /// length of each word.
    fn block_flags(text: &[u8], words: WordKinds) -> (Vec<usize>, Vec<(usize, usize)>) {
        let (mut numbers, mut starts) = (Vec::new(), Vec::new());
        let mut blocks = Blocks::new(text, words);
        let mut block = Block::default();
        while blocks.next_block::<true>(&mut block) {
            numbers.extend(bits(block.numbers).map(|i| block.base + i));
            starts.extend(bits(block.words).map(|i| (block.base + i, block.word_len(i, text))));
            for (i, &b) in text[block.base..].iter().take(64).enumerate() {
                assert_eq!(block.alnum >> i & 1 == 1, b.is_ascii_alphanumeric());
                assert_eq!(block.digits >> i & 1 == 1, b.is_ascii_digit() || b == 0xEF);
                assert_eq!(block.separators >> i & 1 == 1, matches!(b, b'-' | b'.' | b' '));
            }
            for min in [0, 1, 2, 3, 5, 8, 13, 40, 64, 65] {
                let long = bits(block.words_at_least(min)).collect::<Vec<_>>();
                let want = bits(block.words).filter(|&i| block.word_len(i, text) >= min || i + block.word_len(i, text) >= 64);
                assert_eq!(long, want.collect::<Vec<_>>(), "{text:?} min {min}");
            }
        }
        (numbers, starts)
    }

    #[test]
    fn digit_starts_and_word_starts_match_the_plain_loops() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Long enough for several 64-byte blocks and a partial one.
            let len = (x % 300) as usize;
            // Some texts with long words, to cross block boundaries.
            let spaces = if x.is_multiple_of(4) { 40 } else { 10 };
            let text: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x9E37_79B9);
                    match (r % spaces) as usize {
                        n @ 0..10 => [b'a', b'Z', b'0', b' ', b'-', 0xEF, 0xBC, 0x91, b'@', b'\n'][n],
                        _ => b'q',
                    }
                })
                .collect();
            let alnum = |i: usize| text[i].is_ascii_alphanumeric();
            let digit = |i: usize| text[i].is_ascii_digit();
            let maybe_digit = |i: usize| digit(i) || text[i] == 0xEF;
            let numbers: Vec<usize> = (0..len).filter(|&i| maybe_digit(i) && (i == 0 || !maybe_digit(i - 1))).collect();
            for (letters, digits) in [(true, true), (true, false), (false, true), (false, false)] {
                let starts: Vec<(usize, usize)> = (0..len)
                    .filter(|&i| alnum(i) && (i == 0 || !alnum(i - 1)))
                    .filter(|&i| (letters && text[i].is_ascii_alphabetic()) || (digits && digit(i)))
                    .map(|i| (i, (i..len).take_while(|&j| alnum(j)).count()))
                    .collect();
                assert_eq!(block_flags(&text, WordKinds { letters, digits }), (numbers.clone(), starts), "{text:?}");
            }
            for from in [0, 1, 7, 8, 9, len / 2, len] {
                let plain = (from..len).find(|&i| text[i].is_ascii_digit() || text[i] == 0xEF);
                assert_eq!(next_digit_start(&text, from), plain, "{text:?} from {from}");
                let digits = (from..len).take_while(|&i| text[i].is_ascii_digit()).count();
                assert_eq!(ascii_digits(&text, from), digits, "{text:?} from {from}");
            }
        }
        assert_eq!(block_flags(b"", WordKinds { letters: true, digits: true }), (vec![], vec![]));
        assert_eq!(next_digit_start(b"abc", 5), None);
    }
}
