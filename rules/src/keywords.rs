//! The keyword table's matcher: every keyword at once over an address, a header or a body.
//!
//! Matching is multi-pattern (DESIGN.md: fast with 100k entries, not a loop over entries) and
//! ASCII case-insensitive: `kyotobranchoffice` matches `KYOTOBRANCHOFFICE`; letters outside
//! ASCII (kana, kanji, full-width Latin) match only exactly as written.
//!
//! **Boundaries.** A keyword must not be glued to other ASCII letters or digits: an edge of the
//! keyword that is an ASCII letter or digit must not touch another ASCII letter or digit in the
//! text, so `KYOTO` does not match inside `TOKYOTOWER` or `KYOTO2`, but does in `kyoto@x`,
//! `taro.kyoto`, `"Kyoto office"` and `KYOTO支店`. Only ASCII counts because Japanese text has
//! no spaces between words: requiring a boundary next to kana or kanji would make keywords
//! useless in the mail they are meant for.
//!
//! **Which match.** The leftmost keyword occurrence that passes the boundary rule wins; of
//! several starting there, the longest that passes (`OSAKA` in `OSAKA-BX` when `OSAKA-B` is
//! glued to the `X`).
//!
//! **How.** The boundary rule makes the search cheap for the common keyword, one that starts
//! with an ASCII letter or digit ("word keyword"): it can only match where an ASCII word
//! starts, and only where that word is exactly as long as the keyword's own first word (its
//! letters and digits match only letters and digits, and what follows them may not be one).
//! Word starts and their lengths come from the 64-byte blocks of [`crate::scan`] (one pass
//! over the text, shared with the number scan, see `find`); words shorter than every keyword's
//! first word are dropped a block at a time; the rest are checked against their first byte and
//! a Bloom filter of (first four bytes, case folded; word length), and only the few that pass
//! (about 1% of the word starts in a 64 KiB English body with 10k keywords) run an anchored
//! Aho-Corasick search. Scanning every byte with one 10k-pattern automaton instead cost ~9 ns a
//! byte on the benchmark machine (its DFA is 43 MiB, so most transitions miss the cache).
//! Keywords that start with anything else (`京都支店`, `#42`) can start anywhere; they go into a
//! second, unanchored automaton, whose own prefilter skips ahead to their first bytes.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, Input, Match, MatchKind, StartKind};

use crate::find::{Leftmost, leftmost};
use crate::scan::{Block, WordKinds};
use crate::tables::{Entry, RulesError, TableName};

/// All keywords of the keyword table, compiled.
pub(crate) struct Keywords {
    /// Keyword as the operator wrote it, and its entry.
    entries: Vec<(String, Entry)>,
    /// Keywords starting with an ASCII letter or digit, searched at word starts only.
    word: Option<Automaton>,
    /// Hashed, case-folded prefixes of the word keywords (see [`PrefixFilter`]).
    filter: PrefixFilter,
    /// The first bytes of the word keywords, case folded (`b | 0x20`, which every ASCII letter
    /// and digit is below 128 after): bit `b | 0x20` is set when a word keyword starts with `b`.
    first_bytes: u128,
    /// Whether word keywords start with letters, digits or both.
    kinds: WordKinds,
    /// Whether `first_bytes` holds every letter if it holds one, and every digit if it holds
    /// one: then `kinds` says all it does, and it need not be read.
    first_bytes_by_kind: bool,
    /// Keywords starting with any other character, searched everywhere.
    anywhere: Option<Automaton>,
    /// Bytes of the longest keyword in `anywhere`.
    anywhere_max_len: usize,
}

/// An automaton and, per pattern id, the index of its keyword in `entries`.
struct Automaton {
    ac: AhoCorasick,
    ids: Vec<usize>,
}

/// A keyword occurrence in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeywordHit<'k> {
    /// Byte offset of its first byte in the searched text.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// The keyword as written in the table.
    pub keyword: &'k str,
    /// The table entry.
    pub entry: &'k Entry,
}

