//! The daemon's network side: binding and announcing listeners, the accept loops with their
//! session limits, the delivery worker, and graceful shutdown.
//!
//! Shutdown (DESIGN.md "Operations"): stop reading new commands from idle sessions (they get
//! `421 4.3.2`), answer new connections with `421 4.3.2`, let open transactions finish within
//! `limits.shutdown_grace`, then abort what is left, let the delivery worker finish its
//! in-flight messages, flush the store and return. The admin API stops taking connections as
//! shutdown starts and removes its token once its requests are done.

mod reload;
mod retention;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use sipmta_store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::admin::server::AdminServer;
use crate::config::Config;
use crate::relay::attempt::RelayCtx;
use crate::relay::hop::Connectors;
use crate::relay::outbound::Timeouts;
use crate::relay::pool::Pool;
use crate::relay::resolve::{Resolver, ResolverSettings};
use crate::smtp::reply::Reply;
use crate::smtp::{Ctx, Kind, SessionState, serve_connection};

/// A daemon with its listeners bound, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    ctx: Arc<Ctx>,
    listeners: Vec<(Kind, TcpListener)>,
    admin: Option<AdminServer>,
    shutdown: watch::Sender<bool>,
    accepted: mpsc::UnboundedReceiver<sipmta_store::QueueId>,
    relay: Arc<RelayCtx>,
    fast: Option<crate::fastpath::Started>,
    registrar: Option<sipfast::registrar::RegistrarHandle>,
}

impl Server {
    /// Open the store, prepare TLS and bind every configured listener, announcing each in the
    /// log. Fails (naming the culprit) if the store is in use or an address cannot be bound.
    pub async fn start(config: Config) -> Result<Server> {
        let config = Arc::new(config);
        let (store, recovery) = Store::open_with_cache(&config.data_dir, config.spool.db_cache.0)
            .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
        info!(
            data_dir = %config.data_dir.display(),
            queued = recovery.queued,
            orphans_removed = recovery.orphans_removed,
            handovers_recovered = recovery.handovers.len(),
            "store open"
        );
        crate::relay::tracking::remember_recovered(&store, &recovery.handovers);
        let tls = tls::acceptor(&config).context("setting up TLS")?;
        let mut listeners = Vec::new();
        for (kind, listener) in
            [(Kind::Smtp, &config.smtp), (Kind::Submission, &config.submission), (Kind::Submissions, &config.submissions)]
        {
            for addr in &listener.listen {
                let bound = bind_tcp(*addr).with_context(|| format!("binding {} listener {addr}", kind.name()))?;
                let local = bound.local_addr()?;
                info!(listener = kind.name(), addr = %local, "{} listener on {local}", kind.name());
                listeners.push((kind, bound));
            }
        }
        // Last, so the token is published only once everything else is up.
        let admin = AdminServer::bind(&config.admin.listen, &config.data_dir).await?;
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        // Before the fast path, whose user agent may register with it.
        let registrar = crate::registrar::start(&config, &store).await?;
        let fast = crate::fastpath::start(&config, &store).await?;
        let routing = Arc::new(crate::routing::Routing::new(store.clone(), &config));
        let relay = Arc::new(relay_ctx(&config, &store, accepted_tx.clone(), fast.as_ref().map(|f| f.fast.clone()), routing.clone())?);
        let limits = config.limits.clone();
        let ctx = Arc::new(Ctx {
            config,
            store,
            tls: Some(tls),
            accepted: accepted_tx,
            shutdown: shutdown_rx,
            routing,
            relay: Some(relay.clone()),
            auth_guard: Arc::new(crate::smtp::guard::AuthGuard::new(limits.max_auth_failures, limits.auth_failure_window.0)),
        });
        Ok(Server { ctx, listeners, admin, shutdown, accepted, relay, fast, registrar })
    }

    /// The bound addresses (with port 0 resolved), for tests and the log.
    pub fn local_addrs(&self) -> Vec<(Kind, SocketAddr)> {
        self.listeners.iter().filter_map(|(k, l)| l.local_addr().ok().map(|a| (*k, a))).collect()
    }

