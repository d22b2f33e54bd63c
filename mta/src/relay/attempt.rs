//! One delivery attempt for one queued message: expiry first (it applies to held recipients
//! too), then the due local recipients (Maildir), then the due relay recipients one domain at
//! a time (one transaction per domain over a pooled connection), then a `delayed` DSN when
//! the time has come. Every result is written with `Store::modify` as it happens.

use std::collections::BTreeMap;
use std::sync::Arc;

use sipmta_rules::Route;
use sipmta_store::{Envelope, Notify, QueueId, RcptState, Recipient, Store, now};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::hop::{Connectors, Hop, connect, next_hop};
use super::outbound::{Answer, Failure, Outcome, Timeouts, Txn, envelope_id};
use super::pool::Pool;
use super::report::{recipient_report, send as send_dsn};
use super::resolve::Resolver;
use super::tracking::{bounce_address, identify, parse_bounce_address, remember, sender_wants};
use crate::config::Config;
use crate::dsn::{self, Action, wanted};
use crate::metrics::{Attempt, METRICS};

/// What every attempt shares.
#[derive(Debug)]
pub struct RelayCtx {
    /// Configuration.
    pub config: Arc<Config>,
    /// The spool.
    pub store: Store,
    /// DNS.
    pub resolver: Resolver,
    /// Outbound connections.
    pub pool: Pool,
    /// TLS connectors.
    pub connectors: Connectors,
    /// Wakes the queue manager for a message (new DSNs).
    pub wake: mpsc::UnboundedSender<QueueId>,
    /// SMTP client timeouts.
    pub timeouts: Timeouts,
    /// The fast path, when enabled.
    pub fast: Option<Arc<crate::fastpath::FastPath>>,
    /// The routing tables (DSNs are routed like any message, so they may go fast).
    pub routing: Arc<crate::routing::Routing>,
    /// Number exchange: our announcement, and the learning of other sites' numbers.
    pub learner: Arc<crate::learn::Learner>,
}

/// Run one attempt for `id`.
pub async fn attempt(ctx: &RelayCtx, id: QueueId) {
    let Ok(Some(env)) = ctx.store.envelope(id) else { return };
    let now = now();
    if now >= env.received.saturating_add(ctx.config.relay.lifetime.0.as_secs()) {
        expire(ctx, &env).await;
    } else {
        if env.recipients.iter().any(|r| r.route == Route::Local && r.is_pending() && r.next_attempt <= now) {
            local(ctx, &env).await;
        }
        let fast_due = env.recipients.iter().any(|r| matches!(r.route, Route::Fast { .. }) && r.is_pending() && r.next_attempt <= now);
        // An inline attempt (the SMTP session's own) holds the message's fast-path recipients.
        let fast = ctx.fast.as_ref().filter(|f| !f.inline.held(id));
        let env = match (fast, fast_due) {
            (Some(fast), true) => {
                let message = ctx.store.message(id).ok().flatten().unwrap_or_default();
                super::fast::fast_recipients(ctx, fast, &env, &message, None, &mut None).await;
                // Those that fell back are relay recipients now, due at once.
                match ctx.store.envelope(id) {
                    Ok(Some(env)) => env,
                    _ => return,
                }
            }
            _ => env,
        };
        let mut domains: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in env.recipients.iter().enumerate() {
            // Fast-path recipients go by relay when the fast path is off; their decision stays.
            let relayed = r.route == Route::Relay || (matches!(r.route, Route::Fast { .. }) && ctx.fast.is_none());
            if relayed && r.is_pending() && r.next_attempt <= now {
                let domain = sipmta_rules::domain_of(&r.address).unwrap_or_default().to_ascii_lowercase();
                domains.entry(domain).or_default().push(i);
            }
        }
        if !domains.is_empty() {
            let message = match ctx.store.message(id) {
                Ok(Some(m)) => m,
                _ => {
                    warn!(queue_id = %id, "queued envelope without a readable message; left for the operator");
                    return;
                }
            };
            for (domain, idxs) in domains {
                relay_domain(ctx, &env, &message, &domain, &idxs).await;
            }
        }
        delay_warnings(ctx, id).await;
    }
    match ctx.store.remove_if_finished(id).await {
        Ok(true) => info!(queue_id = %id, "removed from spool: all recipients finished"),
        Ok(false) => {}
        Err(e) => warn!(queue_id = %id, error = %e, "cannot remove finished message"),
    }
}

