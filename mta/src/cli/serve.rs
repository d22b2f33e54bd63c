//! `sipmta serve`: load the config, start the server, run until SIGTERM or Ctrl-C.

use std::path::Path;

use anyhow::{Context, Result};
use tracing::info;

use crate::server::Server;

pub fn run(config_path: Option<&Path>) -> Result<()> {
    let config = super::load_config(config_path)?;
    crate::logging::init(&config.log.filter, config.log.format);
    match config_path {
        Some(p) => info!(config = %p.display(), "starting sipmta {}", env!("CARGO_PKG_VERSION")),
        None => info!("starting sipmta {} with embedded defaults", env!("CARGO_PKG_VERSION")),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
        server
            .run(async move {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => info!("interrupt received"),
                }
            })
            .await
    })
}
