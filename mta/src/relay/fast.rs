//! Fast-path recipients in a delivery attempt (DESIGN.md "Fast path"; issue 5 item 4):
//! recipients routed to a number are delivered over a SIP session, one transaction per number.
//! A final answer from the destination's server stands (2xx delivered, 5xx failed with a DSN,
//! as that server will not change its mind); anything else (no answer, SIP errors, FP/1,
//! broken streams, 4xx) moves the recipients to the relay queue with the reason in their
//! history, and the same attempt relays them. No final `250` was seen in those cases, so
//! nothing is delivered twice.
//!
//! In inline mode (see [`crate::fastpath::inline`]) the SMTP session runs this itself and
//! answers its client with the results; a single recipient's permanent refusal then goes back
//! to the client as that reply instead of a DSN, when the client is still waiting.

use std::collections::BTreeMap;

use sipmta_rules::Route;
use sipmta_store::{Envelope, RcptState, now};
use tracing::{info, warn};

use super::attempt::RelayCtx;
use super::outbound::{Answer, Txn, envelope_id};
use super::report::{recipient_report, send_about as send_dsn};
use crate::dsn::{Action, wanted};
use crate::fastpath::FastPath;
use crate::fastpath::inline::Claim;
use crate::fastpath::send::deliver;
use crate::metrics::{Attempt, METRICS};

/// What became of one fast-path recipient in an attempt.
#[derive(Debug, Clone)]
pub struct FastResult {
    /// The recipient's index in the envelope.
    pub index: usize,
    /// The number called.
    pub tel: String,
    /// Call setup of a new session in ms; `None` for a reused session or no session.
    pub setup_ms: Option<u128>,
    /// The result.
    pub outcome: FastOutcome,
}

/// The three ways a fast-path recipient's attempt ends.
#[derive(Debug, Clone)]
pub enum FastOutcome {
    /// The final server took it.
    Delivered(Answer),
    /// The final server refused it for good; `told_client` when the waiting client gets this
    /// refusal as its DATA reply (so no DSN was sent).
    Failed {
        /// The final server's answer.
        answer: Answer,
        /// The client is told in its reply.
        told_client: bool,
    },
    /// Moved to the relay queue, for this reason.
    Relaying(String),
}

/// Where an inline session waits for the results (see [`fast_recipients`]).
pub type Early = tokio::sync::oneshot::Sender<Vec<FastResult>>;

/// Deliver every due fast-path recipient of the spooled message `env`. `claim` is the inline
/// client's, when one waits for this single-recipient message.
///
/// `early`, when given and every recipient goes to one number, gets the results as soon as the
/// final server has answered, before they are recorded: the waiting client's reply does not
/// wait for our own commit. That changes nothing a crash could do: until the record is durable
/// a restart delivers again, whether or not the client had its reply. Otherwise `early` is
/// left for the caller to send.
pub async fn fast_recipients(
    ctx: &RelayCtx,
    fast: &FastPath,
    env: &Envelope,
    message: &[u8],
    claim: Option<&Claim>,
    early: &mut Option<Early>,
) -> Vec<FastResult> {
    let mut results = Vec::new();
    let now = now();
    let mut numbers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in env.recipients.iter().enumerate() {
        if let Route::Fast { tel } = &r.route
            && r.is_pending()
            && r.next_attempt <= now
        {
            numbers.entry(tel.clone()).or_default().push(i);
        }
    }
    let one_number = numbers.len() == 1;
    for (tel, idxs) in numbers {
        match transmit(fast, env, message, &tel, &idxs, claim).await {
            Ok(sent) => {
                let found = sent.results(&tel);
                if one_number && let Some(early) = early.take() {
                    let _ = early.send(found.clone());
                }
                if record(ctx, env, message, &tel, &sent).await {
                    results.extend(found);
                }
            }
            Err(why) => {
                fall_back(ctx, env, &idxs, &why).await;
                results.extend(idxs.iter().map(|&index| FastResult {
                    index,
                    tel: tel.clone(),
                    setup_ms: None,
                    outcome: FastOutcome::Relaying(why.clone()),
                }));
            }
        }
    }
    results
}

/// The final server's answers to one fast-path transaction.
#[derive(Debug)]
struct Sent {
    /// Each recipient's index in the envelope and outcome.
    outcomes: Vec<(usize, FastOutcome)>,
    /// Call setup of a new session in ms; `None` for a reused session.
    setup_ms: Option<u128>,
    /// The final server took NOTIFY, so it reports success itself.
    dsn_passed: bool,
}

