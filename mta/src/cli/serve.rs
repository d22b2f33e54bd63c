//! `sipmta serve`: load the config, start the server, run until SIGTERM or Ctrl-C; SIGHUP
//! reloads the config (see `crate::server::reload`).

use std::path::Path;

use anyhow::{Context, Result};
use tokio::signal::unix::SignalKind;
use tracing::{error, info};

use crate::server::Server;

pub fn run(config_path: Option<&Path>) -> Result<()> {
    // Before any thread is spawned: see crate::malloc for why.
    let malloc_tuned = crate::malloc::tune();
    let config = super::load_config(config_path)?;
    crate::logging::init(&config.log.filter, config.log.format);
    match config_path {
        Some(p) => info!(config = %p.display(), "starting sipmta {}", env!("CARGO_PKG_VERSION")),
        None => info!("starting sipmta {} with embedded defaults", env!("CARGO_PKG_VERSION")),
    }
    if malloc_tuned {
        info!(arenas = crate::malloc::ARENA_MAX, "malloc arenas capped (MALLOC_ARENA_MAX overrides)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let path = config_path.map(Path::to_path_buf);
    runtime.block_on(async {
        let server = Server::start(config).await?;
        let signal = |kind, name| tokio::signal::unix::signal(kind).with_context(|| format!("installing the {name} handler"));
        let mut term = signal(SignalKind::terminate(), "SIGTERM")?;
        let mut hangup = signal(SignalKind::hangup(), "SIGHUP")?;
        // SIGHUP: read the file again; an invalid one is refused whole, with every error.
        let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                info!("SIGHUP received: reloading the configuration");
                match crate::config::Config::load(path.as_deref()) {
                    Ok(config) => {
                        if reload.send(config).is_err() {
                            return;
                        }
                    }
                    Err(e) => error!("configuration not reloaded, the running one stays; fix these and send SIGHUP again:\n{e}"),
                }
            }
        });
        server
            .run_with_reloads(
                async move {
                    tokio::select! {
                        _ = term.recv() => info!("SIGTERM received"),
                        _ = tokio::signal::ctrl_c() => info!("interrupt received"),
                    }
                },
                reloads,
            )
            .await
    })
}
