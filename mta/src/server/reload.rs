//! Reloading the configuration on SIGHUP (issue 9 item 6) without dropping sessions.
//!
//! The new configuration was loaded and checked by the caller (an invalid file never gets
//! here: its errors are logged and the running configuration stays). Here the parts that
//! can change while running are applied by building a new session context and a new delivery
//! context and publishing them: connections accepted from then on and delivery attempts
//! started from then on use them; sessions and attempts in progress finish with the old ones.
//!
//! What was bound or started at start-up (listeners, the data directory, the admin API, the
//! SIP side, the log, the sweeps' periods, the session limits) stays as it is until a
//! restart; the new configuration keeps the running values for those, so what the daemon
//! reports (`/status`, `route explain`) is what it does, and the log names what was kept.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::relay_ctx;
use crate::config::Config;
use crate::relay::attempt::RelayCtx;
use crate::smtp::Ctx;

/// The contexts a reload replaces.
pub struct Live {
    /// For new SMTP sessions, fast-path calls and the admin API.
    pub ctx: watch::Sender<Arc<Ctx>>,
    /// For new delivery attempts.
    pub relay: watch::Sender<Arc<RelayCtx>>,
}

impl Live {
    /// Apply `new`; returns the settings that differ but wait for a restart. On an error
    /// (a TLS key that does not load, say) nothing changes.
    pub fn apply(&self, mut new: Config) -> Result<Vec<&'static str>> {
        let old = self.ctx.borrow().clone();
        let kept = keep_running(&old.config, &mut new);
        let tls = super::tls::acceptor(&new).context("setting up TLS")?;
        let config = Arc::new(new);
        let routing = Arc::new(crate::routing::Routing::new(old.store.clone(), &config));
        let fast = self.relay.borrow().fast.clone();
        let relay = Arc::new(relay_ctx(&config, &old.store, old.accepted.clone(), fast, routing.clone())?);
        // Failed-AUTH counts survive a reload unless their limits changed.
        let limits = &config.limits;
        let auth_guard = if (limits.max_auth_failures, limits.auth_failure_window)
            == (old.config.limits.max_auth_failures, old.config.limits.auth_failure_window)
        {
            old.auth_guard.clone()
        } else {
            Arc::new(crate::smtp::guard::AuthGuard::new(limits.max_auth_failures, limits.auth_failure_window.0))
        };
        let ctx = Ctx {
            config,
            store: old.store.clone(),
            tls: Some(tls),
            accepted: old.accepted.clone(),
            shutdown: old.shutdown.clone(),
            routing,
            relay: Some(relay.clone()),
            auth_guard,
        };
        self.relay.send_replace(relay);
        self.ctx.send_replace(Arc::new(ctx));
        Ok(kept)
    }
}

/// Put the running values back into `new` for what only a restart changes; the names of
/// those that differed.
fn keep_running(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if new.$($field).+ != running.$($field).+ {
                new.$($field).+ = running.$($field).+.clone();
                kept.push($name);
            }
        };
    }
    keep!(data_dir, "data_dir");
    keep!(smtp.listen, "smtp.listen");
    keep!(submission.listen, "submission.listen");
    keep!(submissions.listen, "submissions.listen");
    keep!(admin, "admin");
    keep!(fastpath, "fastpath");
    keep!(registrar, "registrar");
    keep!(log, "log");
    keep!(spool.history_retention, "spool.history_retention");
    keep!(spool.db_cache, "spool.db_cache");
    keep!(relay.tracking_retention, "relay.tracking_retention");
    keep!(learning.lifetime, "learning.lifetime");
    keep!(limits.max_sessions, "limits.max_sessions");
    keep!(limits.max_sessions_per_client, "limits.max_sessions_per_client");
    keep!(limits.shutdown_grace, "limits.shutdown_grace");
    kept
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Span;

    #[test]
    fn start_up_settings_keep_their_running_values_and_are_named() {
        let running = Config::default();
        let mut new = Config::default();
        new.smtp.listen = vec!["127.0.0.1:2626".parse().unwrap()];
        new.limits.shutdown_grace = Span(std::time::Duration::from_secs(1));
        new.trusted_networks = vec!["10.0.0.0/8".parse().unwrap()];
        let kept = keep_running(&running, &mut new);
        assert_eq!(kept, ["smtp.listen", "limits.shutdown_grace"]);
        assert_eq!(new.smtp.listen, running.smtp.listen);
        assert_eq!(new.limits.shutdown_grace, running.limits.shutdown_grace);
        assert_eq!(new.trusted_networks.len(), 1, "what can change does");
    }
}