impl Sent {
    /// The outcomes as results for a caller.
    fn results(&self, tel: &str) -> Vec<FastResult> {
        self.outcomes
            .iter()
            .map(|(index, outcome)| FastResult { index: *index, tel: tel.to_owned(), setup_ms: self.setup_ms, outcome: outcome.clone() })
            .collect()
    }
}

/// One SMTP transaction over a fast-path session to `tel` for recipients `idxs` of `env`. It
/// writes nothing; `Err` says why the fast path failed, and the recipients go to relay.
async fn transmit(
    fast: &FastPath,
    env: &Envelope,
    message: &[u8],
    tel: &str,
    idxs: &[usize],
    claim: Option<&Claim>,
) -> Result<Sent, String> {
    let env_id = envelope_id(env);
    let txn = Txn::of(env, &env.sender, &env_id, idxs, message, |n| n);
    match deliver(fast, tel, &txn).await {
        Ok(done) => {
            info!(queue_id = %env.id, tel = %tel, setup_ms = ?done.setup_ms, reused = done.setup_ms.is_none(), "fast path answered");
            Ok(Sent {
                outcomes: classify(tel, idxs, done.outcome.answers, claim),
                setup_ms: done.setup_ms,
                dsn_passed: done.outcome.dsn_passed,
            })
        }
        Err(reason) => {
            info!(queue_id = %env.id, tel = %tel, route = "fast", result = "fallback", %reason, "fast path failed; falling back to relay");
            Err(format!("fast path to {tel} failed: {reason}; relaying"))
        }
    }
}

/// Move recipients to the relay route, due now, with the reason in their history.
async fn fall_back(ctx: &RelayCtx, env: &Envelope, idxs: &[usize], why: &str) {
    let (list, text) = (idxs.to_vec(), why.to_owned());
    let changed = ctx.store.modify(env.id, move |e| to_relay(e, &list, &text)).await;
    if let Err(e) = changed {
        warn!(queue_id = %env.id, error = %e, "cannot move fast-path recipients to relay; they will be retried");
    }
    report_fallback(ctx, env, idxs, why);
}

/// The envelope change of [`fall_back`]: the recipients go to relay, due now.
fn to_relay(e: &mut Envelope, idxs: &[usize], why: &str) {
    for &i in idxs {
        if let Some(r) = e.recipients.get_mut(i) {
            r.route = Route::Relay;
            r.next_attempt = 0;
            r.last_reply = Some(why.to_owned());
        }
    }
}

/// History and metrics of recipients moved to relay.
fn report_fallback(ctx: &RelayCtx, env: &Envelope, idxs: &[usize], why: &str) {
    for &i in idxs {
        let Some(r) = env.recipients.get(i) else { continue };
        let _ = ctx.store.record(env.id, Some(&r.address), why);
        METRICS.delivery(Attempt {
            site: ctx.store.instance(),
            id: env.id,
            rcpt: &r.address,
            route: "fast",
            result: "fallback",
            status: None,
            detail: why,
            received: env.received,
        });
    }
}

/// The destination server's answers: 2xx delivered, 5xx failed (told to the waiting client
/// if it claims the refusal); 4xx fall back to relay.
fn classify(tel: &str, idxs: &[usize], answers: Vec<Answer>, claim: Option<&Claim>) -> Vec<(usize, FastOutcome)> {
    let pairs: Vec<(usize, Answer)> = idxs.iter().copied().zip(answers).collect();
    let transient = pairs.iter().find(|(_, a)| !a.is_positive() && !a.is_permanent()).map(|(_, a)| a.to_string());
    pairs
        .into_iter()
        .map(|(i, answer)| {
            let outcome = if answer.is_positive() {
                FastOutcome::Delivered(answer)
            } else if answer.is_permanent() {
                // A waiting client takes the refusal as its DATA reply: no bounce is needed.
                let told_client = claim.is_some_and(Claim::claim);
                FastOutcome::Failed { answer, told_client }
            } else {
                FastOutcome::Relaying(format!("fast path to {tel}: {}; relaying", transient.clone().unwrap_or_default()))
            };
            (i, outcome)
        })
        .collect()
}