/// Local recipients, and `delivered` DSNs for those who asked (RFC 3461 §5.2.2). Our bounce
/// addresses are not mailboxes: a DSN sent to one is passed on to the original sender.
async fn local(ctx: &RelayCtx, env: &Envelope) {
    for (i, r) in env.recipients.iter().enumerate() {
        if r.is_pending()
            && let Some(id) = parse_bounce_address(&ctx.config, &r.address)
        {
            forward_bounce(ctx, env, i, id).await;
        }
    }
    let results = crate::deliver::deliver_message(&ctx.config, &ctx.store, env.id).await;
    let reports: Vec<_> = results
        .iter()
        .filter(|r| r.state == RcptState::Delivered)
        .filter_map(|r| env.recipients.get(r.index))
        .filter(|r| wanted(r.notify, Action::Delivered))
        .map(|r| recipient_report(r, Action::Delivered, "2.0.0", Some("delivered to mailbox".into()), None))
        .collect();
    send_dsn(ctx, env, reports).await;
    if ctx.config.local.send_mdn {
        let delivered: Vec<&str> = results
            .iter()
            .filter(|r| r.state == RcptState::Delivered)
            .filter_map(|r| env.recipients.get(r.index))
            .map(|r| r.address.as_str())
            .collect();
        if !delivered.is_empty()
            && let Ok(Some(message)) = ctx.store.message(env.id)
        {
            for rcpt in delivered {
                super::report::send_mdn(ctx, env, &message, rcpt).await;
            }
        }
    }
}

/// A DSN that came back to a bounce address (return-path rewrite): recorded when it arrived;
/// here it is passed on to the original sender when its NOTIFY asks for it, and the bounce
/// recipient is done.
async fn forward_bounce(ctx: &RelayCtx, env: &Envelope, index: usize, hint: QueueId) {
    let message = ctx.store.message(env.id).ok().flatten().unwrap_or_default();
    let rcpts = vec![env.recipients[index].address.clone()];
    let text = match identify(&ctx.store, &message, &rcpts, Some(hint)) {
        Some(observed) if sender_wants(&observed) && dsn::may_send_to(&observed.tracked.sender) => {
            let to = observed.tracked.sender.clone();
            let domain = sipmta_rules::domain_of(&to).unwrap_or_default();
            let route = if ctx.config.is_local_domain(domain) { Route::Local } else { Route::Relay };
            let fwd = Envelope {
                id: QueueId(0),
                received: now(),
                sender: String::new(),
                recipients: vec![Recipient::new(to.clone(), route)],
                ..env.clone()
            };
            match ctx.store.accept(fwd, message).await {
                Ok(id) => {
                    let _ = ctx.wake.send(id);
                    let _ = ctx.store.record(observed.tracked.id, None, format!("DSN passed on to {to} as {id}"));
                    format!("DSN about {} passed on to {to} as {id}", observed.tracked.id)
                }
                Err(e) => {
                    warn!(queue_id = %env.id, error = %e, "cannot pass a DSN on; it will be retried");
                    return;
                }
            }
        }
        Some(observed) => format!("DSN about {} recorded; its sender did not ask for it", observed.tracked.id),
        None => "not a DSN about mail we relayed; discarded".to_owned(),
    };
    info!(queue_id = %env.id, rcpt = %env.recipients[index].address, result = "consumed", %text, "delivery");
    let rcpt = &env.recipients[index].address;
    METRICS.delivery(Attempt {
        site: ctx.store.instance(),
        id: env.id,
        rcpt,
        route: "local",
        result: "delivered",
        status: None,
        detail: &text,
        received: env.received,
    });
    let note = text.clone();
    let _ = ctx
        .store
        .modify(env.id, move |e| {
            if let Some(r) = e.recipients.get_mut(index) {
                r.state = RcptState::Delivered;
                r.updated = now();
                r.last_reply = Some(note.clone());
            }
        })
        .await;
    let _ = ctx.store.record(env.id, Some(&env.recipients[index].address), text);
}