impl Keywords {
    /// Compile the keyword list. Keywords are trimmed; an empty one, or two that differ only
    /// in ASCII case, are errors: the operator must say which number a keyword means.
    pub(crate) fn build(list: Vec<(String, Entry)>) -> Result<Keywords, RulesError> {
        let mut entries = Vec::with_capacity(list.len());
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(list.len(), crate::tables::FixedState::default());
        for (raw, entry) in list {
            let keyword = raw.trim();
            if keyword.is_empty() {
                return Err(RulesError::BadKey { table: TableName::Keywords, key: raw, reason: "empty keyword" });
            }
            crate::tables::check_tel(TableName::Keywords, keyword, &entry)?;
            if !seen.insert(keyword.to_ascii_lowercase()) {
                return Err(RulesError::Duplicate { table: TableName::Keywords, key: keyword.to_string() });
            }
            entries.push((keyword.to_string(), entry));
        }
        let (word_ids, anywhere_ids): (Vec<usize>, Vec<usize>) =
            (0..entries.len()).partition(|&i| entries[i].0.as_bytes()[0].is_ascii_alphanumeric());
        let mut filter = PrefixFilter::new(word_ids.len());
        let mut first_bytes = 0u128;
        let mut kinds = WordKinds { letters: false, digits: false };
        for &i in &word_ids {
            let keyword = entries[i].0.as_bytes();
            filter.insert(keyword);
            first_bytes |= 1 << (keyword[0] | 0x20);
            kinds.letters |= keyword[0].is_ascii_alphabetic();
            kinds.digits |= keyword[0].is_ascii_digit();
        }
        // Word keywords are only tried at a few positions, so the compact NFA is fast enough
        // there and keeps 100k keywords in a few MiB; the anywhere set is usually small, and
        // the builder picks a DFA for it when it is.
        let word = Automaton::build(&entries, word_ids, StartKind::Anchored, Some(AhoCorasickKind::ContiguousNFA))?;
        let anywhere_max_len = anywhere_ids.iter().map(|&i| entries[i].0.len()).max().unwrap_or(0);
        let anywhere = Automaton::build(&entries, anywhere_ids, StartKind::Both, None)?;
        let letters = (b'a'..=b'z').fold(0u128, |set, b| set | 1 << b);
        let digits = (b'0'..=b'9').fold(0u128, |set, b| set | 1 << b);
        let first_bytes_by_kind = first_bytes == (if kinds.letters { letters } else { 0 }) | (if kinds.digits { digits } else { 0 });
        Ok(Keywords { entries, word, filter, first_bytes, kinds, first_bytes_by_kind, anywhere, anywhere_max_len })
    }

    /// How many keywords there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes held by the automata and the prefix filter (not the keyword strings).
    pub(crate) fn matcher_memory(&self) -> usize {
        let ac = |a: &Option<Automaton>| a.as_ref().map_or(0, |a| a.ac.memory_usage() + a.ids.len() * size_of::<usize>());
        ac(&self.word) + ac(&self.anywhere) + self.filter.bits.len() * size_of::<u64>()
    }

    /// The first keyword occurrence in `text` that stands on its own (module docs).
    pub(crate) fn first<'k>(&'k self, text: &str) -> Option<KeywordHit<'k>> {
        match leftmost(text, None, self)? {
            Leftmost::Keyword(hit) => Some(hit),
            Leftmost::Number(_) => None,
        }
    }

    /// The kinds of first byte a word keyword has: the word starts worth a look.
    pub(crate) fn word_kinds(&self) -> WordKinds {
        self.kinds
    }

    /// The word starts of `block` where a word keyword may start: those long enough for the
    /// shortest one.
    #[inline]
    pub(crate) fn word_starts(&self, block: &Block) -> u64 {
        block.words_at_least(self.filter.shortest_word())
    }

    /// The longest word keyword standing alone at `at`, an ASCII word start of `text`, where
    /// a word `word_len` bytes long starts. Most word starts are turned away by their length,
    /// their first byte or the prefix filter, before the automaton.
    #[inline]
    pub(crate) fn word_at<'k>(&'k self, text: &str, at: usize, word_len: usize) -> Option<KeywordHit<'k>> {
        let first = *text.as_bytes().get(at)?;
        // Word starts are ASCII letters and digits, below 128 after `| 0x20`.
        let bit = u32::from(first | 0x20) & 127;
        if (!self.first_bytes_by_kind && (self.first_bytes >> bit) & 1 == 0) || !self.filter.may_start(text.as_bytes(), at, word_len) {
            return None;
        }
        let word = self.word.as_ref()?;
        word.longest_alone_at(text, at, text.len()).map(|(m, index)| self.hit(m, index))
    }

    /// The first keyword that starts with something other than an ASCII letter or digit and
    /// starts at or before `until`.
    pub(crate) fn first_anywhere<'k>(&'k self, text: &str, until: usize) -> Option<KeywordHit<'k>> {
        let anywhere = self.anywhere.as_ref()?;
        // A match must end by here to start by `until`; the bound keeps the search from
        // reading the rest of a long body.
        let end = text.len().min(until.saturating_add(self.anywhere_max_len));
        let mut from = 0;
        while from <= until {
            let m = anywhere.ac.try_find(Input::new(text).range(from..end)).ok()??;
            if m.start() > until {
                return None;
            }
            if let Some((m, index)) = anywhere.longest_alone_at(text, m.start(), m.end()) {
                return Some(self.hit(m, index));
            }
            from = m.start() + 1;
        }
        None
    }

    fn hit(&self, m: Match, index: usize) -> KeywordHit<'_> {
        let (keyword, entry) = &self.entries[index];
        KeywordHit { start: m.start(), end: m.end(), keyword, entry }
    }
}

