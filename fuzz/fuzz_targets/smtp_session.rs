//! A whole SMTP session over an in-memory stream: any byte sequence from a client must end in
//! a closed session, never a panic or a hang.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sipmta::config::{ByteSize, Config};
use sipmta::smtp::{Ctx, Kind, SessionState, serve_connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), hostname: "mx.fuzz".into(), ..Config::default() };
        config.spool.min_free_space = ByteSize(0);
        config.limits.max_message_size = ByteSize(64 << 10);
        let (store, _) = sipmta_store::Store::open(&config.data_dir).expect("store");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let tls = Some(sipmta::server::tls::acceptor(&config).expect("tls"));
        let (accepted, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Drain accepted ids so the channel does not grow.
        runtime.spawn(async move { while rx.recv().await.is_some() {} });
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        std::mem::forget(_tx);
        let routing = Arc::new(sipmta::routing::Routing::new(store.clone(), &config));
        let auth_guard = Arc::new(sipmta::smtp::guard::AuthGuard::new(config.limits.max_auth_failures, config.limits.auth_failure_window.0));
        let ctx = Arc::new(Ctx { config: Arc::new(config), store, tls, accepted, shutdown, routing, relay: None, auth_guard });
        World { runtime, ctx, _dir: dir }
    })
}

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    let w = world();
    let kind = match input[0] % 3 {
        0 => Kind::Smtp,
        1 => Kind::Submission,
        _ => Kind::Submissions,
    };
    let input = input[1..].to_vec();
    w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let st = SessionState::new(kind, "127.0.0.1:1".parse().expect("addr"), "127.0.0.1:25".parse().expect("addr"));
        let session = tokio::spawn(serve_connection(server, w.ctx.clone(), st));
        let reader = tokio::spawn(async move {
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            session.await.expect("the session panicked");
            reader.await.expect("reader");
        })
        .await
        .expect("the session did not end after the client closed");
    });
});