    /// The admin API's bound addresses (empty when it is off).
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addrs).unwrap_or_default()
    }

    /// The store (for tests that inspect it while the server runs).
    pub fn store(&self) -> Store {
        self.ctx.store.clone()
    }

    /// Serve until `stop` completes, then shut down gracefully.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<()> {
        let (_keep, reloads) = mpsc::unbounded_channel();
        self.run_with_reloads(stop, reloads).await
    }

    /// [`Server::run`], applying each configuration that arrives on `reloads` (already loaded
    /// and checked; see [`reload`]).
    pub async fn run_with_reloads(self, stop: impl Future<Output = ()>, mut reloads: mpsc::UnboundedReceiver<Config>) -> Result<()> {
        let Server { ctx, listeners, admin, shutdown, accepted, relay, fast, registrar } = self;
        let (ctx_tx, ctx_rx) = watch::channel(ctx.clone());
        let (relay_tx, relay_rx) = watch::channel(relay);
        let live = reload::Live { ctx: ctx_tx, relay: relay_tx };
        let limits = &ctx.config.limits;
        let sessions = Arc::new(Semaphore::new(limits.max_sessions));
        let per_client = Arc::new(PerClient { max: limits.max_sessions_per_client, counts: Mutex::default() });
        let (hard_stop, hard_stop_rx) = watch::channel(false);
        let (deliver_stop, deliver_stop_rx) = watch::channel(false);
        let deliverer = tokio::spawn(crate::relay::queue::run(relay_rx, accepted, deliver_stop_rx));
        // Background tasks that hold the store: awaited before `run` returns, so that a stopped
        // server has let the store go (an embedder, or a test, may open it again at once).
        let mut background =
            vec![tokio::spawn(crate::learn::sweep(ctx.store.clone(), ctx.config.learning.lifetime.0, ctx.shutdown.clone()))];
        let periods = retention::Periods {
            history: ctx.config.spool.history_retention.0,
            tracking: ctx.config.relay.tracking_retention.0,
            resend: ctx.config.spool.resend_window.0,
        };
        background.push(tokio::spawn(retention::sweep(ctx.store.clone(), periods, ctx.shutdown.clone())));
        let mut loops = JoinSet::new();
        for (kind, listener) in listeners {
            loops.spawn(accept_loop(kind, listener, ctx_rx.clone(), sessions.clone(), per_client.clone(), hard_stop_rx.clone()));
        }
        // Stops with `shutdown`, as the SMTP listeners start refusing.
        let admin = admin.map(|a| tokio::spawn(a.run(ctx_rx.clone())));
        // The fast path's stream listener keeps serving while open transactions finish (a
        // delivery in progress may still need its stream); calls stop being answered at once.
        let fast = fast.map(|f| {
            let preamble = ctx.config.fastpath.preamble_timeout.0;
            tokio::spawn(f.fast.streams.clone().run(f.listener, preamble, hard_stop_rx.clone()));
            background.push(tokio::spawn(crate::fastpath::receive::run(f.fast.clone(), f.incoming, ctx_rx.clone(), ctx.shutdown.clone())));
            background.push(tokio::spawn(reap_sessions(f.fast.clone(), ctx.shutdown.clone())));
            f.fast
        });
        info!("ready");
        let reloading = async {
            while let Some(config) = reloads.recv().await {
                match live.apply(config) {
                    Ok(kept) if kept.is_empty() => info!("configuration reloaded"),
                    Ok(kept) => {
                        warn!(needs_restart = ?kept, "configuration reloaded; these settings changed but take effect only at a restart")
                    }
                    Err(e) => error!(error = format!("{e:#}"), "configuration not reloaded; the running one stays"),
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = stop => {}
            () = reloading => {}
        }
        info!(grace = ?limits.shutdown_grace.0, "shutting down: finishing open transactions");
        let _ = shutdown.send(true);
        let all = u32::try_from(limits.max_sessions).unwrap_or(u32::MAX);
        if tokio::time::timeout(limits.shutdown_grace.0, sessions.acquire_many(all)).await.is_err() {
            warn!(open = limits.max_sessions - sessions.available_permits(), "grace period over: aborting open sessions");
            let _ = hard_stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), sessions.acquire_many(all)).await;
        }
        let _ = hard_stop.send(true);
        loops.shutdown().await;
        let _ = deliver_stop.send(true);
        if let Err(e) = deliverer.await {
            error!(error = %e, "queue manager failed");
        }
        if let Some(fast) = fast {
            // Deliveries are done: close idle sessions (QUIT, BYE), then un-REGISTER our
            // numbers (RFC 3261 §10.2.2) so calls stop coming here.
            fast.sessions.reap(true).await;
            fast.agent.clone().shutdown().await;
        }
        if let Some(registrar) = registrar {
            // Last: our own user agent's un-REGISTER may have come through it.
            registrar.shutdown().await;
        }
        if let Some(task) = admin
            && let Err(e) = task.await
        {
            error!(error = %e, "admin API failed");
        }
        for task in background {
            if let Err(e) = task.await {
                error!(error = %e, "a background task failed");
            }
        }
        ctx.store.flush().context("flushing the store at shutdown")?;
        info!("stopped");
        Ok(())
    }
}

