//! Test support shared by the in-process tests of the server, the admin API and the CLI: a
//! real [`Server`] on 127.0.0.1 port 0 (every listener, admin included) in a temp directory.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sipmta_store::Store;
use tokio::sync::oneshot;

use crate::config::{ByteSize, Config};
use crate::server::Server;
use crate::smtp::Kind;

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
