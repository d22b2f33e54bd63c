//! Byte-class scanning eight bytes at a time, for the two hot loops of a body scan: finding
//! where a digit may start (numbers) and where an ASCII word starts (keywords).
//!
//! A per-byte loop costs about a nanosecond per byte on the 2-core benchmark machines, which
//! alone would spend the 50 µs budget on a 64 KiB body. These helpers classify a `u64` of eight
//! bytes with a handful of integer operations (SWAR: "SIMD within a register"), which is safe
//! code, portable, and does not depend on the compiler vectorising a loop. Each classifier sets
//! bit 7 of every byte that is in the class, exactly (no false positives), and is checked
//! against the plain definition for all 256 byte values in the tests.

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

/// Bit 7 set in each byte of `x` that is an ASCII letter or digit.
#[inline]
pub(crate) fn alnum_bits(x: u64) -> u64 {
    // `| 0x20` folds A-Z onto a-z and maps no other byte into a-z.
    in_range(x, b'0', b'9') | in_range(x | (0x20 * LO), b'a', b'z')
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

/// The eight bit-7 flags of `bits` as the low eight bits of the result, byte 0 first.
#[inline]
fn movemask(bits: u64) -> u64 {
    ((bits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

fn load(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
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

/// Offsets where an ASCII word starts: an ASCII letter or digit not preceded by one.
#[derive(Debug)]
pub(crate) struct WordStarts<'a> {
    bytes: &'a [u8],
    /// Offset of the 64-byte block `pending` belongs to.
    base: usize,
    /// Word starts of the current block not yet returned, one bit per byte.
    pending: u64,
    /// Whether the last byte of the current block is a letter or digit.
    carry: u64,
}

impl<'a> WordStarts<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> WordStarts<'a> {
        let mut starts = WordStarts { bytes, base: 0, pending: 0, carry: 0 };
        starts.pending = starts.block_starts();
        starts
    }

    /// Word starts in the 64-byte block at `base` (zero-padded past the end of the text).
    fn block_starts(&mut self) -> u64 {
        let mut padded = [0u8; 64];
        let block = match self.bytes.get(self.base..self.base + 64) {
            Some(full) => full,
            None => {
                let tail = self.bytes.get(self.base..).unwrap_or_default();
                padded[..tail.len()].copy_from_slice(tail);
                &padded
            }
        };
        let mut alnum = 0u64;
        for (i, chunk) in block.chunks_exact(8).enumerate() {
            alnum |= movemask(alnum_bits(load(chunk, 0).unwrap_or(0))) << (8 * i);
        }
        let starts = alnum & !((alnum << 1) | self.carry);
        self.carry = alnum >> 63;
        starts
    }
}

impl Iterator for WordStarts<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.pending == 0 {
            self.base += 64;
            if self.base >= self.bytes.len() {
                return None;
            }
            self.pending = self.block_starts();
        }
        let offset = self.base + self.pending.trailing_zeros() as usize;
        self.pending &= self.pending - 1;
        Some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(x: u64) -> u64 {
        movemask(x)
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
                assert_eq!(bytes_of(alnum_bits(x)), expect(|b| b.is_ascii_alphanumeric()), "alnum {v:#x} among {fill:#x}");
                assert_eq!(bytes_of(digit_start_bits(x)), expect(|b| b.is_ascii_digit() || b == 0xEF), "digit {v:#x} among {fill:#x}");
            }
        }
    }

    #[test]
    fn digit_starts_and_word_starts_match_the_plain_loops() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            let text: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x9E37_79B9);
                    [b'a', b'Z', b'0', b' ', b'-', 0xEF, 0xBC, 0x91, b'@', b'\n'][(r % 10) as usize]
                })
                .collect();
            let plain: Vec<usize> =
                (0..len).filter(|&i| text[i].is_ascii_alphanumeric() && (i == 0 || !text[i - 1].is_ascii_alphanumeric())).collect();
            assert_eq!(WordStarts::new(&text).collect::<Vec<_>>(), plain, "{text:?}");
            for from in [0, 1, 7, 8, 9, len / 2, len] {
                let plain = (from..len).find(|&i| text[i].is_ascii_digit() || text[i] == 0xEF);
                assert_eq!(next_digit_start(&text, from), plain, "{text:?} from {from}");
            }
        }
        assert_eq!(WordStarts::new(b"").next(), None);
        assert_eq!(next_digit_start(b"abc", 5), None);
    }
}
