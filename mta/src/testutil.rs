//! Test support shared by the in-process tests of the server, the admin API and the CLI: a
//! real [`Server`] on 127.0.0.1 port 0 (every listener, admin included) in a temp directory.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use sipmta_store::{QueueId, Store};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{ByteSize, Config};
use crate::server::Server;
use crate::smtp::{Ctx, Kind};

/// The shared context of SMTP sessions, without a server: for driving sessions over
/// in-memory streams. Hostname `mx.test`, no disk-space floor, TLS with a self-signed pair.
pub(crate) struct SessionCtx {
    pub dir: tempfile::TempDir,
    pub ctx: Arc<Ctx>,
    pub accepted: mpsc::UnboundedReceiver<QueueId>,
    pub shutdown: watch::Sender<bool>,
}

pub(crate) fn session_ctx(adjust: impl FnOnce(&mut Config)) -> SessionCtx {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), hostname: "mx.test".into(), ..Config::default() };
    config.spool.min_free_space = ByteSize(0);
    adjust(&mut config);
    let (store, _) = Store::open(&config.data_dir).unwrap();
    let tls = Some(crate::server::tls::acceptor(&config).unwrap());
    let (tx, accepted) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let routing = Arc::new(crate::routing::Routing::new(store.clone(), &config));
    let auth_guard = Arc::new(crate::smtp::guard::AuthGuard::new(config.limits.max_auth_failures, config.limits.auth_failure_window.0));
    let ctx = Arc::new(Ctx { config: Arc::new(config), store, tls, accepted: tx, shutdown: shutdown_rx, routing, relay: None, auth_guard });
    SessionCtx { dir, ctx, accepted, shutdown }
}

/// A running daemon and what tests need to reach it.
pub(crate) struct Running {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub admin: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start a daemon in a fresh data directory; `adjust` edits the config first.
pub(crate) async fn start(adjust: impl FnOnce(&mut Config)) -> Running {
    start_in(tempfile::tempdir().unwrap(), adjust).await
}

/// Start a daemon on an existing data directory (for restarts).
pub(crate) async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config { data_dir: dir.path().to_path_buf(), hostname: "mx.test".into(), ..Config::default() };
    config.smtp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.submission.listen = vec!["127.0.0.1:0".parse().unwrap()];
    // The default admin port is fixed; tests run in parallel.
    config.admin.listen = vec!["127.0.0.1:0".parse().unwrap()];
    // Likewise the registrar's.
    config.registrar.listen = "127.0.0.1:0".parse().unwrap();
    config.spool.min_free_space = ByteSize(0);
    adjust(&mut config);
    let server = Server::start(config).await.unwrap();
    let addr =
        |kind| server.local_addrs().into_iter().find(|(k, _)| *k == kind).map(|(_, a)| a).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (smtp, submission) = (addr(Kind::Smtp), addr(Kind::Submission));
    let admin = server.admin_addrs().first().copied().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let store = server.store();
    let (tx, rx) = oneshot::channel();
    let done = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running { dir, store, smtp, submission, admin, stop: Some(tx), done }
}

impl Running {
    /// Shut down gracefully and hand back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.done).await.unwrap().unwrap().unwrap();
        self.dir
    }
}

/// Poll a condition (a file appearing, a count changing) for up to 10 s.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
