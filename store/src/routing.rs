//! The routing tables (DESIGN.md "Routing rules"): the address/domain table, the keyword table,
//! the number prefixes and the learned numbers, each in its own sled tree.
//!
//! | tree        | key                                  | value (JSON)                          |
//! |-------------|--------------------------------------|---------------------------------------|
//! | `routes`    | lower-case address or domain         | [`TableEntry`]                        |
//! | `keywords`  | the keyword case-folded              | [`TableEntry`] (`key` as given)       |
//! | `prefixes`  | national prefix digits (`050`)       | digits that follow, a JSON number     |
//! | `learned`   | lower-case address                   | [`Learned`]                           |
//!
//! Invariants: every key was checked by [`route_key`], [`keyword_key`] or [`check_prefix`]
//! before it was written, so readers can trust them; numbers are stored in E.164 only (the
//! caller normalises them with the [`NumberPlan`] of [`Store::number_plan`], since the
//! country code is configuration, not data). Keywords are unique without regard to case: the
//! tree is keyed by the folded form, and the entry keeps the spelling the operator gave.
//!
//! Prefixes: a store whose prefix tree was never written holds the defaults of
//! [`NumberPlan::default`] (050 and 080, 8 digits). They are written once, when the store is
//! first opened, together with a marker in the `meta` tree, so removing a default sticks
//! instead of coming back at the next start.
//!
//! Durability: like the user calls, these writes are not flushed by themselves (see the crate's
//! contract); whoever reports a change to the operator calls [`Store::flush`] first. An import
//! is one sled transaction: it is applied whole or not at all.

use serde::{Deserialize, Serialize};
use sipmta_rules::number::{E164, NumberPlan, Prefix};
use sled::transaction::{TransactionError, Transactional};

use crate::error::StoreError;
use crate::types::now;
use crate::{Result, Store};

pub(crate) const ROUTES: &str = "routes";
pub(crate) const KEYWORDS: &str = "keywords";
pub(crate) const PREFIXES: &str = "prefixes";
pub(crate) const LEARNED: &str = "learned";
pub(crate) const META: &str = "meta";
/// Present in `meta` once the default prefixes were written.
const PREFIXES_SEEDED: &[u8] = b"prefixes-seeded";

/// Longest keyword, and longest name, in characters.
pub const MAX_TEXT: usize = 256;

/// One entry of the address/domain table or of the keyword table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The address or domain (lower case), or the keyword as the operator spelled it.
    pub key: String,
    /// The IP telephone number in E.164 form.
    pub tel: E164,
    /// A note for the operator ("Kyoto branch office").
    #[serde(default)]
    pub name: Option<String>,
    /// When the entry was added or last replaced (Unix seconds).
    pub added: u64,
}

/// A number learned from mail that carried its sender's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// The number in E.164 form.
    pub tel: E164,
    /// When it was learned (Unix seconds).
    pub at: u64,
    /// What it was learned from, in words for the operator.
    pub evidence: String,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// Keys that were not in the table before.
    pub added: usize,
    /// Keys whose entry was replaced.
    pub updated: usize,
}

/// The two tables that map a key to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// Address or domain -> number.
    Routes,
    /// Keyword -> number.
    Keywords,
}

impl Table {
    /// The singular noun the operator reads ("route", "keyword").
    pub fn noun(self) -> &'static str {
        match self {
            Table::Routes => "route",
            Table::Keywords => "keyword",
        }
    }

    /// The key as stored: [`route_key`] or [`keyword_key`].
    pub fn key(self, key: &str) -> Result<String> {
        match self {
            Table::Routes => route_key(key),
            Table::Keywords => keyword_key(key),
        }
    }

    /// The key as the entry keeps it: lower case for routes, as given (trimmed) for keywords.
    pub fn display_key(self, key: &str) -> Result<String> {
        match self {
            Table::Routes => route_key(key),
            Table::Keywords => check_keyword(key).map(str::to_owned),
        }
    }

    fn tree(self, store: &Store) -> &sled::Tree {
        match self {
            Table::Routes => &store.inner.routes,
            Table::Keywords => &store.inner.keywords,
        }
    }

    fn tree_name(self) -> &'static str {
        match self {
            Table::Routes => ROUTES,
            Table::Keywords => KEYWORDS,
        }
    }
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidEntry { what, value: value.to_owned(), reason: reason.into() }
}

