//! The local delivery worker: takes accepted messages, delivers their local recipients to
//! Maildir, records the outcome per recipient, and removes a message from the spool when every
//! recipient is finished.
//!
//! Recipients for other domains stay `queued` for the relay queue (a later issue). On start the
//! worker rescans the spool, so a message accepted just before a crash is delivered after the
//! restart; a crash between the Maildir rename and the state update can deliver a copy twice,
//! never zero times. Failed local deliveries are retried every `RETRY_EVERY`.

pub mod maildir;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sipmta_rules::Route;
use sipmta_store::{QueueId, RcptState, Store, now};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::Config;

/// How often deferred local deliveries are retried.
const RETRY_EVERY: Duration = Duration::from_secs(60);
/// Messages delivered at once.
const PARALLEL: usize = 4;

/// Run the worker until `stop` turns true; in-flight deliveries finish before it returns.
pub async fn run(config: Arc<Config>, store: Store, mut accepted: mpsc::UnboundedReceiver<QueueId>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let mut in_flight: HashSet<QueueId> = HashSet::new();
    let mut tasks: JoinSet<QueueId> = JoinSet::new();
    let mut pending: Vec<QueueId> = pending_local(&store);
    if !pending.is_empty() {
        info!(messages = pending.len(), "resuming local deliveries from the spool");
    }
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.tick().await;
    loop {
        for id in pending.drain(..) {
            if in_flight.insert(id) {
                let (config, store, slots) = (config.clone(), store.clone(), slots.clone());
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    deliver_message(&config, &store, id).await;
                    id
                });
            }
        }
        tokio::select! {
            id = accepted.recv() => match id {
                Some(id) => pending.push(id),
                None => break,
            },
            Some(done) = tasks.join_next() => {
                match done {
                    Ok(id) => { in_flight.remove(&id); }
                    Err(e) => error!(error = %e, "delivery task failed"),
                }
            }
            _ = retry.tick() => pending = pending_local(&store),
            () = crate::server::stopped(&mut stop) => break,
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            error!(error = %e, "delivery task failed");
        }
    }
}

/// Messages with local recipients still to deliver.
fn pending_local(store: &Store) -> Vec<QueueId> {
    store
        .queue()
        .filter_map(|env| match env {
            Ok(env) => env
                .recipients
                .iter()
                .any(|r| r.route == Route::Local && matches!(r.state, RcptState::Queued | RcptState::Deferred))
                .then_some(env.id),
            Err(e) => {
                error!(error = %e, "unreadable queue entry skipped");
                None
            }
        })
        .collect()
}

/// Deliver a message's local recipients and record each result as it happens.
///
/// Each recipient's new state is written with [`Store::modify`], so another worker changing
/// other recipients of the same message (the relay queue, an admin command) loses nothing.
pub async fn deliver_message(config: &Config, store: &Store, id: QueueId) {
    let (env, message) = match (store.envelope(id), store.message(id)) {
        (Ok(Some(env)), Ok(Some(message))) => (env, message),
        (Ok(None), _) => return, // finished meanwhile
        (Err(e), _) | (_, Err(e)) => {
            error!(queue_id = %id, error = %e, "cannot read queued message");
            return;
        }
        (Ok(Some(_)), Ok(None)) => {
            error!(queue_id = %id, "queued envelope without its message; left for the operator");
            return;
        }
    };
    let root: PathBuf = config.data_dir.join("maildir");
    let message = Arc::new(message);
    for (index, rcpt) in env.recipients.iter().enumerate() {
        if rcpt.route != Route::Local || !rcpt.is_pending() {
            continue;
        }
        let (root, address, sender, msg, host) =
            (root.clone(), rcpt.address.clone(), env.sender.clone(), message.clone(), config.hostname.clone());
        let result = tokio::task::spawn_blocking(move || maildir::deliver(&root, &address, &sender, &msg, &host)).await;
        let (state, text) = match result {
            Ok(Ok(path)) => {
                info!(queue_id = %id, rcpt = %rcpt.address, route = "local", result = "delivered", path = %path.display(), "delivery");
                (RcptState::Delivered, format!("delivered to maildir {}", path.display()))
            }
            Ok(Err(e)) => {
                warn!(queue_id = %id, rcpt = %rcpt.address, route = "local", result = "deferred", error = %e, "delivery");
                (RcptState::Deferred, format!("local delivery deferred: {e}"))
            }
            Err(e) => {
                error!(queue_id = %id, rcpt = %rcpt.address, error = %e, "delivery task failed");
                (RcptState::Deferred, format!("local delivery deferred: {e}"))
            }
        };
        let recorded = text.clone();
        let saved = store
            .modify(id, move |env| {
                if let Some(r) = env.recipients.get_mut(index) {
                    r.state = state;
                    r.attempts += 1;
                    r.updated = now();
                    r.last_reply = Some(recorded.clone());
                }
            })
            .await;
        if let Err(e) = saved {
            // The Maildir copy exists; the worst case is a second copy after a restart.
            error!(queue_id = %id, error = %e, "cannot record delivery state");
        }
        if let Err(e) = store.record(id, Some(&rcpt.address), &text) {
            warn!(queue_id = %id, error = %e, "cannot record history");
        }
    }
    match store.remove_if_finished(id).await {
        Ok(true) => info!(queue_id = %id, "removed from spool: all recipients finished"),
        Ok(false) => {}
        Err(e) => error!(queue_id = %id, error = %e, "cannot remove finished message"),
    }
}
