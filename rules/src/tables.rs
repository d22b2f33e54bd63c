//! The routing tables in the form `decide` reads them: built once from the store's rows,
//! immutable afterwards, shared between sessions as `Arc<Tables>` by the caller.
//!
//! Keys compare without regard to case: address and domain keys are lowercased (Unicode
//! lowercase, so SMTPUTF8 local parts behave the same as ASCII ones). Keywords match ASCII
//! case-insensitively and must not be glued to other ASCII letters or digits: `KYOTO` matches
//! in `kyoto@x.example` and `KYOTO支店`, not in `TOKYOTOWER` (the private `keywords` module
//! explains why, and how the matcher stays fast).
//!
//! **Address table keys** take three forms, as Postfix's transport(5) table does:
//! - `abc@efg.com`: that address only;
//! - `efg.com`: any address in that domain (not its subdomains);
//! - `.efg.com`: any address in a subdomain of `efg.com` (`tokyo.efg.com`, `a.tokyo.efg.com`),
//!   the most specific such key first. DESIGN.md asks for "its domain"; subdomains match only
//!   when the operator says so with the leading dot, so a domain entry never captures mail
//!   for hosts the operator did not mean.
//!
//! **Duplicates.** Two address-table or keyword-table keys that compare equal are an error:
//! those tables are written by the operator, and a silent choice between two numbers would
//! route mail somewhere nobody decided. The learned table is written by the daemon from mail
//! it saw; there the last row wins, since rows are stored oldest first and a newer number
//! replaces an older one.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, DefaultHasher};

use serde::{Deserialize, Serialize};

use crate::find::{Leftmost, leftmost};
use crate::keywords::{KeywordHit, Keywords};
use crate::number::{E164, NumberPlan};
use crate::{domain_of, normal_domain};

/// The hasher of every table map. Fixed keys rather than `RandomState`: the crate is pure (no
/// randomness), and flooding is not a concern because only the operator and the daemon insert
/// keys; a sender only chooses what is looked up.
pub(crate) type FixedState = BuildHasherDefault<DefaultHasher>;

/// What a table row maps its key to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The IP telephone number, in E.164 form (`+815012345678`).
    pub tel: E164,
    /// An optional label for people (`Kyoto office`), shown in the evidence.
    pub name: Option<String>,
}

/// The tables' rows as the store holds them. See the module docs for key forms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableData {
    /// Number prefixes and the country code.
    pub plan: NumberPlan,
    /// Address table: `abc@efg.com`, `efg.com` or `.efg.com` -> number.
    pub addresses: Vec<(String, Entry)>,
    /// Keyword table: keyword -> number.
    pub keywords: Vec<(String, Entry)>,
    /// Learned table: full address -> number, oldest first.
    pub learned: Vec<(String, Entry)>,
}

/// Which table a row belongs to, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableName {
    /// The address table.
    Addresses,
    /// The keyword table.
    Keywords,
    /// The learned table.
    Learned,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableName::Addresses => "address",
            TableName::Keywords => "keyword",
            TableName::Learned => "learned",
        })
    }
}

/// Why the tables could not be built. The first problem found is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Two keys of an operator table compare equal (module docs).
    #[error("{table} table: {key:?} appears more than once (keys compare without regard to case)")]
    Duplicate {
        /// The table.
        table: TableName,
        /// The key, normalised.
        key: String,
    },
    /// A key that cannot match anything, such as `@efg.com` or an empty keyword.
    #[error("{table} table: {key:?} is not a valid key: {reason}")]
    BadKey {
        /// The table.
        table: TableName,
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The number of a row is not in E.164 form (`+` and 2 to 15 digits, not starting with 0).
    #[error("{table} table: {key:?} maps to {tel:?}, which is not an E.164 number")]
    BadNumber {
        /// The table.
        table: TableName,
        /// The row's key.
        key: String,
        /// The number as given.
        tel: String,
    },
    /// The keyword automaton could not be built (it is too large).
    #[error("keyword table: cannot build the matcher: {0}")]
    Matcher(String),
}

/// The routing tables, ready for [`crate::decide`].
pub struct Tables {
    plan: NumberPlan,
    /// `plan.digit_counts()`, derived once.
    digit_counts: u64,
    addresses: HashMap<String, Entry, FixedState>,
    keywords: Keywords,
    learned: HashMap<String, Entry, FixedState>,
}

impl fmt::Debug for Tables {
    // Counts, not rows: a table has 100k of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tables")
            .field("plan", &self.plan)
            .field("addresses", &self.addresses.len())
            .field("keywords", &self.keywords.len())
            .field("learned", &self.learned.len())
            .finish()
    }
}

