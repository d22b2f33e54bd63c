//! The leftmost evidence in one text, a header value or the decoded body (rules 5 and 6): the
//! first number or keyword, a number winning a tie, in one pass over the text.
//!
//! [`crate::scan::Blocks`] flags, 64 bytes at a time, where a digit run may start and where an
//! ASCII word starts. Each block's digit runs are read first, in order, until one forms a
//! number; then its word starts before that number are tried for a keyword. The first block
//! with either ends the scan. Keywords that do not start with an ASCII letter or digit
//! (`京都支店`, `#42`) have their own automaton, searched only up to where the pass stopped.

use crate::keywords::{KeywordHit, Keywords};
use crate::number::{Found, NumberPlan};
use crate::scan::{Block, Blocks, WordKinds, bits};

/// What starts first in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leftmost<'k> {
    /// A number.
    Number(Found),
    /// A keyword.
    Keyword(KeywordHit<'k>),
}

impl Leftmost<'_> {
    fn start(&self) -> usize {
        match self {
            Leftmost::Number(found) => found.start,
            Leftmost::Keyword(hit) => hit.start,
        }
    }
}

/// The leftmost number (only if `plan` is given, with its [`NumberPlan::digit_counts`]) or
/// keyword standing alone in `text`; on a tie, the number.
pub(crate) fn leftmost<'k>(text: &str, plan: Option<(&NumberPlan, u64)>, keywords: &'k Keywords) -> Option<Leftmost<'k>> {
    let words = keywords.word_kinds();
    let scan = plan.is_some() || words != WordKinds { letters: false, digits: false };
    let found = if scan { numbers_and_words(text, plan, keywords) } else { None };
    // A keyword of the other kind wins only if it starts first: it never starts where a word
    // keyword does (its first byte is not an ASCII letter or digit), and a number wins a tie.
    let until = found.as_ref().map_or(text.len(), Leftmost::start);
    match (found, keywords.first_anywhere(text, until)) {
        (Some(Leftmost::Number(number)), Some(hit)) if number.start <= hit.start => Some(Leftmost::Number(number)),
        (_, Some(hit)) => Some(Leftmost::Keyword(hit)),
        (found, None) => found,
    }
}

/// The bits of a block's mask at offset `at` and above (none when `at` is past the block).
#[inline]
fn from(at: usize) -> u64 {
    u64::MAX.checked_shl(at as u32).unwrap_or(0)
}

/// The one-pass scan for numbers (if `plan` is given) and word keywords.
fn numbers_and_words<'k>(text: &str, plan: Option<(&NumberPlan, u64)>, keywords: &'k Keywords) -> Option<Leftmost<'k>> {
    // Without word keywords, letters need not even be classified.
    if keywords.word_kinds() == (WordKinds { letters: false, digits: false }) {
        scan_blocks::<false>(text, plan, keywords)
    } else {
        scan_blocks::<true>(text, plan, keywords)
    }
}

