//! The keyword table's matcher: every keyword at once over an address, a header or a body.
//!
//! One Aho-Corasick automaton holds all keywords (DESIGN.md: fast with 100k entries, so
//! multi-pattern matching, not a loop over entries). Matching is ASCII case-insensitive:
//! `kyotobranchoffice` matches `KYOTOBRANCHOFFICE`; letters outside ASCII (kana, kanji,
//! full-width Latin) match only exactly as written.
//!
//! **Boundaries.** A keyword must not be glued to other ASCII letters or digits: an edge of the
//! keyword that is an ASCII letter or digit must not touch another ASCII letter or digit in the
//! text, so `KYOTO` does not match inside `TOKYOTOWER` or `KYOTO2`, but does in `kyoto@x`,
//! `taro.kyoto`, `"Kyoto office"` and `KYOTO支店`. Only ASCII counts because Japanese text has
//! no spaces between words: requiring a boundary next to kana or kanji would make keywords
//! useless in the mail they are meant for.
//!
//! **Which match.** The leftmost keyword occurrence that passes the boundary rule wins; of
//! several starting there, the longest. Overlapping search is used so that a longer keyword
//! that fails the boundary rule (`OSAKA-B` in `OSAKA-BX`) does not hide a shorter one that
//! passes (`OSAKA`).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use crate::tables::{Entry, RulesError, TableName};

/// All keywords of the keyword table, compiled.
pub(crate) struct Keywords {
    /// `None` when the table is empty (the builder rejects no patterns, but there is nothing
    /// to search for either).
    matcher: Option<AhoCorasick>,
    /// Keyword as the operator wrote it, and its entry; indexed by the automaton's pattern id.
    entries: Vec<(String, Entry)>,
    /// Length in bytes of the longest keyword, to stop an overlapping search early.
    max_len: usize,
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
        let max_len = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let matcher = if entries.is_empty() {
            None
        } else {
            let built = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                // Overlapping search needs standard semantics; see the module docs.
                .match_kind(MatchKind::Standard)
                // A DFA costs memory at build time but scans a 64 KiB body several times
                // faster than the NFA the builder picks by itself for 10k keywords.
                .kind(Some(AhoCorasickKind::DFA))
                .build(entries.iter().map(|(k, _)| k.as_bytes()));
            let built = match built {
                Ok(ac) => ac,
                // Too many states for a DFA: fall back to the automatic choice.
                Err(_) => AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(entries.iter().map(|(k, _)| k.as_bytes()))
                    .map_err(|e| RulesError::Matcher(e.to_string()))?,
            };
            Some(built)
        };
        Ok(Keywords { matcher, entries, max_len })
    }

    /// How many keywords there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the automaton holds on the heap (the entries are not counted).
    pub(crate) fn matcher_memory(&self) -> usize {
        self.matcher.as_ref().map_or(0, AhoCorasick::memory_usage)
    }

    /// The first keyword occurrence in `text` that stands on its own (module docs).
    pub(crate) fn first<'k>(&'k self, text: &str) -> Option<KeywordHit<'k>> {
        let matcher = self.matcher.as_ref()?;
        let bytes = text.as_bytes();
        let mut best: Option<aho_corasick::Match> = None;
        // Overlapping matches arrive in order of their end offsets, not their starts.
        for m in matcher.find_overlapping_iter(text) {
            if let Some(b) = best
                && m.end() > b.start() + self.max_len
            {
                // Every later match ends at or after m.end(), so it starts after b.start().
                break;
            }
            if glued(bytes, m.start(), m.end()) {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => m.start() < b.start() || (m.start() == b.start() && m.len() > b.len()),
            };
            if better {
                best = Some(m);
            }
        }
        let m = best?;
        let (keyword, entry) = &self.entries[m.pattern().as_usize()];
        Some(KeywordHit { start: m.start(), end: m.end(), keyword, entry })
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
mod tests {
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
