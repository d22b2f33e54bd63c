//! Local delivery: a message's local recipients go to Maildir, each result recorded as it
//! happens. The relay queue manager calls [`deliver_message`] when a message with local
//! recipients is due; a failed local delivery is retried on the relay retry schedule.
//!
//! A crash between the Maildir rename and the state update can deliver a copy twice, never
//! zero times.

pub mod maildir;

use std::path::PathBuf;
use std::sync::Arc;

use sipmta_rules::Route;
use sipmta_store::{QueueId, RcptState, Store, now};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::metrics::{Attempt, METRICS};

/// The result for one local recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResult {
    /// The recipient's index in the envelope.
    pub index: usize,
    /// `Delivered` or `Deferred`.
    pub state: RcptState,
    /// What happened, as recorded.
    pub text: String,
}

/// Deliver a message's local recipients and record each result as it happens.
///
/// Each recipient's new state is written with [`Store::modify`], so another worker changing
/// other recipients of the same message (the relay queue, an admin command) loses nothing.
pub async fn deliver_message(config: &Config, store: &Store, id: QueueId) -> Vec<LocalResult> {
    let mut results = Vec::new();
    let (env, message) = match (store.envelope(id), store.message(id)) {
        (Ok(Some(env)), Ok(Some(message))) => (env, message),
        (Ok(None), _) => return results, // finished meanwhile
        (Err(e), _) | (_, Err(e)) => {
            error!(queue_id = %id, error = %e, "cannot read queued message");
            return results;
        }
        (Ok(Some(_)), Ok(None)) => {
            error!(queue_id = %id, "queued envelope without its message; left for the operator");
            return results;
        }
    };
    let root: PathBuf = config.data_dir.join("maildir");
    let message = Arc::new(message);
    for (index, rcpt) in env.recipients.iter().enumerate() {
        // Our bounce addresses (return-path rewrite) are not mailboxes; the queue handles them.
        if rcpt.route != Route::Local || !rcpt.is_pending() || crate::relay::tracking::parse_bounce_address(config, &rcpt.address).is_some()
        {
            continue;
        }
        let (root, address, sender, msg, host) =
            (root.clone(), rcpt.address.clone(), env.sender.clone(), message.clone(), config.hostname.clone());
        let key = format!("{id}.{index}");
        let result = tokio::task::spawn_blocking(move || maildir::deliver(&root, &address, &sender, &msg, &host, &key)).await;
        let (state, text) = match result {
            Ok(Ok(maildir::Delivered { path, earlier })) => {
                let text = if earlier { "found in maildir (delivered before a restart)" } else { "delivered to maildir" };
                info!(queue_id = %id, rcpt = %rcpt.address, route = "local", result = "delivered", path = %path.display(), earlier, "delivery");
                (RcptState::Delivered, format!("{text} {}", path.display()))
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
        let delivered = state == RcptState::Delivered;
        METRICS.delivery(Attempt {
            site: store.instance(),
            id,
            rcpt: &rcpt.address,
            route: "local",
            result: if delivered { "delivered" } else { "deferred" },
            status: (!delivered).then_some("4.3.0"),
            detail: &text,
            received: env.received,
        });
        let recorded = text.clone();
        let retry = config.relay.clone();
        let saved = store
            .modify(id, move |env| {
                if let Some(r) = env.recipients.get_mut(index) {
                    r.attempts += 1;
                    r.updated = now();
                    r.last_reply = Some(recorded.clone());
                    // An operator's hold placed meanwhile wins over a retry.
                    if state == RcptState::Delivered || r.state != RcptState::Held {
                        r.state = state;
                    }
                    if state == RcptState::Deferred {
                        r.next_attempt = now() + retry.backoff(r.attempts).as_secs();
                    }
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
        results.push(LocalResult { index, state, text });
    }
    results
}
