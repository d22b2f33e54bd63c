//! Where admin commands act. sled lets one process hold the store, so while the daemon runs
//! the commands go through its admin API ([`Backend::Api`]); otherwise they open the store
//! themselves ([`Backend::Store`]). Both give the commands the same values and the same error
//! messages (the daemon answers with the store's own words), so output does not depend on
//! which one was used.

use anyhow::{Context, Result, anyhow};
use sipmta_store::{Envelope, QueueId, Store, StoreError};

use crate::admin::client::Client;
use crate::admin::{QueueEntry, UserInfo};
use crate::config::Config;

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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::admin::tests::{blocking, relay_envelope};
    use crate::cli::queue::{self, QueueCommand};
    use crate::cli::user::{self, UserCommand};
    use crate::testutil::start;

    enum Cmd {
        User(UserCommand),
        Queue(QueueCommand),
    }

    /// Run commands as the CLI would, collecting what each prints or the error it reports.
    /// The script leaves users as it found them, so it can run twice on one data directory.
    fn script(backend: &Backend, id: QueueId, gone: QueueId) -> Vec<String> {
        let name = || "Carol@Example.com".to_string();
        let commands = vec![
            Cmd::User(UserCommand::List),
            Cmd::User(UserCommand::Add { name: name() }),
            Cmd::User(UserCommand::Add { name: name() }),
            Cmd::User(UserCommand::Add { name: "bad name".into() }),
            Cmd::User(UserCommand::List),
            Cmd::User(UserCommand::Passwd { name: name() }),
            Cmd::User(UserCommand::Passwd { name: "nobody@example.com".into() }),
            Cmd::User(UserCommand::Rm { name: name() }),
            Cmd::User(UserCommand::Rm { name: name() }),
            Cmd::Queue(QueueCommand::List),
            Cmd::Queue(QueueCommand::Show { id: id.to_string() }),
            Cmd::Queue(QueueCommand::Show { id: gone.to_string() }),
            Cmd::Queue(QueueCommand::Show { id: "00000000000000FF".into() }),
            Cmd::Queue(QueueCommand::Show { id: "xyz".into() }),
        ];
        commands
            .into_iter()
            .map(|cmd| {
                let mut out = Vec::new();
                let result = match cmd {
                    Cmd::User(c) => user::execute(backend, c, &mut || Ok("pw".into()), &mut out),
                    Cmd::Queue(c) => queue::execute(backend, c, &mut out),
                };
                match result {
                    Ok(()) => String::from_utf8(out).unwrap(),
                    Err(e) => format!("error: {e:#}"),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn commands_print_the_same_through_the_api_and_the_store() {
        let s = start(|_| {}).await;
        let id = s.store.accept(relay_envelope(), b"Subject: q\r\n\r\nx\r\n".to_vec()).await.unwrap();
        s.store.record(id, Some("far@remote.example"), "queued for relay").unwrap();
        let gone = s.store.next_id().unwrap();
        s.store.record(gone, None, "delivered and removed").unwrap();
        let config = Config { data_dir: s.dir.path().to_path_buf(), ..Config::default() };

        let c = config.clone();
        let via_api = blocking(move || {
            let backend = Backend::open(&c).unwrap();
            assert!(matches!(backend, Backend::Api(_)), "a running daemon must be used through its API");
            script(&backend, id, gone)
        })
        .await;
        // The daemon's store handles are gone when it has stopped, so the lock is free.
        let _dir = s.stop().await;

        let via_store = blocking(move || {
            let backend = Backend::open(&config).unwrap();
            assert!(matches!(backend, Backend::Store(_)), "without a daemon the store is opened directly");
            script(&backend, id, gone)
        })
        .await;
        assert_eq!(via_api, via_store);
        // Spot checks that the script did what it says.
        assert_eq!(via_api[1], "added user carol@example.com\n");
        assert_eq!(via_api[2], "error: user carol@example.com already exists");
        assert_eq!(via_api[4], "carol@example.com\n");
        assert_eq!(via_api[6], "error: no such user: nobody@example.com");
        assert!(via_api[9].ends_with("-- 1 message in the queue\n"), "{}", via_api[9]);
        assert!(via_api[10].contains("\"env_id\": \"env-1\"") && via_api[10].contains("queued for relay"), "{}", via_api[10]);
        assert!(via_api[11].contains("no longer queued"), "{}", via_api[11]);
        assert_eq!(via_api[12], "error: no such message: 00000000000000FF");
    }

    #[tokio::test]
    async fn a_daemon_without_its_api_is_named_as_the_holder() {
        let s = start(|c| c.admin.listen = vec![]).await;
        let config = Config { data_dir: s.dir.path().to_path_buf(), ..Config::default() };
        let err = blocking(move || Backend::open(&config).map(drop)).await.unwrap_err();
        assert!(format!("{err:#}").contains("held by a running `sipmta serve` whose admin API is not reachable"), "{err:#}");
        s.stop().await;
    }
}