/// One transaction for a domain's recipients.
async fn relay_domain(ctx: &RelayCtx, env: &Envelope, message: &[u8], domain: &str, idxs: &[usize]) {
    let hop = match next_hop(&ctx.config, &ctx.resolver, domain).await {
        Ok(hop) => hop,
        Err(answer) => {
            info!(queue_id = %env.id, domain, reply = %answer, "no route");
            record(ctx, env, idxs, &vec![answer; idxs.len()], None, false).await;
            return;
        }
    };
    let env_id = envelope_id(env);
    // With the return-path rewrite, DSNs come to us first, and we ask for every outcome (unless
    // the sender said NEVER) so we learn it even when the sender did not ask.
    let rewrite = ctx.config.relay.return_path_rewrite && !env.sender.is_empty();
    let sender = if rewrite { bounce_address(&ctx.config, env.id) } else { env.sender.clone() };
    let notify_for = |n: Option<Notify>| match n {
        Some(n) if n.never => Some(n),
        _ if rewrite => Some(Notify { success: true, failure: true, delay: true, never: false }),
        other => other,
    };
    let txn = Txn::of(env, &sender, &env_id, idxs, message, notify_for);
    match transact(ctx, &hop, &txn).await {
        Ok((outcome, remote)) => record(ctx, env, idxs, &outcome.answers, Some(remote), outcome.dsn_passed).await,
        Err(failures) => {
            let permanent = !failures.is_empty() && failures.iter().all(Failure::is_permanent);
            let summary = failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            let status = failures.last().map_or_else(|| "4.4.1".to_owned(), Failure::status);
            let answer = Answer::local(
                if permanent { 550 } else { 451 },
                &status,
                if summary.is_empty() { "no host could be reached".into() } else { summary },
            );
            record(ctx, env, idxs, &vec![answer; idxs.len()], None, false).await;
        }
    }
}

/// Run a transaction: on an idle connection to the same destination if there is one, else on
/// a new one through the hop's targets in order. Smarthosts: an all-4xx answer moves on to the
/// next smarthost.
async fn transact(ctx: &RelayCtx, hop: &Hop, txn: &Txn<'_>) -> Result<(Outcome, String), Vec<Failure>> {
    let _slot = ctx.pool.slot(&hop.key).await;
    while let Some(mut conn) = ctx.pool.take(&hop.key) {
        match conn.send(txn).await {
            Ok(outcome) => {
                let remote = conn.remote.clone();
                debug!(destination = %hop.key, transactions = conn.transactions, "reused connection");
                ctx.pool.put(&hop.key, conn);
                return Ok((outcome, remote));
            }
            // A connection that went stale while idle; the message was not taken (no 250).
            Err(e) => debug!(destination = %hop.key, error = %e, "idle connection failed; connecting anew"),
        }
    }
    let mut failures = Vec::new();
    let mut start = 0;
    let mut transient_outcome = None;
    while start < hop.targets.len() {
        let (mut conn, index) = match connect(hop, start, &ctx.config.hostname, &ctx.connectors, ctx.timeouts).await {
            Ok(c) => c,
            Err(mut f) => {
                failures.append(&mut f);
                break;
            }
        };
        match conn.send(txn).await {
            Ok(outcome)
                if hop.smarthost && index + 1 < hop.targets.len() && outcome.answers.iter().all(|a| (400..500).contains(&a.code)) =>
            {
                info!(smarthost = %conn.remote, "4xx from smarthost; trying the next one");
                conn.quit().await;
                transient_outcome = Some((outcome, hop.targets[index].name.clone()));
                start = index + 1;
            }
            Ok(outcome) => {
                let remote = conn.remote.clone();
                ctx.pool.put(&hop.key, conn);
                return Ok((outcome, remote));
            }
            // The connection broke during the transaction: we cannot know whether the server
            // kept the message, so retry later rather than hand it to the next host now.
            Err(f) => {
                failures.push(f);
                break;
            }
        }
    }
    transient_outcome.ok_or(failures)
}

