//! The retention sweep: now and then, forget the history of finished messages older than
//! `spool.history_retention`, the DSN tracking records older than `relay.tracking_retention`
//! (see `sipmta_store::retention` for why memory depends on it) and the fingerprints of
//! messages accepted longer ago than `spool.resend_window`.

use std::time::Duration;

use sipmta_store::{Store, now};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    /// `spool.history_retention`.
    pub history: Duration,
    /// `relay.tracking_retention`.
    pub tracking: Duration,
    /// `spool.resend_window` (zero: none are written).
    pub resend: Duration,
}

/// Run a pass at start and then every tenth of the shortest period (between 1 s and an hour,
/// so records outlive their period by at most a tenth of it), until `stop`.
pub async fn sweep(store: Store, periods: Periods, mut stop: watch::Receiver<bool>) {
    let Periods { history, tracking, resend } = periods;
    let shortest = [history, tracking, resend].into_iter().filter(|p| !p.is_zero()).min().unwrap_or(history);
    let every = (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        let store = store.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let history = store.prune_history(now().saturating_sub(history.as_secs()))?;
            let tracking = store.prune_tracking(now().saturating_sub(tracking.as_secs()))?;
            let fingerprints = store.prune_recent(now().saturating_sub(resend.as_secs()))?;
            Ok::<_, sipmta_store::StoreError>((history, tracking, fingerprints))
        })
        .await;
        match pass {
            Ok(Ok((history, tracking, fingerprints))) if history.messages > 0 || tracking > 0 => info!(
                messages = history.messages,
                events = history.events,
                tracking_records = tracking,
                fingerprints,
                "retention: forgot the history of finished messages and old tracking records"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "retention: cannot prune history and tracking records"),
            Err(e) => warn!(error = %e, "retention: the pruning pass failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = super::stopped(&mut stop) => return,
        }
    }
}