impl Automaton {
    fn build(
        entries: &[(String, Entry)],
        ids: Vec<usize>,
        start: StartKind,
        kind: Option<AhoCorasickKind>,
    ) -> Result<Option<Automaton>, RulesError> {
        if ids.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(start)
            .kind(kind)
            .build(ids.iter().map(|&i| entries[i].0.as_bytes()))
            .map_err(|e| RulesError::Matcher(e.to_string()))?;
        Ok(Some(Automaton { ac, ids }))
    }

    /// The longest keyword starting at `at` and ending by `end` that is not glued to its
    /// neighbours. A longer keyword that is glued (`OSAKA-B` in `OSAKA-BX`) makes it look for
    /// a shorter one at the same place (`OSAKA`).
    fn longest_alone_at(&self, text: &str, at: usize, mut end: usize) -> Option<(Match, usize)> {
        let bytes = text.as_bytes();
        while end > at {
            let m = self.ac.try_find(Input::new(text).range(at..end).anchored(Anchored::Yes)).ok()??;
            if !glued(bytes, m.start(), m.end()) {
                return Some((m, self.ids[m.pattern().as_usize()]));
            }
            end = m.end() - 1;
        }
        None
    }
}

/// A Bloom filter of hashed keyword prefixes: a word start whose first bytes are not in it
/// cannot start a keyword, so most word starts cost one memory read instead of an automaton
/// search. Each key sets two bits of one 64-bit word (a "blocked" Bloom filter): one read per
/// probe, and at 12-24 bits per keyword 1-3% of non-matching keys pass (2% for the benchmark's
/// 9,000), from a bitmap small enough (16 KiB for 10k keywords) to stay mostly in the L1 cache
/// while a body streams past it; a one-bit-per-key bitmap as selective was four times larger
/// and missed the L1 cache on about half the probes (cachegrind).
/// Prefixes are the first four bytes (fewer for shorter keywords), ASCII case folded by
/// setting bit 5 of each byte: that also merges a few non-letters with others (`@` and `` ` ``),
/// which only lets a few more positions through to the exact search.
///
/// The key also holds the length of the keyword's leading run of ASCII letters and digits (its
/// first word): the word a keyword starts in the text must be exactly that long, since the
/// keyword's letters and digits match only letters and digits, and what follows them (a
/// non-alnum in the keyword, or the boundary rule) must not be one. A set of those lengths
/// turns away most word starts before the bitmap is read at all.
struct PrefixFilter {
    bits: Vec<u64>,
    /// log2 of the number of bits.
    order: u32,
    /// Bit n set when some keyword's prefix is n bytes long (n = 1..=4).
    lengths: u8,
    /// Bit n set when some keyword's first word is n bytes long (bit 63: 63 or more).
    words: u64,
}

impl PrefixFilter {
    /// Sized for 12 to 24 bits per keyword (a power of two).
    fn new(keywords: usize) -> PrefixFilter {
        let order = (keywords.max(1) * 12).next_power_of_two().trailing_zeros().clamp(10, 26);
        PrefixFilter { bits: vec![0; 1 << (order - 6)], order, lengths: 0, words: 0 }
    }

