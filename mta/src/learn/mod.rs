//! Number exchange between sites (issue 7; seed 004, steps S306-S311 and S108-S114).
//!
//! Mail our users send to other sites carries our number ([`announce`]); mail other sites send
//! us may teach us theirs ([`Learner::check`]). A claim is learned only when it is proven:
//! - a DKIM signature (RFC 6376) that passes, whose `d=` is the From domain or a parent of it,
//!   and whose `h=` covers the header holding the number;
//! - or an SPF pass (RFC 7208) for the MAIL FROM domain from the connecting address, which
//!   then vouches for the MAIL FROM address only;
//! - or, with `learning.trust_sip_identity`, a fast-path call from that very number.
//!
//! A DSN (null sender) about mail we relayed teaches the number of the recipients it reports as
//! delivered, when the DKIM domain is theirs or the call came from the number: that is the
//! seed's reception confirmation coming back (S110/S155) and how the second message to that
//! recipient goes fast. Learned entries are addresses only, never domains, and never override
//! the operator's tables (routing rules 1-3 come first); an address an operator's table
//! already routes is not learned at all. They expire `learning.lifetime` after they were last
//! confirmed ([`sweep`]).

pub mod claim;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, SpfResult, spf::verify::SpfParameters};
use sipmta_rules::{E164, Evidence, NumberPlan};
use sipmta_store::{QueueId, Store, now};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::dsn::ParsedAction;
use crate::routing::Routing;
pub use claim::{Claim, Form};

/// A learned entry is rewritten (and its lifetime restarted) at most this often when the same
/// number is announced again: every rewrite makes the daemon rebuild its routing tables.
const REFRESH: u64 = 86_400;

/// Our announcement for mail leaving this site: the header line, or `None` when announcing is
/// off or no own number is configured. Numbers that do not fit the plan are left out (the fast
/// path refuses them at start anyway).
pub fn announcement(config: &Config, plan: &NumberPlan) -> Option<String> {
    if !config.learning.announce || !config.fastpath.enabled {
        return None;
    }
    let own = config.fastpath.numbers.first()?;
    plan.normalise(&own.number).ok().map(|tel| claim::header_line(&tel))
}

/// `message` as it leaves our site: a client's `X-Fastpath-Tel` (a destination hint, already
/// used for routing) removed and `announcement` put in its place, above the rest.
pub fn announce(announcement: &str, message: Vec<u8>) -> Vec<u8> {
    let body = claim::strip(&message).unwrap_or(message);
    let mut out = Vec::with_capacity(announcement.len() + body.len());
    out.extend_from_slice(announcement.as_bytes());
    out.extend_from_slice(&body);
    out
}

/// How an announcing message reached us.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Its queue id (history lines go there).
    pub id: QueueId,
    /// The connecting address (SPF's `<ip>`).
    pub ip: IpAddr,
    /// The EHLO name.
    pub helo: String,
    /// The MAIL FROM address, empty for the null sender.
    pub sender: String,
    /// The RCPT addresses.
    pub rcpts: Vec<String>,
    /// The caller's number when it came over a fast-path call.
    pub sip_caller: Option<String>,
}

/// Checks claims and writes the learned table.
///
/// It also holds what the site puts on mail leaving it ([`Learner::stamp`]): our number and
/// our DKIM signature, which is what lets the other side learn it.
pub struct Learner {
    /// Our announcement header line for mail leaving the site ([`announcement`]).
    pub announcement: Option<String>,
    /// Our DKIM keys.
    dkim: crate::dkim::Signers,
    config: Arc<Config>,
    store: Store,
    routing: Arc<Routing>,
    auth: MessageAuthenticator,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner").finish_non_exhaustive()
    }
}

