//! REGISTER of our own numbers: first registration, refresh, and removal (RFC 3261 §10).
//!
//! One task per number owns an rsipstack `Registration` (it keeps the Call-ID and CSeq across
//! refreshes, §10.2.4, and answers 401/407 challenges with RFC 2617 MD5 digests, §22.2). The
//! task refreshes at half the lifetime the registrar granted, retries failures with a doubling
//! back-off, and on stop sends `Expires: 0` for its binding (§10.2.2) if it ever registered.
//!
//! rsipstack builds `To`/`From` from the credential's user name, so a number registered without
//! a password would carry a user-less AOR: both headers are therefore always set here, as
//! `sip:<number>@<domain>` (§10.2: To is the address of record; From is the same for a UA
//! registering itself).

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::registration::Registration as StackRegistration;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{self as rsip, Header};
use rsipstack::transaction::make_tag;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::stack::{Shared, credential};
use super::{Registration, SipError};

/// Shortest refresh interval, whatever the registrar grants.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Longest back-off between failed refreshes.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long the agent's start waits for the first REGISTERs. A refusal within it fails the
/// start (a wrong password or number is a configuration error); a registrar that does not
/// answer in time must not keep the mail server down, so the start goes on and the tasks
/// keep retrying (an unanswered UDP REGISTER alone takes 32 s, RFC 3261 §17.1.2.2 Timer F).
const FIRST_WAIT: Duration = Duration::from_secs(3);

/// A number's registration task.
pub(super) struct Binding {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts one task per number and waits (up to [`FIRST_WAIT`]) for every first REGISTER. If
/// one is refused, the others are stopped (and so un-REGISTERed) and its error returned; one
/// that failed otherwise or is still unanswered is left retrying.
pub(super) async fn start_all(shared: &Arc<Shared>) -> Result<Vec<Binding>, SipError> {
    let mut started = Vec::new();
    for number in &shared.config.numbers {
        let (first, first_rx) = oneshot::channel();
        let stop = shared.cancel.child_token();
        let task = tokio::spawn(run(shared.clone(), number.clone(), stop.clone(), first));
        started.push((Binding { stop, task }, first_rx, &number.user));
    }
    let mut bindings = Vec::new();
    let mut error = None;
    let deadline = tokio::time::Instant::now() + FIRST_WAIT;
    for (binding, first_rx, user) in started {
        match tokio::time::timeout_at(deadline, first_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                error.get_or_insert(e);
            }
            Ok(Err(_)) => {
                error.get_or_insert(SipError::Protocol("registration task ended before its first REGISTER".into()));
            }
            // The task goes on retrying and logs how it fares.
            Err(_) => {
                warn!(number = %user, wait_ms = FIRST_WAIT.as_millis() as u64, "no answer to a first REGISTER yet; starting without it")
            }
        }
        bindings.push(binding);
    }
    match error {
        None => Ok(bindings),
        Some(e) => {
            stop_all(bindings, Duration::from_secs(5)).await;
            Err(e)
        }
    }
}

/// Stops every task, letting each send its `Expires: 0`, within `bound` in all.
pub(super) async fn stop_all(bindings: Vec<Binding>, bound: Duration) {
    for binding in &bindings {
        binding.stop.cancel();
    }
    let join = async {
        for binding in bindings {
            binding.task.await.ok();
        }
    };
    if tokio::time::timeout(bound, join).await.is_err() {
        warn!(bound_ms = bound.as_millis() as u64, "un-REGISTER did not finish in time");
    }
}