    /// The word of the bitmap and the two bits in it for the first `n` bytes at `at`
    /// (n = 1..=4) and the length `word` of the word they start, or `None` when fewer than `n`
    /// bytes remain.
    #[inline]
    fn slot(&self, bytes: &[u8], at: usize, n: usize, word: usize) -> Option<(usize, u64)> {
        let mut prefix = [0u8; 4];
        prefix[..n].copy_from_slice(bytes.get(at..at + n)?);
        // Fold case in the `n` real bytes only; the padding stays zero.
        let folded = u32::from_le_bytes(prefix) | (0x2020_2020 >> (8 * (4 - n)));
        let key = u64::from(folded) | ((n as u64) << 32) | ((word.min(63) as u64) << 40);
        let hash = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top bits (at most 20) pick the word, two groups of six below them the bits in it.
        let index = (hash >> (64 - (self.order - 6))) as usize;
        let bits = (1 << ((hash >> 32) & 63)) | (1 << ((hash >> 38) & 63));
        Some((index, bits))
    }

    fn insert(&mut self, keyword: &[u8]) {
        let n = keyword.len().min(4);
        let word = keyword.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        self.lengths |= 1 << n;
        self.words |= 1 << word.min(63);
        if let Some((index, bits)) = self.slot(keyword, 0, n, word) {
            self.bits[index] |= bits;
        }
    }

    #[inline]
    fn hit(&self, bytes: &[u8], at: usize, n: usize, word: usize) -> bool {
        self.slot(bytes, at, n, word).is_some_and(|(index, bits)| self.bits.get(index).is_some_and(|&w| w & bits == bits))
    }

    /// The length of the shortest first word of a keyword (0 with no keywords).
    fn shortest_word(&self) -> usize {
        self.words.trailing_zeros().min(63) as usize
    }

    /// Whether a keyword may start at `at`, where a word of `word` bytes starts.
    #[inline]
    fn may_start(&self, bytes: &[u8], at: usize, word: usize) -> bool {
        if self.words & (1 << word.min(63)) == 0 {
            return false;
        }
        // Keywords of four bytes or more are the common case: one probe.
        if self.lengths & (1 << 4) != 0 && self.hit(bytes, at, 4, word) {
            return true;
        }
        self.lengths & 0b1110 != 0 && (1..4).any(|n| self.lengths & (1 << n) != 0 && self.hit(bytes, at, n, word))
    }
}

