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

/// A period's pass runs every tenth of it (between 1 s and an hour, so records outlive their
/// period by at most a tenth of it).
fn every(period: Duration) -> Duration {
    (period / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Run the passes at start and then each on its own cadence until `stop`: history and
/// tracking every tenth of the shorter of their periods, fingerprints every tenth of the resend
/// window. Apart, because the tracking pass reads its whole tree and the window is minutes
/// long while the others are days.
pub async fn sweep(store: Store, periods: Periods, mut stop: watch::Receiver<bool>) {
    let Periods { history, tracking, resend } = periods;
    let mut records = tokio::time::interval(every(history.min(tracking)));
    // A window of zero writes no fingerprints; any left from before go at the records' pace.
    let mut fingerprints = tokio::time::interval(every(if resend.is_zero() { history.min(tracking) } else { resend }));
    loop {
        let store = store.clone();
        tokio::select! {
            _ = records.tick() => {
                let pass = tokio::task::spawn_blocking(move || {
                    let history = store.prune_history(now().saturating_sub(history.as_secs()))?;
                    let tracking = store.prune_tracking(now().saturating_sub(tracking.as_secs()))?;
                    Ok::<_, sipmta_store::StoreError>((history, tracking))
                })
                .await;
                match pass {
                    Ok(Ok((history, tracking))) if history.messages > 0 || tracking > 0 => info!(
                        messages = history.messages,
                        events = history.events,
                        tracking_records = tracking,
                        "retention: forgot the history of finished messages and old tracking records"
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(error = %e, "retention: cannot prune history and tracking records"),
                    Err(e) => warn!(error = %e, "retention: the pruning pass failed"),
                }
            }
            _ = fingerprints.tick() => {
                let pass = tokio::task::spawn_blocking(move || store.prune_recent(now().saturating_sub(resend.as_secs()))).await;
                match pass {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(error = %e, "retention: cannot prune the fingerprints of accepted messages"),
                    Err(e) => warn!(error = %e, "retention: the fingerprint pass failed"),
                }
            }
            () = super::stopped(&mut stop) => return,
        }
    }
}