/// Check an address (`abc@efg.com`), a domain (`efg.com`) or a parent domain (`.efg.com`: its
/// subdomains, as in Postfix's transport(5) and the rules crate's tables) and return it in
/// lower case without a trailing dot, the form the address table is keyed by. An address needs
/// a local part and a valid domain.
pub fn route_key(key: &str) -> Result<String> {
    let key = key.trim();
    let Some((local, domain)) = key.rsplit_once('@') else {
        let (dot, domain) = key.strip_prefix('.').map_or(("", key), |rest| (".", rest));
        check_domain(domain).map_err(|reason| invalid("domain", key, reason))?;
        return Ok(format!("{dot}{}", normalise_domain(domain)));
    };
    let bad = |reason: &str| invalid("address", key, reason);
    if local.is_empty() {
        return Err(bad("the local part before the @ is empty"));
    }
    // RFC 5321 §4.5.3.1.1.
    if local.len() > 64 {
        return Err(bad("the local part is longer than 64 octets"));
    }
    if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains spaces or control characters"));
    }
    if key.starts_with('<') || key.ends_with('>') {
        return Err(bad("write it without angle brackets"));
    }
    check_domain(domain).map_err(|reason| bad(&format!("the domain {reason}")))?;
    Ok(format!("{}@{}", local.to_lowercase(), normalise_domain(domain)))
}

fn normalise_domain(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

/// Why `domain` is not a domain name (RFC 1035 §2.3.1 letters, digits and hyphens; `_` and
/// non-ASCII labels are allowed too, as internal names and IDNs use them), or `Ok`.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() {
        return Err("is empty".into());
    }
    if d.len() > 253 {
        return Err("is longer than 253 octets".into());
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("has a label longer than 63 octets ({label:?})"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("has a label that starts or ends with a hyphen ({label:?})"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("contains {c:?}, which is not allowed in a domain name"));
        }
    }
    Ok(())
}

/// Check a keyword and return it trimmed: not empty, no control characters, at most
/// [`MAX_TEXT`] characters.
pub fn check_keyword(keyword: &str) -> Result<&str> {
    let k = keyword.trim();
    let bad = |reason: &str| invalid("keyword", keyword, reason);
    if k.is_empty() {
        return Err(bad("it is empty"));
    }
    if k.chars().count() > MAX_TEXT {
        return Err(bad("it is longer than 256 characters"));
    }
    if k.chars().any(char::is_control) {
        return Err(bad("it contains control characters"));
    }
    Ok(k)
}

/// The key a keyword is stored under: checked, trimmed and case-folded (Unicode lower case), so
/// `KyotoBranch` and `KYOTOBRANCH` are one entry.
pub fn keyword_key(keyword: &str) -> Result<String> {
    check_keyword(keyword).map(str::to_lowercase)
}

/// Check an entry's name: trimmed, at most [`MAX_TEXT`] characters, no control characters; an
/// empty name is no name.
pub fn check_name(name: Option<&str>) -> Result<Option<String>> {
    let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if n.chars().count() > MAX_TEXT {
        return Err(invalid("name", n, "it is longer than 256 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(invalid("name", n, "it contains control characters"));
    }
    Ok(Some(n.to_owned()))
}

/// Check a prefix and return its digits in ASCII (full-width digits are accepted): 2 to 8
/// digits starting with the trunk prefix 0 (numbers in `+` form are matched by putting the 0
/// back), followed by 1 to 14 digits (E.164 numbers have at most 15 digits, one of them at
/// least is the country code).
pub fn check_prefix(digits: &str, length: u8) -> Result<String> {
    let given = digits.trim();
    let ascii = ascii_digits(given);
    let bad = |reason: &str| invalid("prefix", given, reason);
    if ascii.is_empty() || !ascii.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("a prefix is digits only, e.g. 050"));
    }
    if !ascii.starts_with('0') {
        return Err(bad("a national prefix starts with the trunk prefix 0, e.g. 050"));
    }
    if !(2..=8).contains(&ascii.len()) {
        return Err(bad("a prefix has 2 to 8 digits"));
    }
    if !(1..=14).contains(&length) || ascii.len() - 1 + usize::from(length) > 14 {
        return Err(invalid("prefix length", &length.to_string(), format!("{ascii} + {length} digits is not a possible E.164 number")));
    }
    Ok(ascii)
}