impl Learner {
    /// A learner asking DNS through `resolver` (the relay's, so tests' nameservers apply).
    /// Fails when a DKIM key cannot be read.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        routing: Arc<Routing>,
        resolver: &crate::relay::resolve::Resolver,
    ) -> Result<Learner, crate::dkim::KeyError> {
        let plan = store.number_plan(&config.routing.country_code).unwrap_or_default();
        let announcement = announcement(&config, &plan);
        let dkim = crate::dkim::Signers::new(&config.dkim)?;
        Ok(Learner { announcement, dkim, config, store, routing, auth: MessageAuthenticator(resolver.tokio()) })
    }

    /// Whether [`Learner::stamp`] would change anything (an announcement or a DKIM key), so
    /// callers skip copying the message when it would not.
    pub fn stamps(&self) -> bool {
        self.announcement.is_some() || !self.dkim.is_empty()
    }

    /// `message` as it leaves the site: with our announcement when `announce` (see
    /// [`announce`]), then signed with the From domain's DKIM key, if we hold one. A signing
    /// failure is logged and the message goes unsigned: mail is not held back for it.
    pub fn stamp(&self, id: QueueId, message: Vec<u8>, announce: bool) -> Vec<u8> {
        let message = match (announce, self.announcement.as_deref()) {
            (true, Some(line)) => self::announce(line, message),
            _ => message,
        };
        match self.dkim.sign(&message) {
            Some(Ok(fields)) => {
                let mut out = Vec::with_capacity(fields.len() + message.len());
                out.extend_from_slice(fields.as_bytes());
                out.extend_from_slice(&message);
                out
            }
            Some(Err(e)) => {
                warn!(queue_id = %id, error = %e, "DKIM signing failed; the message goes unsigned");
                message
            }
            None => message,
        }
    }

    /// The claim in a message received from another site, if learning is on and it has one.
    pub fn claim(&self, id: QueueId, message: &[u8]) -> Option<Claim> {
        if !self.config.learning.learn {
            return None;
        }
        // The live tables carry the number plan: no store read per message.
        let tables = self.routing.tables();
        match claim::read(message, tables.plan()) {
            Ok(c) => c,
            Err(e) => {
                info!(queue_id = %id, reason = %e, "announced number ignored");
                let _ = self.store.record(id, None, format!("announced number ignored: {e}"));
                None
            }
        }
    }

    /// Check `claim` and learn what it proves, within `learning.check_timeout`. Each outcome
    /// is logged and written to the message's history.
    pub async fn check(&self, arrival: &Arrival, message: &[u8], claim: &Claim) {
        let budget = self.config.learning.check_timeout.0;
        let proven = match tokio::time::timeout(budget, self.prove(arrival, message, claim)).await {
            Ok(Ok(p)) => p,
            Ok(Err(why)) => {
                info!(queue_id = %arrival.id, tel = %claim.tel, reason = %why, "announced number not learned");
                let _ = self.store.record(arrival.id, None, format!("announced number {} not learned: {why}", claim.tel));
                return;
            }
            Err(_) => {
                warn!(queue_id = %arrival.id, tel = %claim.tel, budget = ?budget, "announced number not learned: the check took too long");
                let _ = self.store.record(arrival.id, None, format!("announced number {} not learned: check timed out", claim.tel));
                return;
            }
        };
        for (address, proof) in proven {
            self.remember(arrival.id, &address, &claim.tel, &proof);
        }
    }

    /// The addresses the claim is proven for, with the proof; or why none.
    async fn prove(&self, arrival: &Arrival, message: &[u8], claim: &Claim) -> Result<Vec<(String, String)>, String> {
        let caller = self.config.learning.trust_sip_identity.then_some(arrival.sip_caller.as_deref()).flatten();
        let by_call = caller == Some(claim.tel.0.as_str());
        let parsed = AuthenticatedMessage::parse(message).ok_or("the message cannot be parsed")?;
        let signers: Vec<(String, String)> = self
            .auth
            .verify_dkim(&parsed)
            .await
            .into_iter()
            .filter(|o| o.result() == &DkimResult::Pass)
            .filter_map(|o| o.signature().cloned())
            .filter(|s| s.h.iter().any(|h| h.eq_ignore_ascii_case(claim.form.header())))
            .map(|s| (s.d, s.s))
            .collect();
        let dkim_for =
            |domain: &str| signers.iter().find(|(d, _)| claim::aligned(domain, d)).map(|(d, s)| format!("DKIM pass d={d} s={s}"));
        if arrival.sender.is_empty() {
            return self.prove_report(arrival, message, claim, &dkim_for, by_call);
        }
        if let Some(from) = &claim.from
            && let Some(proof) = dkim_for(sipmta_rules::domain_of(from).unwrap_or_default())
        {
            return Ok(vec![(from.clone(), proof)]);
        }
        let sender = arrival.sender.to_lowercase();
        let spf = self.auth.verify_spf(SpfParameters::verify_mail_from(arrival.ip, &arrival.helo, &self.config.hostname, &sender)).await;
        if spf.result() == SpfResult::Pass {
            return Ok(vec![(sender.clone(), format!("SPF pass for {} from {}", spf.domain(), arrival.ip))]);
        }
        if by_call {
            return Ok(vec![(sender, format!("fast-path call from {}", claim.tel))]);
        }
        Err(format!(
            "no DKIM signature of the From domain covering {}, SPF {} for the MAIL FROM domain{}",
            claim.form.header(),
            spf_word(spf.result()),
            if arrival.sip_caller.is_some() && !by_call { ", and the call came from another number or is not trusted" } else { "" }
        ))
    }

    /// A DSN about mail we relayed: the recipients it reports delivered or relayed.
    fn prove_report(
        &self,
        arrival: &Arrival,
        message: &[u8],
        claim: &Claim,
        dkim_for: &dyn Fn(&str) -> Option<String>,
        by_call: bool,
    ) -> Result<Vec<(String, String)>, String> {
        let hint = arrival.rcpts.iter().find_map(|r| crate::relay::tracking::parse_bounce_address(&self.config, r));
        let observed = crate::relay::tracking::identify(&self.store, message, &arrival.rcpts, hint)
            .ok_or("a message from the null sender that is not a DSN about mail we relayed")?;
        let mut proven = Vec::new();
        for r in &observed.dsn.recipients {
            let success =
                matches!(r.action, ParsedAction::Known(a) if matches!(a, crate::dsn::Action::Delivered | crate::dsn::Action::Relayed));
            let ours = observed.tracked.recipients.iter().any(|(a, _)| a.eq_ignore_ascii_case(&r.final_recipient));
            if !success || !ours {
                continue;
            }
            let address = r.final_recipient.to_lowercase();
            let proof = dkim_for(sipmta_rules::domain_of(&address).unwrap_or_default())
                .or_else(|| by_call.then(|| format!("fast-path call from {}", claim.tel)));
            if let Some(proof) = proof {
                proven.push((address, format!("{proof}, DSN about message {}", observed.tracked.id)));
            }
        }
        if proven.is_empty() {
            return Err("the DSN reports no delivery of ours signed by the recipient's domain or sent over a call from the number".into());
        }
        Ok(proven)
    }

    /// Store one proven address, unless an operator's table already routes it or it is ours.
    fn remember(&self, id: QueueId, address: &str, tel: &E164, proof: &str) {
        let domain = sipmta_rules::domain_of(address).unwrap_or_default();
        let skip = |why: String| {
            info!(queue_id = %id, address, tel = %tel, reason = %why, "announced number not learned");
            let _ = self.store.record(id, None, format!("announced number {tel} for {address} not learned: {why}"));
        };
        if self.config.is_local_domain(domain) {
            return skip("the address is in one of our own domains".into());
        }
        let decision = self.routing.decide(&self.config, &[address.to_owned()], b"").pop();
        if let Some(d) = decision
            && matches!(d.evidence, Evidence::NumberInAddress { .. } | Evidence::AddressTable { .. } | Evidence::KeywordInAddress { .. })
        {
            return skip(format!("the operator's tables decide it ({})", d.evidence));
        }
        match self.store.learned_entry(address) {
            Ok(Some(old)) if old.tel == *tel && now().saturating_sub(old.at) < REFRESH => {
                debug!(queue_id = %id, address, tel = %tel, "announced number already learned");
                return;
            }
            _ => {}
        }
        let evidence = format!("{proof} (message {id})");
        if let Err(e) = self.store.learn(address, tel.clone(), &evidence) {
            warn!(queue_id = %id, address, error = %e, "cannot store a learned number");
            return;
        }
        info!(queue_id = %id, address, tel = %tel, proof, "number learned");
        let _ = self.store.record(id, Some(address), format!("learned {tel} for {address}: {proof}"));
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// Forget learned numbers older than `learning.lifetime`, now and then until `stop`.
pub async fn sweep(store: Store, lifetime: Duration, mut stop: watch::Receiver<bool>) {
    // Often enough that an entry outlives its lifetime by at most a tenth of it (an hour at
    // most), rarely enough to cost nothing.
    let every = (lifetime / 10).clamp(Duration::from_millis(200), Duration::from_secs(3600));
    loop {
        let cutoff = now().saturating_sub(lifetime.as_secs());
        match store.expire_learned(cutoff) {
            Ok(gone) => {
                for address in gone {
                    info!(address, "learned number expired");
                }
            }
            Err(e) => warn!(error = %e, "cannot expire learned numbers"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = crate::server::stopped(&mut stop) => return,
        }
    }
}