/// What the queue manager and its delivery attempts share.
fn relay_ctx(
    config: &Arc<Config>,
    store: &Store,
    wake: mpsc::UnboundedSender<sipmta_store::QueueId>,
    fast: Option<Arc<crate::fastpath::FastPath>>,
    routing: Arc<crate::routing::Routing>,
) -> Result<RelayCtx> {
    let r = &config.relay;
    let settings = ResolverSettings { nameservers: r.nameservers.clone(), timeout: r.dns_timeout.0, attempts: 2, mx_port: r.mx_port };
    let resolver = Resolver::new(&settings).context("setting up DNS resolution")?;
    let connectors = Connectors::new().map_err(|e| anyhow::anyhow!("setting up outbound TLS: {e}"))?;
    let pool = Pool::new(r.max_connections, r.max_connections_per_destination, r.connection_idle.0, r.max_messages_per_connection);
    let timeouts = Timeouts::default().capped(r.connect_timeout.0, r.smtp_timeout.map(|s| s.0));
    let learner =
        Arc::new(crate::learn::Learner::new(config.clone(), store.clone(), routing.clone(), &resolver).context("loading DKIM keys")?);
    Ok(RelayCtx { config: config.clone(), store: store.clone(), resolver, pool, connectors, wake, timeouts, fast, routing, learner })
}

/// Sessions per client address.
#[derive(Debug)]
struct PerClient {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one of a client's session slots until dropped.
struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { owner: self.clone(), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    live: watch::Receiver<Arc<Ctx>>,
    sessions: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    mut hard_stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(listener = kind.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut hard_stop) => return,
        };
        let _ = stream.set_nodelay(true);
        // The context in force now (a reload replaces it); the session keeps this one.
        let ctx = live.borrow().clone();
        if *ctx.shutdown.borrow() {
            refuse(stream, Reply::new(421, "4.3.2", format!("{} Service shutting down, try again later", ctx.config.hostname)));
            continue;
        }
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            warn!(%peer, "session limit reached, refusing connection");
            refuse(stream, Reply::new(421, "4.3.2", format!("{} Too many connections, try again later", ctx.config.hostname)));
            continue;
        };
        let Some(slot) = per_client.take(peer.ip()) else {
            warn!(%peer, "per-client session limit reached, refusing connection");
            refuse(stream, Reply::new(421, "4.7.0", format!("{} Too many connections from your address", ctx.config.hostname)));
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        let st = SessionState::new(kind, peer, local);
        let (ctx, mut hard_stop) = (ctx.clone(), hard_stop.clone());
        tokio::spawn(async move {
            let _held: (OwnedSemaphorePermit, ClientSlot) = (permit, slot);
            tokio::select! {
                () = serve_connection(stream, ctx, st) => {}
                () = stopped(&mut hard_stop) => info!(%peer, "session aborted at shutdown"),
            }
        });
    }
}

/// A listening TCP socket on `addr`, as `TcpListener::bind` makes one (SO_REUSEADDR, a
/// backlog of 1024) but with IPV6_V6ONLY on IPv6 addresses: `[::]:25` then takes only IPv6,
/// so it can be listed next to `0.0.0.0:25` whatever the system's `bindv6only` default
/// (Linux's is dual-stack, and the second bind would fail with "address in use").
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Resolves once the flag turns true (or its sender is gone). The guard `wait_for` returns is
/// not `Send`, so it must not live in a `select!` output.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Answer a connection we will not serve, without holding up the accept loop.
fn refuse(mut stream: TcpStream, reply: Reply) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(reply.to_wire().as_bytes())).await;
        let _ = stream.shutdown().await;
        debug!("refused connection closed");
    });
}

#[cfg(test)]
mod tests;

/// Close idle fast-path sessions as their idle time runs out, until shutdown.
async fn reap_sessions(fast: Arc<crate::fastpath::FastPath>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(fast.sessions.reap_every());
    loop {
        tokio::select! {
            _ = tick.tick() => fast.sessions.reap(false).await,
            () = stopped(&mut stop) => return,
        }
    }
}