/// Full-width digits (`０５０`) as ASCII; everything else unchanged.
fn ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            c => c,
        })
        .collect()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our own plain structs always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Store {
    /// Write the default prefixes the first time the store is opened (see the module doc).
    pub(crate) fn seed_prefixes(&self) -> Result<()> {
        if self.inner.meta.contains_key(PREFIXES_SEEDED)? {
            return Ok(());
        }
        let defaults = NumberPlan::default().prefixes;
        let result: Result<(), TransactionError<StoreError>> = (&self.inner.prefixes, &self.inner.meta).transaction(|(prefixes, meta)| {
            for p in &defaults {
                prefixes.insert(p.digits.as_bytes(), encode(&p.length))?;
            }
            meta.insert(PREFIXES_SEEDED, encode(&now()))?;
            Ok(())
        });
        result.map_err(transaction_error)
    }

    /// Every entry of a table, in key order (addresses and domains, or folded keywords).
    pub fn entries(&self, table: Table) -> Result<Vec<TableEntry>> {
        table.tree(self).iter().map(|item| item.map_err(StoreError::from).and_then(|(k, v)| decode(table.tree_name(), &k, &v))).collect()
    }

    /// The entry for `key` (checked and normalised as [`Table::key`] does).
    pub fn entry(&self, table: Table, key: &str) -> Result<Option<TableEntry>> {
        let key = table.key(key)?;
        match table.tree(self).get(key.as_bytes())? {
            Some(v) => decode(table.tree_name(), key.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Add or replace the entry for `key`; returns the entry as stored and the one it
    /// replaced. Not flushed.
    pub fn set_entry(&self, table: Table, key: &str, tel: E164, name: Option<&str>) -> Result<(TableEntry, Option<TableEntry>)> {
        let stored = table.key(key)?;
        let entry = TableEntry { key: table.display_key(key)?, tel, name: check_name(name)?, added: now() };
        let replaced = match table.tree(self).insert(stored.as_bytes(), encode(&entry))? {
            Some(old) => Some(decode(table.tree_name(), stored.as_bytes(), &old)?),
            None => None,
        };
        self.tables_changed();
        Ok((entry, replaced))
    }

    /// Remove the entry for `key` and return it; [`StoreError::NoSuchEntry`] if there is none.
    /// Not flushed.
    pub fn remove_entry(&self, table: Table, key: &str) -> Result<TableEntry> {
        let stored = table.key(key)?;
        match table.tree(self).remove(stored.as_bytes())? {
            Some(old) => {
                self.tables_changed();
                decode(table.tree_name(), stored.as_bytes(), &old)
            }
            None => Err(StoreError::NoSuchEntry { table: table.noun(), key: table.display_key(key)? }),
        }
    }

    /// Add or replace many entries at once, all or nothing: every key and name is checked
    /// before anything is written, then one transaction writes them. A key given twice keeps
    /// its last entry. Not flushed.
    pub fn import_entries(&self, table: Table, entries: Vec<(String, E164, Option<String>)>) -> Result<Imported> {
        let added = now();
        let mut records = Vec::with_capacity(entries.len());
        for (key, tel, name) in entries {
            let entry = TableEntry { key: table.display_key(&key)?, tel, name: check_name(name.as_deref())?, added };
            records.push((table.key(&key)?, encode(&entry)));
        }
        let result: Result<Imported, TransactionError<StoreError>> = table.tree(self).transaction(|tree| {
            let mut counts = Imported::default();
            let mut seen = std::collections::HashSet::new();
            for (key, value) in &records {
                let before = tree.insert(key.as_bytes(), value.as_slice())?;
                // A repeated key was inserted by this transaction a moment ago: not an update.
                if !seen.insert(key.as_str()) {
                    continue;
                }
                if before.is_some() {
                    counts.updated += 1;
                } else {
                    counts.added += 1;
                }
            }
            Ok(counts)
        });
        self.tables_changed();
        result.map_err(transaction_error)
    }

    /// The prefixes, in digit order.
    pub fn prefixes(&self) -> Result<Vec<Prefix>> {
        self.inner
            .prefixes
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok(Prefix { digits: String::from_utf8_lossy(&k).into_owned(), length: decode(PREFIXES, &k, &v)? })
            })
            .collect()
    }

    /// Add a prefix or change its length ([`check_prefix`]); returns the length it had. Not
    /// flushed.
    pub fn set_prefix(&self, digits: &str, length: u8) -> Result<Option<u8>> {
        let digits = check_prefix(digits, length)?;
        let previous = self.inner.prefixes.insert(digits.as_bytes(), encode(&length))?;
        self.tables_changed();
        match previous {
            Some(old) => decode(PREFIXES, digits.as_bytes(), &old).map(Some),
            None => Ok(None),
        }
    }

    /// Remove a prefix and return it; [`StoreError::NoSuchEntry`] if there is none. Not
    /// flushed.
    pub fn remove_prefix(&self, digits: &str) -> Result<Prefix> {
        let key = ascii_digits(digits.trim());
        match self.inner.prefixes.remove(key.as_bytes())? {
            Some(old) => {
                self.tables_changed();
                Ok(Prefix { length: decode(PREFIXES, key.as_bytes(), &old)?, digits: key })
            }
            None => Err(StoreError::NoSuchEntry { table: "prefix", key }),
        }
    }

    /// The number plan made of the stored prefixes and the configured `country_code`.
    pub fn number_plan(&self, country_code: &str) -> Result<NumberPlan> {
        Ok(NumberPlan { country_code: country_code.to_owned(), prefixes: self.prefixes()? })
    }

    /// Every learned number by address, in address order.
    pub fn learned(&self) -> Result<Vec<(String, Learned)>> {
        self.inner
            .learned
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode(LEARNED, &k, &v)?))
            })
            .collect()
    }

    /// Remember `address`'s number, replacing what was learned before. Not flushed.
    pub fn learn(&self, address: &str, tel: E164, evidence: &str) -> Result<()> {
        let key = route_key(address)?;
        if !key.contains('@') {
            return Err(invalid("address", address, "a learned number belongs to an address, not a domain"));
        }
        self.inner.learned.insert(key.as_bytes(), encode(&Learned { tel, at: now(), evidence: evidence.to_owned() }))?;
        self.tables_changed();
        Ok(())
    }

    /// The learned number for `address` (any case), if there is one.
    pub fn learned_entry(&self, address: &str) -> Result<Option<Learned>> {
        let key = route_key(address)?;
        self.inner.learned.get(key.as_bytes())?.map(|v| decode(LEARNED, key.as_bytes(), &v)).transpose()
    }

    /// Forget every learned number learned before `cutoff` (Unix seconds); the addresses
    /// forgotten. An entry learned again meanwhile is kept (compare-and-swap). Not flushed.
    pub fn expire_learned(&self, cutoff: u64) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for item in self.inner.learned.iter() {
            let (k, v) = item?;
            let entry: Learned = decode(LEARNED, &k, &v)?;
            if entry.at < cutoff && self.inner.learned.compare_and_swap(&k, Some(&v), None::<&[u8]>)?.is_ok() {
                gone.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        if !gone.is_empty() {
            self.tables_changed();
        }
        Ok(gone)
    }

    /// Forget `address`'s learned number; whether there was one. Not flushed.
    pub fn forget(&self, address: &str) -> Result<bool> {
        let removed = self.inner.learned.remove(route_key(address)?.as_bytes())?.is_some();
        self.tables_changed();
        Ok(removed)
    }

    /// A number that changes whenever a routing table changes in this process, so the daemon
    /// knows when to rebuild its copy of the tables.
    pub fn tables_generation(&self) -> u64 {
        self.inner.tables_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn tables_changed(&self) {
        self.inner.tables_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn transaction_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

#[cfg(test)]
mod tests;
