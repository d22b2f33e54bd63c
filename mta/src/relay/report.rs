//! Sending DSNs (RFC 3464) about a queued message: pick the recipients whose NOTIFY asks for
//! this action, never write to the null sender, build the report and spool it like any other
//! message (null reverse-path, to the original sender), then wake the queue for it.

use sipmta_rules::Route;
use sipmta_store::{Body, Envelope, Origin, QueueId, Recipient, now};
use tracing::{info, warn};

use super::attempt::RelayCtx;
use crate::dsn::{self, Action, RecipientReport};

/// Send one DSN for `reports` (already filtered by the caller to one action family), if the
/// sender may get one and any recipient wants it. Returns the DSN's queue id.
pub async fn send(ctx: &RelayCtx, env: &Envelope, reports: Vec<RecipientReport>) -> Option<QueueId> {
    let (config, store, wake) = (&*ctx.config, &ctx.store, &ctx.wake);
    if !dsn::may_send_to(&env.sender) || reports.is_empty() {
        return None;
    }
    let message = match store.message(env.id) {
        Ok(Some(m)) => m,
        Ok(None) => Vec::new(),
        Err(e) => {
            warn!(queue_id = %env.id, error = %e, "cannot read the original for a DSN; sending it without");
            Vec::new()
        }
    };
    let action = reports[0].action;
    let report = dsn::Report {
        reporting_mta: &config.hostname,
        envelope: env,
        message: &message,
        recipients: reports,
        max_returned: config.relay.dsn_max_returned.0 as usize,
    };
    let mut bytes = dsn::build(&report, now());
    let (route, evidence) = route_report(ctx, &env.sender);
    if route != Route::Local {
        // Signed and carrying our number: the receiving site may learn it from the report
        // (issue 7 item 3).
        bytes = ctx.learner.stamp(env.id, bytes, true);
    }
    let dsn_env = Envelope {
        id: QueueId(0),
        received: now(),
        sender: String::new(),
        env_id: None,
        ret: None,
        body: Body::EightBitMime,
        smtputf8: env.smtputf8,
        size: 0,
        origin: Origin { listener: "dsn".into(), peer: String::new(), helo: config.hostname.clone(), auth_user: None, tls: false },
        recipients: vec![Recipient { evidence: Some(evidence), ..Recipient::new(env.sender.clone(), route) }],
    };
    match store.accept(dsn_env, bytes).await {
        Ok(id) => {
            info!(queue_id = %env.id, dsn_id = %id, action = %action, to = %env.sender, "DSN queued");
            let _ = store.record(env.id, None, format!("{action} DSN {id} queued for {}", env.sender));
            let _ = store.record(id, None, format!("{action} DSN about {}", env.id));
            let _ = wake.send(id);
            Some(id)
        }
        Err(e) => {
            warn!(queue_id = %env.id, error = %e, "cannot queue a DSN; the outcome is in the log and history");
            let _ = store.record(env.id, None, format!("could not queue {action} DSN: {e}"));
            None
        }
    }
}

/// Where a report to `sender` goes: local, or by the routing rules that the envelope alone
/// decides (a known or learned number makes it a fast-path report, seed 004 S110/S155). The
/// report's own text is not read: it quotes the original, whose numbers are not the sender's.
pub fn route_report(ctx: &RelayCtx, sender: &str) -> (Route, String) {
    let domain = sipmta_rules::domain_of(sender).unwrap_or_default();
    if ctx.config.is_local_domain(domain) {
        return (Route::Local, "local domain".into());
    }
    match ctx.routing.decide(&ctx.config, &[sender.to_owned()], b"").pop() {
        Some(d) if d.route != Route::Local => (d.route, d.evidence.to_string()),
        _ => (Route::Relay, "no evidence".into()),
    }
}

/// A report line for one recipient.
pub fn recipient_report(
    r: &Recipient,
    action: Action,
    status: &str,
    diagnostic: Option<String>,
    will_retry_until: Option<u64>,
) -> RecipientReport {
    RecipientReport {
        final_recipient: r.address.clone(),
        original_recipient: r.orcpt.clone(),
        action,
        status: status.to_owned(),
        remote_mta: r.remote_mta.clone(),
        diagnostic,
        last_attempt: Some(now()),
        will_retry_until,
    }
}
