//! Operator control of the routing tables: the address/domain table, the keyword table and the
//! number prefixes (DESIGN.md "Routing rules"). The admin API and the CLI's direct path (no
//! daemon running) both call these functions, so the two check input the same way and give the
//! same answers and the same errors.
//!
//! Invariants:
//! - Every number an operator gives is normalised with the current number plan (the store's
//!   prefixes and the configured country code) and stored in E.164; a number the plan does not
//!   accept is refused with the plan's reason.
//! - Every change is durable ([`Store::flush`]) before these functions return, so "added" means
//!   on disk.
//! - An import checks every line first and reports every bad one; only a file without any bad
//!   line is written, in one transaction ([`Store::import_entries`]).
//!
//! These are synchronous (sled and a flush): the daemon runs them on its blocking pool.

pub mod csv;

use serde::{Deserialize, Serialize};
use sipmta_rules::number::{E164, NumberError, NumberPlan, Prefix};
use sipmta_store::{Imported, Store, StoreError, Table, TableEntry};

/// `POST /routes` and `POST /keywords`: one entry as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// The address, domain or keyword.
    pub key: String,
    /// The number in any form the plan accepts (`050-1234-5678`, `+81 50 1234 5678`, ...).
    pub number: String,
    /// An optional note.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /prefixes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrefix {
    /// The national prefix, e.g. `050`.
    pub digits: String,
    /// Digits that follow it.
    pub length: u8,
}

/// What adding an entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySet {
    /// The entry as stored.
    pub entry: TableEntry,
    /// The entry it replaced, if the key was taken.
    pub replaced: Option<TableEntry>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Keys that were new.
    pub added: usize,
    /// Keys whose entry was replaced.
    pub updated: usize,
}

/// What adding a prefix did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixSet {
    /// The prefix as stored.
    pub prefix: Prefix,
    /// Its length before, if it existed.
    pub previous: Option<u8>,
}

/// What removing a prefix did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixRemoved {
    /// The prefix that was removed.
    pub prefix: Prefix,
    /// Table entries (routes and keywords) whose numbers fall under it: they stay, but numbers
    /// under it can no longer be added.
    pub in_use: usize,
}

/// Why a table operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A number the plan does not accept.
    #[error("{0}")]
    Number(NumberError),
    /// Something the store refused (a bad key, no such entry) or a store failure.
    #[error("{0}")]
    Store(StoreError),
    /// A prefix that makes numbers longer than E.164 allows under the country code.
    #[error("{0}")]
    Prefix(String),
    /// An import with bad lines: nothing was written.
    #[error("{}", import_message(*.table, .lines))]
    Import {
        /// The table imported into.
        table: Table,
        /// Every bad line, in file order.
        lines: Vec<csv::BadLine>,
    },
}

impl From<StoreError> for TableError {
    fn from(e: StoreError) -> Self {
        TableError::Store(e)
    }
}

impl TableError {
    /// The operator's mistake (answered `400` or `404` by the API, with this text), as opposed
    /// to a failure of the store.
    pub fn is_refusal(&self) -> bool {
        match self {
            TableError::Store(e) => matches!(e, StoreError::InvalidEntry { .. } | StoreError::NoSuchEntry { .. }),
            TableError::Number(_) | TableError::Prefix(_) | TableError::Import { .. } => true,
        }
    }
}

fn import_message(table: Table, lines: &[csv::BadLine]) -> String {
    let n = lines.len();
    let mut text = format!("{n} bad line{}, no {} imported:", if n == 1 { "" } else { "s" }, table.noun());
    for l in lines {
        text.push_str(&format!("\n  line {}: {}", l.line, l.reason));
    }
    text
}

type Result<T, E = TableError> = std::result::Result<T, E>;

/// Every entry of a table.
pub fn list(store: &Store, table: Table) -> Result<Vec<TableEntry>> {
    Ok(store.entries(table)?)
}

/// Add an entry, or replace the one with the same key; durable when it returns.
pub fn add(store: &Store, country_code: &str, table: Table, new: &NewEntry) -> Result<EntrySet> {
    // The key first: a bad key is the likelier mistake and says more than a number would.
    table.key(&new.key)?;
    let tel = store.number_plan(country_code)?.normalise(&new.number).map_err(TableError::Number)?;
    let (entry, replaced) = store.set_entry(table, &new.key, tel, new.name.as_deref())?;
    store.flush()?;
    Ok(EntrySet { entry, replaced })
}