/// Write each recipient's answer, log and record it, and send the DSNs it calls for.
async fn record(ctx: &RelayCtx, env: &Envelope, idxs: &[usize], answers: &[Answer], remote: Option<String>, dsn_passed: bool) {
    let now = now();
    let relay = ctx.config.relay.clone();
    let pairs: Vec<(usize, Answer)> = idxs.iter().copied().zip(answers.iter().cloned()).collect();
    // The next hop has them now: noted at once, so a crash before the commit below does not
    // send them again (sipmta_store's handover journal).
    for (i, answer) in pairs.iter().filter(|(_, a)| a.is_positive()) {
        if let Err(e) = ctx.store.note_handover(env.id, &[*i], RcptState::Relayed, &answer.to_string()) {
            warn!(queue_id = %env.id, error = %e, "cannot note the handover; a crash now would send it again");
        }
    }
    let (changes, remote_for) = (pairs.clone(), remote.clone());
    let updated = ctx
        .store
        .modify(env.id, move |e| {
            for (i, answer) in &changes {
                let Some(r) = e.recipients.get_mut(*i) else { continue };
                r.attempts += 1;
                r.updated = now;
                r.last_reply = Some(answer.to_string());
                r.remote_mta = remote_for.clone();
                r.state = if answer.is_positive() {
                    RcptState::Relayed
                } else if answer.is_permanent() {
                    RcptState::Failed
                } else if r.state == RcptState::Held {
                    // Put on hold while we were trying: it stays held.
                    RcptState::Held
                } else {
                    r.next_attempt = now + relay.backoff(r.attempts).as_secs();
                    RcptState::Deferred
                };
            }
        })
        .await;
    let env = match updated {
        Ok(Some(env)) => env,
        Ok(None) => return, // deleted meanwhile
        Err(e) => {
            warn!(queue_id = %env.id, error = %e, "cannot record delivery results; they will be retried");
            return;
        }
    };
    let mut failed = Vec::new();
    let mut relayed = Vec::new();
    for (i, answer) in &pairs {
        let r = &env.recipients[*i];
        let result = if answer.is_positive() {
            "relayed"
        } else if answer.is_permanent() {
            "failed"
        } else {
            "deferred"
        };
        info!(queue_id = %env.id, rcpt = %r.address, route = "relay", remote = remote.as_deref().unwrap_or("-"), result, reply = %answer, "delivery");
        let detail = format!("{} ({answer})", remote.as_deref().unwrap_or("no connection"));
        let status = Some(answer.status.as_str());
        METRICS.delivery(Attempt {
            site: ctx.store.instance(),
            id: env.id,
            rcpt: &r.address,
            route: "relay",
            result,
            status,
            detail: &detail,
            received: env.received,
        });
        let _ = ctx.store.record(env.id, Some(&r.address), format!("{result}: {detail}"));
        if answer.is_permanent() && wanted(r.notify, Action::Failed) {
            failed.push(recipient_report(r, Action::Failed, &answer.status, Some(answer.to_string()), None));
        }
        // RFC 3461 §5.2.2: a next hop without DSN ends the chain of reports here.
        if answer.is_positive() && !dsn_passed && wanted(r.notify, Action::Relayed) && r.notify.is_some_and(|n| n.success) {
            relayed.push(recipient_report(r, Action::Relayed, "2.0.0", Some(answer.to_string()), None));
        }
    }
    let handed_over: Vec<(String, Option<Notify>)> = pairs
        .iter()
        .filter(|(_, a)| a.is_positive())
        .map(|(i, _)| (env.recipients[*i].address.clone(), env.recipients[*i].notify))
        .collect();
    if !handed_over.is_empty() {
        remember(&ctx.store, &env, handed_over);
    }
    send_dsn(ctx, &env, failed).await;
    send_dsn(ctx, &env, relayed).await;
}

