//! Where admin commands act. sled lets one process hold the store, so while the daemon runs
//! the commands go through its admin API ([`Backend::Api`]); otherwise they open the store
//! themselves ([`Backend::Store`]). Both give the commands the same values and the same error
//! messages (the daemon answers with the store's own words), so output does not depend on
//! which one was used.

use anyhow::{Context, Result, anyhow};
use sipmta_rules::number::Prefix;
use sipmta_store::{Envelope, QueueId, Store, StoreError, Table, TableEntry};

use crate::admin::client::Client;
use crate::admin::{QueueEntry, UserInfo};
use crate::config::Config;
use crate::queue_control::{self, Change, HistoryEntry, HistoryFilter};
use crate::tables::{self, EntrySet, ImportReport, NewEntry, PrefixRemoved, PrefixSet};

/// The store, reached through the running daemon or directly.
#[derive(Debug)]
pub enum Backend {
    /// A daemon runs and its admin API answered a connect.
    Api(Client),
    /// No daemon: the store opened by this process.
    Store(Store),
}

impl Backend {
    /// The API when the daemon publishes one that accepts a connection, else the store.
    pub fn open(config: &Config) -> Result<Backend> {
        let found = Client::discover(&config.data_dir)
            .with_context(|| format!("looking for a running daemon's admin API in {}", config.data_dir.display()))?;
        match found {
            Some(client) => Ok(Backend::Api(client)),
            None => open_store(config).map(Backend::Store),
        }
    }

    /// Add a user; durable when it returns.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        match self {
            Backend::Api(c) => c.add_user(name, password).map(drop).map_err(Into::into),
            Backend::Store(s) => durably(s, s.add_user(name, password)),
        }
    }

    /// Remove a user; durable when it returns.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        match self {
            Backend::Api(c) => c.remove_user(name).map_err(Into::into),
            Backend::Store(s) => durably(s, s.remove_user(name)),
        }
    }

    /// Change a user's password; durable when it returns.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        match self {
            Backend::Api(c) => c.set_password(name, password).map_err(Into::into),
            Backend::Store(s) => durably(s, s.set_password(name, password)),
        }
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        match self {
            Backend::Api(c) => Ok(c.users()?),
            Backend::Store(s) => Ok(s.users()?.into_iter().map(|u| UserInfo { name: u.name, created: u.created }).collect()),
        }
    }

    /// Whether a user exists (asked before prompting for a new password).
    pub fn user_exists(&self, name: &str) -> Result<bool> {
        match self {
            Backend::Api(_) => {
                // The API has no single-user read; the list is small and never holds hashes.
                let key = sipmta_store::normalise_name(name)?;
                Ok(self.users()?.iter().any(|u| u.name == key))
            }
            Backend::Store(s) => Ok(s.user(name)?.is_some()),
        }
    }

    /// Every queued envelope in id order.
    pub fn queue(&self) -> Result<Vec<Envelope>> {
        match self {
            Backend::Api(c) => Ok(c.queue()?),
            Backend::Store(s) => Ok(s.queue().collect::<Result<Vec<_>, _>>()?),
        }
    }

    /// A message's envelope (while queued) and history; `None` if neither exists.
    pub fn message(&self, id: QueueId) -> Result<Option<QueueEntry>> {
        match self {
            Backend::Api(c) => Ok(c.message(id)?),
            Backend::Store(s) => {
                let entry = QueueEntry { envelope: s.envelope(id)?, history: s.history(id)? };
                Ok((entry.envelope.is_some() || !entry.history.is_empty()).then_some(entry))
            }
        }
    }
}

impl Backend {
    /// Make pending recipients of `id`, or of every message, due at once.
    pub fn flush(&self, id: Option<QueueId>) -> Result<Change> {
        match self {
            Backend::Api(c) => Ok(c.flush(id)?),
            Backend::Store(s) => on_runtime(queue_control::flush(s, id)),
        }
    }

    /// Put the pending recipients of `id` on hold.
    pub fn hold(&self, id: QueueId) -> Result<Change> {
        match self {
            Backend::Api(c) => Ok(c.hold(id)?),
            Backend::Store(s) => on_runtime(queue_control::hold(s, id)),
        }
    }

    /// Release the held recipients of `id`.
    pub fn release(&self, id: QueueId) -> Result<Change> {
        match self {
            Backend::Api(c) => Ok(c.release(id)?),
            Backend::Store(s) => on_runtime(queue_control::release(s, id)),
        }
    }

    /// Remove `id` from the spool without a DSN.
    pub fn delete(&self, id: QueueId) -> Result<Change> {
        match self {
            Backend::Api(c) => Ok(c.delete(id)?),
            Backend::Store(s) => on_runtime(queue_control::delete(s, id)),
        }
    }

    /// History events across all messages, oldest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>> {
        match self {
            Backend::Api(c) => Ok(c.history(filter)?),
            Backend::Store(s) => Ok(queue_control::history(s, filter)?),
        }
    }
}

/// The routing tables. `country_code` completes the number plan when this process opens the
/// store itself; a running daemon checks numbers with its own configuration.
impl Backend {
    /// Every entry of a table.
    pub fn entries(&self, table: Table) -> Result<Vec<TableEntry>> {
        match self {
            Backend::Api(c) => Ok(c.entries(table)?),
            Backend::Store(s) => Ok(tables::list(s, table)?),
        }
    }