/// Remove an entry and return it; durable when it returns.
pub fn remove(store: &Store, table: Table, key: &str) -> Result<TableEntry> {
    let removed = store.remove_entry(table, key)?;
    store.flush()?;
    Ok(removed)
}

/// Import CSV text ([`csv`]): every line is checked, every bad line reported, and only when
/// all are good are the entries written (replacing those with the same keys); durable when it
/// returns. A key given twice in one file is a bad line, since it is not clear which is meant.
pub fn import(store: &Store, country_code: &str, table: Table, text: &[u8]) -> Result<ImportReport> {
    let plan = store.number_plan(country_code)?;
    let (rows, mut bad) = csv::parse(text);
    let mut good = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let mut reasons = Vec::new();
        match table.key(&row.key) {
            Ok(key) => {
                if let Some(first) = seen.insert(key, row.line) {
                    reasons.push(format!("{} {:?} is already on line {first}", table.noun(), row.key.trim()));
                }
            }
            Err(e) => reasons.push(e.to_string()),
        }
        let tel = plan.normalise(&row.number).map_err(|e| reasons.push(e.to_string())).ok();
        if let Err(e) = sipmta_store::routing::check_name(row.name.as_deref()) {
            reasons.push(e.to_string());
        }
        match tel {
            Some(tel) if reasons.is_empty() => good.push((row.key, tel, row.name)),
            _ => bad.push(csv::BadLine { line: row.line, reason: reasons.join("; ") }),
        }
    }
    if !bad.is_empty() {
        bad.sort_by_key(|b| b.line);
        return Err(TableError::Import { table, lines: bad });
    }
    let Imported { added, updated } = store.import_entries(table, good)?;
    store.flush()?;
    Ok(ImportReport { added, updated })
}

/// The table as CSV that [`import`] reads back.
pub fn export(store: &Store, table: Table) -> Result<String> {
    Ok(csv::write(&store.entries(table)?))
}

/// The prefixes, in digit order.
pub fn prefixes(store: &Store) -> Result<Vec<Prefix>> {
    Ok(store.prefixes()?)
}

/// Add a prefix or change its length; durable when it returns. Beyond the store's own checks,
/// the numbers it makes must fit E.164 (15 digits) with the configured country code.
pub fn add_prefix(store: &Store, country_code: &str, digits: &str, length: u8) -> Result<PrefixSet> {
    let ascii = sipmta_store::routing::check_prefix(digits, length)?;
    let total = country_code.len() + ascii.len() - 1 + usize::from(length);
    if total > 15 {
        return Err(TableError::Prefix(format!(
            "{ascii} + {length} digits makes {total}-digit numbers with country code +{country_code}; E.164 allows 15"
        )));
    }
    let previous = store.set_prefix(&ascii, length)?;
    store.flush()?;
    Ok(PrefixSet { prefix: Prefix { digits: ascii, length }, previous })
}

/// Remove a prefix; durable when it returns. Entries with numbers under it are counted so the
/// operator learns they exist; they are kept.
pub fn remove_prefix(store: &Store, country_code: &str, digits: &str) -> Result<PrefixRemoved> {
    let prefix = store.remove_prefix(digits)?;
    store.flush()?;
    let alone = NumberPlan { country_code: country_code.to_owned(), prefixes: vec![prefix.clone()] };
    let mut in_use = 0;
    for table in [Table::Routes, Table::Keywords] {
        in_use += store.entries(table)?.iter().filter(|e| national(&alone, &e.tel).is_some()).count();
    }
    Ok(PrefixRemoved { prefix, in_use })
}

/// The national form of a number under `plan`, grouped for reading (`050-1234-5678`): the
/// prefix, then the digits after it in two halves. `None` when no prefix of the plan matches.
pub fn national(plan: &NumberPlan, tel: &E164) -> Option<String> {
    let subscriber = tel.0.strip_prefix('+')?.strip_prefix(plan.country_code.as_str())?;
    let number = format!("0{subscriber}");
    let prefix = plan
        .prefixes
        .iter()
        .filter(|p| number.len() == p.digits.len() + usize::from(p.length) && number.starts_with(&p.digits))
        .max_by_key(|p| p.digits.len())?;
    let rest = number.get(prefix.digits.len()..)?;
    let (a, b) = rest.split_at(rest.len() / 2);
    Some(if a.is_empty() { format!("{}-{b}", prefix.digits) } else { format!("{}-{a}-{b}", prefix.digits) })
}

/// A table's name in the admin API's paths.
pub fn path(table: Table) -> &'static str {
    match table {
        Table::Routes => "routes",
        Table::Keywords => "keywords",
    }
}

#[cfg(test)]
mod tests;