/// The queue lifetime is over: every unfinished recipient (held ones too) expires.
async fn expire(ctx: &RelayCtx, env: &Envelope) {
    let now = now();
    let days = ctx.config.relay.lifetime.to_string();
    let updated = ctx
        .store
        .modify(env.id, move |e| {
            for r in e.recipients.iter_mut().filter(|r| !r.state.is_final()) {
                let last = r.last_reply.clone().unwrap_or_else(|| "no attempt succeeded".into());
                r.state = RcptState::Expired;
                r.updated = now;
                r.last_reply = Some(format!("gave up after {days} in the queue; last: {last}"));
            }
        })
        .await;
    let Ok(Some(after)) = updated else { return };
    let mut reports = Vec::new();
    for (before, r) in env.recipients.iter().zip(&after.recipients) {
        if before.state.is_final() {
            continue;
        }
        let route = match r.route {
            Route::Local => "local",
            Route::Fast { .. } => "fast",
            Route::Relay => "relay",
        };
        let detail = r.last_reply.as_deref().unwrap_or_default();
        info!(queue_id = %env.id, rcpt = %r.address, route, result = "expired", reply = detail, "delivery");
        METRICS.delivery(Attempt {
            site: ctx.store.instance(),
            id: env.id,
            rcpt: &r.address,
            route,
            result: "expired",
            status: None,
            detail,
            received: env.received,
        });
        let _ = ctx.store.record(env.id, Some(&r.address), r.last_reply.clone().unwrap_or_default());
        if wanted(r.notify, Action::Failed) {
            reports.push(recipient_report(r, Action::Failed, "4.4.7", r.last_reply.clone(), None));
        }
    }
    send_dsn(ctx, &after, reports).await;
}

/// One `delayed` DSN per recipient once it has waited `delay_warning` (RFC 3464 §2.3.3).
async fn delay_warnings(ctx: &RelayCtx, id: QueueId) {
    let Ok(Some(env)) = ctx.store.envelope(id) else { return };
    let relay = &ctx.config.relay;
    if now() < env.received.saturating_add(relay.delay_warning.0.as_secs()) {
        return;
    }
    let due: Vec<usize> = env.recipients.iter().enumerate().filter(|(_, r)| r.is_pending() && !r.delay_notified).map(|(i, _)| i).collect();
    if due.is_empty() {
        return;
    }
    let marks = due.clone();
    let Ok(Some(env)) = ctx.store.modify(id, move |e| marks.iter().for_each(|&i| e.recipients[i].delay_notified = true)).await else {
        return;
    };
    let until = env.received.saturating_add(relay.lifetime.0.as_secs());
    let reports = due
        .iter()
        .map(|&i| &env.recipients[i])
        .filter(|r| wanted(r.notify, Action::Delayed))
        .map(|r| {
            let status = status_of(r.last_reply.as_deref()).unwrap_or("4.0.0");
            recipient_report(r, Action::Delayed, status, r.last_reply.clone(), Some(until))
        })
        .collect();
    send_dsn(ctx, &env, reports).await;
}

/// The enhanced status in a recorded reply (`"451 4.3.0 text"` -> `4.3.0`).
fn status_of(reply: Option<&str>) -> Option<&str> {
    let status = reply?.split_whitespace().nth(1)?;
    let ok = status.split('.').count() == 3 && status.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(status)
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_from_a_recorded_reply() {
        assert_eq!(super::status_of(Some("451 4.3.0 try later")), Some("4.3.0"));
        assert_eq!(super::status_of(Some("451 try later")), None);
        assert_eq!(super::status_of(None), None);
    }
}