/// An address-table row that matched a recipient.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddressHit<'t> {
    /// The key as stored (normalised): `abc@efg.com`, `efg.com` or `.efg.com`.
    pub key: &'t str,
    pub entry: &'t Entry,
}

impl Tables {
    /// Check and index the rows. Costs one pass over them plus building the keyword automaton.
    pub fn build(data: TableData) -> Result<Tables, RulesError> {
        let mut addresses = HashMap::with_capacity_and_hasher(data.addresses.len(), FixedState::default());
        for (raw, entry) in data.addresses {
            let key = address_key(TableName::Addresses, &raw)?;
            check_tel(TableName::Addresses, &key, &entry)?;
            if addresses.contains_key(&key) {
                return Err(RulesError::Duplicate { table: TableName::Addresses, key });
            }
            addresses.insert(key, entry);
        }
        let mut learned = HashMap::with_capacity_and_hasher(data.learned.len(), FixedState::default());
        for (raw, entry) in data.learned {
            let key = address_key(TableName::Learned, &raw)?;
            if !key.contains('@') {
                return Err(RulesError::BadKey { table: TableName::Learned, key: raw, reason: "learned numbers belong to full addresses" });
            }
            check_tel(TableName::Learned, &key, &entry)?;
            learned.insert(key, entry);
        }
        let keywords = Keywords::build(data.keywords)?;
        Ok(Tables { digit_counts: data.plan.digit_counts(), plan: data.plan, addresses, keywords, learned })
    }

    /// The number plan the tables were built with.
    pub fn plan(&self) -> &NumberPlan {
        &self.plan
    }

    /// Rows in the address, keyword and learned tables.
    pub fn len(&self) -> (usize, usize, usize) {
        (self.addresses.len(), self.keywords.len(), self.learned.len())
    }

    /// Whether all three tables are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0, 0)
    }

    /// Heap bytes held by the keyword matcher: its automata (as aho-corasick reports them) and
    /// its prefix bitmap. The maps and strings are not included.
    pub fn keyword_matcher_memory(&self) -> usize {
        self.keywords.matcher_memory()
    }

    /// The address-table row for `address`: the exact address, then its domain, then
    /// `.parent` keys from the most specific up (module docs).
    pub(crate) fn lookup_address(&self, address: &str) -> Option<AddressHit<'_>> {
        let lower = address.to_lowercase();
        let lower = lower.trim_end_matches('.');
        if let Some((key, entry)) = self.addresses.get_key_value(lower) {
            return Some(AddressHit { key, entry });
        }
        let domain = domain_of(lower)?;
        if let Some((key, entry)) = self.addresses.get_key_value(domain) {
            return Some(AddressHit { key, entry });
        }
        // `a.tokyo.efg.com` tries `.tokyo.efg.com`, then `.efg.com`, then `.com`.
        for (dot, _) in domain.match_indices('.') {
            if let Some((key, entry)) = self.addresses.get_key_value(&domain[dot..]) {
                return Some(AddressHit { key, entry });
            }
        }
        None
    }

    /// The learned number for `address`, with the stored key.
    pub(crate) fn lookup_learned(&self, address: &str) -> Option<(&str, &Entry)> {
        let lower = address.to_lowercase();
        self.learned.get_key_value(lower.trim_end_matches('.')).map(|(k, e)| (k.as_str(), e))
    }

    /// The first keyword standing alone in `text`.
    pub(crate) fn first_keyword(&self, text: &str) -> Option<KeywordHit<'_>> {
        self.keywords.first(text)
    }

    /// The leftmost number or keyword in `text`, a number on a tie (rules 5 and 6).
    pub(crate) fn first_in_text(&self, text: &str) -> Option<Leftmost<'_>> {
        leftmost(text, Some((&self.plan, self.digit_counts)), &self.keywords)
    }
}

/// Normalise an address or domain key: trimmed, lowercased, no trailing root dot; refuse
/// forms that can never match a recipient.
fn address_key(table: TableName, raw: &str) -> Result<String, RulesError> {
    let bad = |reason| RulesError::BadKey { table, key: raw.to_string(), reason };
    let key = raw.trim().to_lowercase();
    let key = key.trim_end_matches('.');
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(bad("keys contain no spaces"));
    }
    match key.rsplit_once('@') {
        Some(("", _)) => return Err(bad("an address needs a local part (write the bare domain for a whole domain)")),
        Some((_, "")) => return Err(bad("an address needs a domain")),
        Some((_, domain)) if domain.starts_with('.') => return Err(bad("an address's domain cannot start with a dot")),
        Some(_) => {}
        None if key == "." || key.starts_with("..") => return Err(bad("a subdomain key is a dot and a domain, like .efg.com")),
        None => {}
    }
    Ok(normal_domain_of_key(key))
}