/// Make one transaction's outcomes durable: states, history, DSNs, and the move of 4xx
/// recipients to relay. False when they could not be recorded (the recipients stay due and
/// are tried again).
async fn record(ctx: &RelayCtx, env: &Envelope, message: &[u8], tel: &str, sent: &Sent) -> bool {
    // The final server has them now: noted at once, so a crash before the commit below does
    // not send them again (sipmta_store's handover journal).
    for (i, outcome) in &sent.outcomes {
        if let FastOutcome::Delivered(answer) = outcome
            && let Err(e) = ctx.store.note_handover(env.id, &[*i], RcptState::Delivered, &answer.to_string())
        {
            warn!(queue_id = %env.id, error = %e, "cannot note the handover; a crash now would send it again");
        }
    }
    let (outcomes, tel_for, now) = (sent.outcomes.clone(), tel.to_owned(), now());
    let updated = ctx.store.modify(env.id, move |e| apply(e, &tel_for, &outcomes, now)).await;
    let env = match updated {
        Ok(Some(env)) => env,
        Ok(None) => return false,
        Err(e) => {
            warn!(queue_id = %env.id, error = %e, "cannot record fast-path results; they will be retried");
            return false;
        }
    };
    report(ctx, &env, message, tel, sent).await;
    true
}

/// The envelope change for one transaction's outcomes: final answers set the recipients'
/// states, 4xx answers move them to relay.
fn apply(e: &mut Envelope, tel: &str, outcomes: &[(usize, FastOutcome)], now: u64) {
    for (i, outcome) in outcomes {
        let answer = match outcome {
            FastOutcome::Delivered(a) | FastOutcome::Failed { answer: a, .. } => a,
            FastOutcome::Relaying(why) => {
                to_relay(e, &[*i], why);
                continue;
            }
        };
        let Some(r) = e.recipients.get_mut(*i) else { continue };
        r.attempts += 1;
        r.updated = now;
        r.remote_mta = Some(format!("{tel} (fast path)"));
        r.state = if answer.is_positive() { RcptState::Delivered } else { RcptState::Failed };
        r.last_reply = Some(answer.to_string());
    }
}

/// What follows one transaction's outcomes, once [`apply`]'s change is in `env`: the log line,
/// metrics and history of each recipient, DSNs (failures the client was not told of, and
/// success when asked for and the final server did not take NOTIFY), and the fallbacks'
/// history.
async fn report(ctx: &RelayCtx, env: &Envelope, message: &[u8], tel: &str, sent: &Sent) {
    let mut failed = Vec::new();
    let mut delivered = Vec::new();
    for (i, outcome) in &sent.outcomes {
        let (answer, told_client) = match outcome {
            FastOutcome::Delivered(a) => (a, false),
            FastOutcome::Failed { answer, told_client } => (answer, *told_client),
            FastOutcome::Relaying(_) => continue,
        };
        let Some(r) = env.recipients.get(*i) else { continue };
        let result = if answer.is_positive() { "delivered" } else { "failed" };
        info!(queue_id = %env.id, rcpt = %r.address, route = "fast", tel, result, reply = %answer, "delivery");
        let detail = format!("{tel} ({answer})");
        let status = Some(answer.status.as_str());
        METRICS.delivery(Attempt {
            site: ctx.store.instance(),
            id: env.id,
            rcpt: &r.address,
            route: "fast",
            result,
            status,
            detail: &detail,
            received: env.received,
        });
        let _ = ctx.store.record(env.id, Some(&r.address), format!("{result} via fast path to {tel} ({answer})"));
        if told_client {
            let _ = ctx.store.record(env.id, Some(&r.address), "the sending client got this refusal as its DATA reply; no DSN");
        } else if !answer.is_positive() && wanted(r.notify, Action::Failed) {
            failed.push(recipient_report(r, Action::Failed, &answer.status, Some(answer.to_string()), None));
        }
        // The peer is the final server; when it cannot report success itself, we do.
        if answer.is_positive() && !sent.dsn_passed && r.notify.is_some_and(|n| n.success) {
            delivered.push(recipient_report(r, Action::Delivered, "2.0.0", Some(answer.to_string()), None));
        }
    }
    send_dsn(ctx, env, message, failed).await;
    send_dsn(ctx, env, message, delivered).await;
    let transient: Vec<usize> = sent.outcomes.iter().filter(|(_, o)| matches!(o, FastOutcome::Relaying(_))).map(|(i, _)| *i).collect();
    if let Some((_, FastOutcome::Relaying(why))) = sent.outcomes.iter().find(|(_, o)| matches!(o, FastOutcome::Relaying(_))) {
        report_fallback(ctx, env, &transient, why);
    }
}