/// Whether the match `start..end` in `text` touches an ASCII letter or digit with an edge
/// that is itself an ASCII letter or digit.
fn glued(text: &[u8], start: usize, end: usize) -> bool {
    let alnum = |i: usize| text.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let left = start > 0 && alnum(start) && alnum(start - 1);
    let right = end > start && alnum(end - 1) && alnum(end);
    left || right
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::number::E164;

    fn entry(n: u32) -> Entry {
        Entry { tel: E164(format!("+8150{n:08}")), name: None }
    }

    fn keywords(list: &[&str]) -> Keywords {
        Keywords::build(list.iter().enumerate().map(|(i, k)| (k.to_string(), entry(i as u32))).collect()).unwrap()
    }

    fn first<'k>(k: &'k Keywords, text: &str) -> Option<&'k str> {
        k.first(text).map(|h| h.keyword)
    }

    #[test]
    fn keywords_stand_on_ascii_word_boundaries() {
        let k = keywords(&["KYOTO"]);
        assert_eq!(first(&k, "TOKYOTOWER"), None);
        assert_eq!(first(&k, "KYOTO2"), None);
        assert_eq!(first(&k, "2KYOTO"), None);
        assert_eq!(first(&k, "KYOTO"), Some("KYOTO"));
        assert_eq!(first(&k, "kyoto@branch.example"), Some("KYOTO"));
        assert_eq!(first(&k, "taro.kyoto@x.example"), Some("KYOTO"));
        assert_eq!(first(&k, "the Kyoto office"), Some("KYOTO"));
        assert_eq!(first(&k, "KYOTO支店"), Some("KYOTO"));
        assert_eq!(first(&k, "_kyoto_"), Some("KYOTO"));
    }

    #[test]
    fn case_is_ignored_for_ascii_only() {
        let k = keywords(&["KyotoBranchOffice", "京都支店"]);
        let hit = k.first("fw: KYOTOBRANCHOFFICE").unwrap();
        assert_eq!((hit.keyword, hit.start, hit.end), ("KyotoBranchOffice", 4, 21));
        assert_eq!(first(&k, "宛先: 京都支店の田中様"), Some("京都支店"));
        // Full-width Latin letters are other characters, not another case.
        assert_eq!(first(&k, "ＫＹＯＴＯＢＲＡＮＣＨＯＦＦＩＣＥ"), None);
    }

    #[test]
    fn leftmost_then_longest_that_stands_alone() {
        let k = keywords(&["OSAKA", "OSAKA-B", "KOBE", "KOBE BRANCH"]);
        assert_eq!(first(&k, "to OSAKA-B now"), Some("OSAKA-B"));
        assert_eq!(first(&k, "to OSAKA-BX now"), Some("OSAKA"), "the longer one is glued, the shorter is not");
        assert_eq!(first(&k, "KOBE BRANCH and OSAKA"), Some("KOBE BRANCH"));
        assert_eq!(first(&k, "OSAKA, then KOBE BRANCH"), Some("OSAKA"));
        assert_eq!(first(&k, "XOSAKA, then kobe"), Some("KOBE"));
    }

    #[test]
    fn keywords_that_do_not_start_or_end_with_letters() {
        let k = keywords(&["#42", "[tokyo]"]);
        assert_eq!(first(&k, "room#42"), Some("#42"), "the '#' edge needs no boundary");
        assert_eq!(first(&k, "room#421"), None, "the '2' edge does");
        assert_eq!(first(&k, "x[TOKYO]y"), Some("[tokyo]"));
    }

    /// The matcher this module started with: one overlapping automaton over every byte,
    /// keeping the leftmost, then longest, match that is not glued. Simple and slow; the fast
    /// matcher must agree with it.
    pub(crate) fn reference_first(keywords: &[String], text: &str) -> Option<(usize, usize, String)> {
        let ac = AhoCorasickBuilder::new().ascii_case_insensitive(true).build(keywords).unwrap();
        let mut best: Option<Match> = None;
        for m in ac.find_overlapping_iter(text) {
            if glued(text.as_bytes(), m.start(), m.end()) {
                continue;
            }
            if best.is_none_or(|b| m.start() < b.start() || (m.start() == b.start() && m.len() > b.len())) {
                best = Some(m);
            }
        }
        best.map(|m| (m.start(), m.end(), keywords[m.pattern().as_usize()].clone()))
    }

    #[test]
    fn fast_matcher_agrees_with_the_reference() {
        const PIECES: [&str; 22] = [
            "a", "b", "ab", "Ab", "abc", "ABCD", "abcde", "x", "1", "42", "-", " ", "#", "#4", "京", "京都", "支店", "@", ".", "\n", "é",
            "ｱ",
        ];
        let mut x: u64 = 0xDEAD_BEEF_1234_5678;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut hits = 0;
        for case in 0..3_000 {
            let mut keywords: Vec<String> = Vec::new();
            for _ in 0..1 + rnd(6) {
                let k: String = (0..1 + rnd(3)).map(|_| PIECES[rnd(PIECES.len())]).collect();
                let k = k.trim().to_string();
                if !k.is_empty() && !keywords.iter().any(|o| o.eq_ignore_ascii_case(&k)) {
                    keywords.push(k);
                }
            }
            if keywords.is_empty() {
                continue;
            }
            let text: String = (0..rnd(30)).map(|_| PIECES[rnd(PIECES.len())]).collect();
            let fast = keywords_from(&keywords);
            let got = fast.first(&text).map(|h| (h.start, h.end, h.keyword.to_string()));
            let want = reference_first(&keywords, &text);
            hits += usize::from(want.is_some());
            assert_eq!(got, want, "case {case}: {keywords:?} in {text:?}");
        }
        assert!(hits > 500, "the generator must produce matches, got {hits}");
    }

    pub(crate) fn keywords_from(list: &[String]) -> Keywords {
        Keywords::build(list.iter().enumerate().map(|(i, k)| (k.clone(), entry(i as u32))).collect()).unwrap()
    }

    #[test]
    fn bad_tables_are_refused() {
        let dup = Keywords::build(vec![("Kyoto".into(), entry(1)), (" KYOTO ".into(), entry(2))]);
        assert!(matches!(dup, Err(RulesError::Duplicate { table: TableName::Keywords, .. })));
        let empty = Keywords::build(vec![("  ".into(), entry(1))]);
        assert!(matches!(empty, Err(RulesError::BadKey { .. })));
        let none = Keywords::build(Vec::new()).unwrap();
        assert_eq!(none.first("anything"), None);
    }
}