/// [`numbers_and_words`], looking at word starts only with `WORDS`.
fn scan_blocks<'k, const WORDS: bool>(text: &str, plan: Option<(&NumberPlan, u64)>, keywords: &'k Keywords) -> Option<Leftmost<'k>> {
    let bytes = text.as_bytes();
    let mut blocks = Blocks::new(bytes, keywords.word_kinds());
    let mut block = Block::default();
    // Digit runs are read from here on: a flagged byte before it is inside a run already read.
    let mut resume: usize = 0;
    let mut digits = String::new();
    while blocks.next_block::<WORDS>(&mut block) {
        let base = block.base;
        // First the digit runs, in order, until one forms a number; then the word starts
        // before that number. A word keyword wins only if it starts before the number, and
        // none in a later block can: a number starts at its first digit or at the `+` just
        // before, never inside a word. Likewise a keyword found here is not beaten by a number
        // whose digits start after it.
        let mut number = None;
        if let Some((plan, counts)) = plan {
            // Candidates inside a run already read are dropped a mask at a time, not tested
            // one by one (a branch that would go either way).
            let mut starts = block.numbers & from(resume.saturating_sub(base));
            while starts != 0 {
                let i = starts.trailing_zeros() as usize;
                // Most runs (dates, times, prices) are read from the block's masks alone and
                // turned away by their digit count; the rest are read char by char.
                if let Some((end, count)) = block.ascii_run(i, bytes)
                    && counts & (1 << count.min(63)) == 0
                {
                    resume = base + end;
                } else {
                    let (end, found) = plan.run_at(text, base + i, counts, &mut digits);
                    resume = end;
                    if found.is_some() {
                        number = found;
                        break;
                    }
                }
                starts &= from(resume - base);
            }
        }
        let until = number.as_ref().map_or(usize::MAX, |n| n.start);
        for i in bits(if WORDS { keywords.word_starts(&block) } else { 0 }) {
            if base + i >= until {
                break;
            }
            if let Some(hit) = keywords.word_at(text, base + i, block.word_len(i, bytes)) {
                return Some(Leftmost::Keyword(hit));
            }
        }
        if let Some(number) = number {
            return Some(Leftmost::Number(number));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keywords::tests::{keywords_from, reference_first};
    use crate::number::tests::reference_find;

    /// The rule the one pass keeps, from the plain reference scanners: the first number and
    /// the first keyword, whichever starts first, the number on a tie.
    fn reference(plan: &NumberPlan, keywords: &[String], text: &str) -> Option<(usize, usize, String)> {
        let number = reference_find(plan, text).into_iter().next().map(|n| (n.start, n.end, format!("tel {}", n.number)));
        let keyword = reference_first(keywords, text).map(|(start, end, k)| (start, end, format!("keyword {k}")));
        match (number, keyword) {
            (Some(n), Some(k)) if k.0 < n.0 => Some(k),
            (Some(n), _) => Some(n),
            (None, k) => k,
        }
    }

    fn fast(plan: &NumberPlan, keywords: &Keywords, text: &str) -> Option<(usize, usize, String)> {
        leftmost(text, Some((plan, plan.digit_counts())), keywords).map(|found| match found {
            Leftmost::Number(n) => (n.start, n.end, format!("tel {}", n.number)),
            Leftmost::Keyword(k) => (k.start, k.end, format!("keyword {}", k.keyword)),
        })
    }

    /// Texts of up to a few hundred bytes, so that numbers, words and keywords straddle the
    /// 64-byte blocks, with every kind of digit, separator and sign the number scanner knows,
    /// and keywords that start with letters, digits and other characters.
    #[test]
    fn one_pass_agrees_with_the_plain_scanners() {
        const PIECES: [&str; 36] = [
            "050-1234-5678",
            "05012345678",
            "０８０－１２３４－５６７８",
            "+81 50 1111 2222",
            "＋８１５０１２３４５６７８",
            "2026-11-21",
            "03-1234-5678",
            "050",
            "1234",
            "5678",
            "０",
            "５",
            "0",
            "1",
            "-",
            "－",
            "ー",
            ".",
            "．",
            " ",
            "　",
            "+",
            "＋",
            "kyoto",
            "KYOTOBRANCH",
            "office",
            "ab",
            "x",
            "#42",
            "京都支店",
            "お世話になっております。",
            "\r\n",
            "@",
            "ｱ",
            "quarterlyfiguresandmore",
            "é",
        ];
        const KEYWORDS: [&str; 12] =
            ["KYOTO", "kyotobranch", "OFFICE", "ab", "AB-1", "050", "42", "#42", "京都支店", "x 1", "branch", "quarterlyfigures"];
        let plan = NumberPlan::default();
        let mut x: u64 = 0x0123_4567_89AB_CDEF;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut numbers, mut keywords, mut late) = (0, 0, 0);
        for case in 0..4_000 {
            let list: Vec<String> = (0..1 + rnd(4)).map(|_| KEYWORDS[rnd(KEYWORDS.len())].to_string()).fold(Vec::new(), |mut list, k| {
                if !list.iter().any(|o: &String| o.eq_ignore_ascii_case(&k)) {
                    list.push(k);
                }
                list
            });
            let matcher = keywords_from(&list);
            // Mostly filler, so that what matches is often far into the text.
            let text: String = (0..rnd(60))
                .map(
                    |_| if rnd(3) == 0 { PIECES[rnd(PIECES.len())] } else { ["the ", "and ", "report ", "x", "Kyoto ", "office,"][rnd(6)] },
                )
                .collect();
            let want = reference(&plan, &list, &text);
            assert_eq!(fast(&plan, &matcher, &text), want, "case {case}: {list:?} in {text:?}");
            assert_eq!(
                matcher.first(&text).map(|k| (k.start, k.end, format!("keyword {}", k.keyword))),
                reference_first(&list, &text).map(|(start, end, k)| (start, end, format!("keyword {k}"))),
                "case {case}: {list:?} in {text:?}"
            );
            if let Some((start, _, what)) = want {
                numbers += usize::from(what.starts_with("tel"));
                keywords += usize::from(what.starts_with("keyword"));
                late += usize::from(start >= 64);
            }
        }
        assert!(numbers > 300 && keywords > 300 && late > 300, "numbers {numbers}, keywords {keywords}, past the first block {late}");
    }
}
