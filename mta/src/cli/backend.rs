//! Where admin commands act: today the store itself, opened directly. sled lets one process
//! hold the store, so while the daemon runs these commands say so instead of waiting.

use anyhow::{Result, anyhow};
use sipmta_store::{Store, StoreError};

use crate::config::Config;

/// Open the store for an admin command, with a clear message when the daemon holds it.
pub fn open_store(config: &Config) -> Result<Store> {
    match Store::open(&config.data_dir) {
        Ok((store, _)) => Ok(store),
        Err(StoreError::Locked(path)) => Err(anyhow!(
            "the store {} is held by a running `sipmta serve`; stop it (SIGTERM) and run this again",
            path.display()
        )),
        Err(e) => Err(anyhow!(e).context(format!("opening the store in {}", config.data_dir.display()))),
    }
}