/// The registration task of one number.
async fn run(shared: Arc<Shared>, number: Registration, stop: CancellationToken, first: oneshot::Sender<Result<(), SipError>>) {
    let mut reg = StackRegistration::new(shared.endpoint().clone(), credential(&number));
    reg.outbound_proxy = shared.config.proxy;
    let requested = u32::try_from(number.expires.as_secs()).unwrap_or(u32::MAX);
    let mut first = Some(first);
    let mut registered = false;
    let mut failures = 0u32;
    loop {
        let wait = match register_once(&shared, &mut reg, &number.user, requested).await {
            Ok(granted) => {
                info!(number = %number.user, granted_s = granted, "registered");
                shared.set_registered(&number.user, Some(Duration::from_secs(granted.into())));
                registered = true;
                failures = 0;
                if let Some(first) = first.take() {
                    first.send(Ok(())).ok();
                }
                (Duration::from_secs(granted.into()) / 2).max(MIN_REFRESH)
            }
            Err(e) => {
                let e = match first.take() {
                    // A refusal while the start still waits fails the start.
                    Some(first) if is_refusal(&e) => match first.send(Err(e)) {
                        Ok(()) => return,
                        Err(Err(e)) => e,
                        Err(Ok(())) => return,
                    },
                    Some(first) => {
                        first.send(Ok(())).ok();
                        e
                    }
                    None => e,
                };
                failures += 1;
                if registered {
                    warn!(number = %number.user, error = %e, failures, "REGISTER refresh failed");
                } else {
                    // Calls for this number cannot reach us until a REGISTER succeeds.
                    error!(number = %number.user, error = %e, failures, retry_s = backoff(failures).as_secs(), "not registered: REGISTER failed");
                }
                backoff(failures)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    shared.set_registered(&number.user, None);
    if registered {
        // `stop` is cancelled, but the endpoint keeps serving until shutdown's last step.
        match register_once(&shared, &mut reg, &number.user, 0).await {
            Ok(_) => info!(number = %number.user, "un-registered"),
            Err(e) => warn!(number = %number.user, error = %e, "un-REGISTER failed"),
        }
    }
}

/// One REGISTER (with its challenge round, if any) asking for `expires` seconds; returns the
/// lifetime granted (RFC 3261 §10.2.4), 0 for a removal.
async fn register_once(shared: &Shared, reg: &mut StackRegistration, user: &str, expires: u32) -> Result<u32, SipError> {
    let domain = &shared.config.domain;
    let transport = shared.sip_transport();
    let contact = shared.contact(user, transport).map_err(|e| SipError::Protocol(e.to_string()))?;
    // Keep our Contact unless rsipstack learned a public address for this flow (rport/received
    // in a 401, RFC 3581): then it rewrote the host:port and that binding is the live one.
    if reg.contact.is_none() {
        reg.contact = Some(rsip::typed::Contact { display_name: None, uri: contact, params: vec![] });
    }
    let aor = format!("<sip:{user}@{domain}>");
    reg.extra_headers = vec![Header::To(aor.clone().into()), Header::From(format!("{aor};tag={}", make_tag()).into())];
    let suffix = if transport == rsip::Transport::Tcp { ";transport=tcp" } else { "" };
    let server = rsip::Uri::try_from(format!("sip:{domain}{suffix}").as_str()).map_err(|e| SipError::Protocol(e.to_string()))?;

    let resp = reg.register(server, Some(expires)).await.map_err(|e| SipError::Transport(e.to_string()))?;
    if resp.status_code.kind() == rsip::StatusCodeKind::Successful {
        Ok(if expires == 0 { 0 } else { reg.granted_expires.unwrap_or(expires) })
    } else {
        Err(SipError::Register { number: user.to_string(), code: resp.status_code.code(), reason: resp.status_code.text().to_string() })
    }
}

/// A final answer that says our configuration is wrong (a 4xx such as 401 after the digest,
/// 403, 404), as against one that may pass (408, 480, 5xx) or no answer at all.
fn is_refusal(e: &SipError) -> bool {
    matches!(e, SipError::Register { code, .. } if (400..500).contains(code) && !matches!(code, 408 | 480 | 486 | 491))
}

/// 1 s doubling per consecutive failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    (Duration::from_secs(1) * 2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_that_will_not_pass_are_refusals() {
        let answer = |code| SipError::Register { number: "+815011111111".into(), code, reason: String::new() };
        for code in [401, 403, 404, 407, 484] {
            assert!(is_refusal(&answer(code)), "{code}");
        }
        for code in [408, 480, 500, 503, 504] {
            assert!(!is_refusal(&answer(code)), "{code}");
        }
        assert!(!is_refusal(&SipError::Transport("connection refused".into())));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