/// The key with its domain in normal form (the local part is already lowercase).
fn normal_domain_of_key(key: &str) -> String {
    match key.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", normal_domain(domain)),
        None => key.to_string(),
    }
}

/// Refuse a row whose number is not E.164: `Route::Fast { tel }` is dialled as it is.
pub(crate) fn check_tel(table: TableName, key: &str, entry: &Entry) -> Result<(), RulesError> {
    let digits = entry.tel.0.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if ok { Ok(()) } else { Err(RulesError::BadNumber { table, key: key.to_string(), tel: entry.tel.0.clone() }) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(tel: &str) -> Entry {
        Entry { tel: E164(tel.into()), name: None }
    }

    fn tables(addresses: &[(&str, &str)]) -> Result<Tables, RulesError> {
        Tables::build(TableData { addresses: addresses.iter().map(|(k, t)| (k.to_string(), entry(t))).collect(), ..TableData::default() })
    }

    fn hit(t: &Tables, address: &str) -> Option<String> {
        t.lookup_address(address).map(|h| h.key.to_string())
    }

    #[test]
    fn exact_address_then_domain_then_subdomain_keys() {
        let t = tables(&[
            ("Abc@Efg.com", "+815011110000"),
            ("efg.com", "+815022220000"),
            (".efg.com", "+815033330000"),
            (".tokyo.efg.com", "+815044440000"),
        ])
        .unwrap();
        assert_eq!(hit(&t, "ABC@efg.COM"), Some("abc@efg.com".into()));
        assert_eq!(hit(&t, "zzz@EFG.com."), Some("efg.com".into()));
        assert_eq!(hit(&t, "zzz@osaka.efg.com"), Some(".efg.com".into()));
        assert_eq!(hit(&t, "zzz@a.tokyo.efg.com"), Some(".tokyo.efg.com".into()), "the most specific parent first");
        assert_eq!(hit(&t, "zzz@tokyo.efg.com"), Some(".efg.com".into()), ".tokyo.efg.com covers only its subdomains");
        assert_eq!(hit(&t, "zzz@xefg.com"), None);
        assert_eq!(hit(&t, "postmaster"), None);
    }

    #[test]
    fn domain_keys_do_not_cover_subdomains() {
        let t = tables(&[("efg.com", "+815022220000")]).unwrap();
        assert_eq!(hit(&t, "a@tokyo.efg.com"), None);
    }

    #[test]
    fn bad_rows_are_refused() {
        let dup = tables(&[("efg.com", "+815022220000"), ("EFG.com.", "+815011110000")]);
        assert_eq!(dup.unwrap_err(), RulesError::Duplicate { table: TableName::Addresses, key: "efg.com".into() });
        for key in ["", "@efg.com", "abc@", "a b@c.com", ".", "..efg.com", "a@.efg.com"] {
            assert!(matches!(tables(&[(key, "+815022220000")]), Err(RulesError::BadKey { .. })), "{key:?}");
        }
        for tel in ["05012345678", "+", "+0501234", "+81-50-1234", "+8150123456789012"] {
            assert!(matches!(tables(&[("efg.com", tel)]), Err(RulesError::BadNumber { .. })), "{tel:?}");
        }
        let message = tables(&[("@efg.com", "+815022220000")]).unwrap_err().to_string();
        assert!(message.starts_with("address table: \"@efg.com\" is not a valid key"), "{message}");
    }

    #[test]
    fn learned_rows_are_addresses_and_the_last_wins() {
        let t = Tables::build(TableData {
            learned: vec![("taro@efg.com".into(), entry("+815011110000")), ("Taro@EFG.com".into(), entry("+815099990000"))],
            ..TableData::default()
        })
        .unwrap();
        assert_eq!(t.lookup_learned("TARO@efg.com").unwrap().1.tel.0, "+815099990000");
        assert_eq!(t.len(), (0, 0, 1));
        let domain = Tables::build(TableData { learned: vec![("efg.com".into(), entry("+815011110000"))], ..TableData::default() });
        assert!(matches!(domain, Err(RulesError::BadKey { table: TableName::Learned, .. })));
    }
}