    /// Add or replace an entry; durable when it returns.
    pub fn add_entry(&self, country_code: &str, table: Table, entry: &NewEntry) -> Result<EntrySet> {
        match self {
            Backend::Api(c) => Ok(c.add_entry(table, entry)?),
            Backend::Store(s) => Ok(tables::add(s, country_code, table, entry)?),
        }
    }

    /// Remove an entry and return it; durable when it returns.
    pub fn remove_entry(&self, table: Table, key: &str) -> Result<TableEntry> {
        match self {
            Backend::Api(c) => Ok(c.remove_entry(table, key)?),
            Backend::Store(s) => Ok(tables::remove(s, table, key)?),
        }
    }

    /// Import CSV text, all or nothing; durable when it returns.
    pub fn import(&self, country_code: &str, table: Table, csv: &[u8]) -> Result<ImportReport> {
        match self {
            Backend::Api(c) => Ok(c.import(table, csv)?),
            Backend::Store(s) => Ok(tables::import(s, country_code, table, csv)?),
        }
    }

    /// Why `rcpt` would go where it goes: through the daemon's live tables when it runs,
    /// otherwise with the store's tables.
    pub fn explain(&self, config: &Config, rcpt: &str, message: Option<&[u8]>) -> Result<crate::routing::Explanation> {
        match self {
            Backend::Api(c) => Ok(c.explain(rcpt, message)?),
            Backend::Store(s) => crate::routing::explain_from_store(config, s, rcpt, message),
        }
    }

    /// The learned table, with expiry times from `config`.
    pub fn learned(&self, config: &Config) -> Result<Vec<crate::admin::server::LearnedRow>> {
        match self {
            Backend::Api(c) => Ok(c.learned()?),
            Backend::Store(s) => Ok(crate::admin::server::learned_rows(s, config)?),
        }
    }

    /// Forget a learned number; an error when there is none for `address`.
    pub fn forget(&self, address: &str) -> Result<()> {
        match self {
            Backend::Api(c) => Ok(c.forget(address)?),
            Backend::Store(s) => {
                let removed = s.forget(address)?;
                s.flush()?;
                if removed { Ok(()) } else { Err(anyhow!("no learned number for {address}")) }
            }
        }
    }

    /// The protocol table.
    pub fn protocols(&self) -> Result<Vec<crate::admin::server::ProtocolRow>> {
        match self {
            Backend::Api(c) => Ok(c.protocols()?),
            Backend::Store(s) => {
                Ok(s.protocols()?.into_iter().map(|(number, entry)| crate::admin::server::ProtocolRow { number, entry }).collect())
            }
        }
    }

    /// Remove a number from the protocol table; an error when it is not there.
    pub fn remove_protocol(&self, number: &str) -> Result<()> {
        match self {
            Backend::Api(c) => Ok(c.remove_protocol(number)?),
            Backend::Store(s) => {
                let removed = s.remove_protocol(number)?;
                s.flush()?;
                if removed { Ok(()) } else { Err(anyhow!("no protocol table entry for {number}")) }
            }
        }
    }

    /// The table as CSV.
    pub fn export(&self, table: Table) -> Result<String> {
        match self {
            Backend::Api(c) => Ok(c.export(table)?),
            Backend::Store(s) => Ok(tables::export(s, table)?),
        }
    }

    /// The number prefixes.
    pub fn prefixes(&self) -> Result<Vec<Prefix>> {
        match self {
            Backend::Api(c) => Ok(c.prefixes()?),
            Backend::Store(s) => Ok(tables::prefixes(s)?),
        }
    }

    /// Add a prefix or change its length; durable when it returns.
    pub fn add_prefix(&self, country_code: &str, digits: &str, length: u8) -> Result<PrefixSet> {
        match self {
            Backend::Api(c) => Ok(c.add_prefix(digits, length)?),
            Backend::Store(s) => Ok(tables::add_prefix(s, country_code, digits, length)?),
        }
    }

    /// Remove a prefix; durable when it returns.
    pub fn remove_prefix(&self, country_code: &str, digits: &str) -> Result<PrefixRemoved> {
        match self {
            Backend::Api(c) => Ok(c.remove_prefix(digits)?),
            Backend::Store(s) => Ok(tables::remove_prefix(s, country_code, digits)?),
        }
    }
}

/// Run one of the store's async operations from the synchronous CLI. They need a runtime only
/// for their blocking-pool calls and group commit, so a small one per call will do.
fn on_runtime<T>(operation: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(runtime.block_on(operation)?)
}

/// The store's user calls are not flushed by themselves (see its durability contract); the CLI
/// flushes before saying "added", as the daemon does before answering.
fn durably(store: &Store, result: Result<(), StoreError>) -> Result<()> {
    result?;
    store.flush()?;
    Ok(())
}

/// Open the store for an admin command, with a clear message when the daemon holds it.
pub fn open_store(config: &Config) -> Result<Store> {
    match Store::open(&config.data_dir) {
        Ok((store, _)) => Ok(store),
        Err(StoreError::Locked(path)) => Err(anyhow!(
            "the store {} is held by a running `sipmta serve` whose admin API is not reachable (is admin.listen empty?); \
             stop the daemon (SIGTERM) or enable its admin API, and run this again",
            path.display()
        )),
        Err(e) => Err(anyhow!(e).context(format!("opening the store in {}", config.data_dir.display()))),
    }
}

#[cfg(test)]
mod tests;
