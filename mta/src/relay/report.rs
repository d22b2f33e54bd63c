//! Sending DSNs (RFC 3464) about a queued message: pick the recipients whose NOTIFY asks for
//! this action, never write to the null sender, build the report and spool it like any other
//! message (null reverse-path, to the original sender), then wake the queue for it.

use sipmta_rules::Route;
use sipmta_store::{Body, Envelope, Origin, QueueId, Recipient, now};
use tracing::{info, warn};

use super::attempt::RelayCtx;
use crate::dsn::{self, Action, RecipientReport, mdn};
use crate::metrics::METRICS;

/// Send one DSN for `reports` (already filtered by the caller to one action family), if the
/// sender may get one and any recipient wants it. Returns the DSN's queue id.
pub async fn send(ctx: &RelayCtx, env: &Envelope, reports: Vec<RecipientReport>) -> Option<QueueId> {
    if !dsn::may_send_to(&env.sender) || reports.is_empty() {
        return None;
    }
    let message = match ctx.store.message(env.id) {
        Ok(Some(m)) => m,
        Ok(None) => Vec::new(),
        Err(e) => {
            warn!(queue_id = %env.id, error = %e, "cannot read the original for a DSN; sending it without");
            Vec::new()
        }
    };
    send_about(ctx, env, &message, reports).await
}

/// [`send`] with the original message at hand (no need to read it back from the spool).
pub async fn send_about(ctx: &RelayCtx, env: &Envelope, message: &[u8], reports: Vec<RecipientReport>) -> Option<QueueId> {
    let config = &*ctx.config;
    if !dsn::may_send_to(&env.sender) || reports.is_empty() {
        return None;
    }
    let action = reports[0].action;
    let report = dsn::Report {
        reporting_mta: &config.hostname,
        envelope: env,
        message,
        recipients: reports,
        max_returned: config.relay.dsn_max_returned.0 as usize,
    };
    let bytes = dsn::build(&report, now());
    queue(ctx, env, &env.sender, bytes, env.smtputf8, &format!("{action} DSN")).await
}

/// Send an automatic MDN (RFC 8098) for `message`, just delivered to the local mailbox of
/// `final_recipient`, when `local.send_mdn` is on and the message asks for one in a way that
/// may be answered automatically ([`mdn::should_send`]). Returns the MDN's queue id.
pub async fn send_mdn(ctx: &RelayCtx, env: &Envelope, message: &[u8], final_recipient: &str) -> Option<QueueId> {
    if !ctx.config.local.send_mdn {
        return None;
    }
    let target = match mdn::should_send(&env.sender, message) {
        Ok(t) => t,
        Err(mdn::Skip::NotRequested) => return None,
        Err(skip) => {
            info!(queue_id = %env.id, rcpt = final_recipient, reason = skip.reason(), "no MDN");
            let _ = ctx.store.record(env.id, Some(final_recipient), format!("no MDN: {}", skip.reason()));
            return None;
        }
    };
    let bytes = mdn::build(&ctx.config.hostname, final_recipient, &target, message, now());
    let utf8 = !bytes.is_ascii();
    queue(ctx, env, target.to(), bytes, utf8, "MDN").await
}

/// Queue a report about `about` to `to`, from the null sender (RFC 5321 §4.5.5), routed and
/// stamped like mail leaving the site when it leaves it.
async fn queue(ctx: &RelayCtx, about: &Envelope, to: &str, mut bytes: Vec<u8>, smtputf8: bool, what: &str) -> Option<QueueId> {
    let (config, store) = (&*ctx.config, &ctx.store);
    let (route, evidence) = route_report(ctx, to);
    if route != Route::Local && ctx.learner.stamps() {
        // Signed and carrying our number: the receiving site may learn it from the report
        // (issue 7 item 3).
        bytes = ctx.learner.stamp(about.id, bytes, true);
    }
    let report_env = Envelope {
        id: QueueId(0),
        received: now(),
        sender: String::new(),
        env_id: None,
        ret: None,
        body: Body::EightBitMime,
        smtputf8,
        size: 0,
        origin: Origin { listener: "dsn".into(), peer: String::new(), helo: config.hostname.clone(), auth_user: None, tls: false },
        recipients: vec![Recipient { evidence: Some(evidence), ..Recipient::new(to.to_owned(), route) }],
    };
    match store.accept(report_env, bytes).await {
        Ok(id) => {
            info!(queue_id = %about.id, dsn_id = %id, report = what, to, "{what} queued");
            METRICS.dsn(&what.split(' ').next().unwrap_or(what).to_lowercase());
            let _ = store.record(about.id, None, format!("{what} {id} queued for {to}"));
            let _ = store.record(id, None, format!("{what} about {}", about.id));
            let _ = ctx.wake.send(id);
            Some(id)
        }
        Err(e) => {
            warn!(queue_id = %about.id, error = %e, "cannot queue a {what}; the outcome is in the log and history");
            let _ = store.record(about.id, None, format!("could not queue {what}: {e}"));
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
