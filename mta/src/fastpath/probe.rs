//! OPTIONS before the first INVITE to a number (issue 7 item 4, "Capability answer"). A
//! receiving site answers SIP OPTIONS for its numbers with the protocols it accepts
//! (`m=application 0 TCP smtp http`, RFC 3261 §11.2); the sender uses that to fill its protocol
//! table (DESIGN.md "FP/1 preamble") before it calls.
//!
//! When `fastpath.probe_options` is on and the table names no protocol for the number (no
//! entry yet, or one a failed `USE` cleared), [`before_invite`] sends OPTIONS along the route
//! the INVITE will take, within `fastpath.answer_budget`, and then:
//!
//! - the peer lists a protocol the sender can use: it is stored as negotiated, so the call's
//!   FP/1 preamble skips `PROTOS?` and sends `USE` at once;
//! - the peer lists none: no INVITE is sent; the reason goes back to the queue, which relays
//!   the recipients, as after a `488 Not Acceptable Here`;
//! - nothing is learned (no answer, `404`, `405` from a peer that does not do OPTIONS, a `2xx`
//!   without SDP): the INVITE goes ahead as without probing, and its `PROTOS?` fills the
//!   table. OPTIONS is advice; only the INVITE decides whether the number takes the call.
//!   A peer that swallows OPTIONS costs up to the budget before each INVITE until a call
//!   has filled the table; one that answers `405` at once costs a round trip.
//!
//! The decision is the pure [`decide`], unit-tested here; the daemon tests show it end to end.

use sipfast::ua::ProbeError;
use tracing::{debug, info};

use super::FastPath;
use super::locate::Target;

/// The protocols the fast-path sender can speak over a stream: the mail it carries is SMTP.
/// [`super::send`] asks FP/1 for these alone, so a protocol outside them is of no use here.
pub const SPOKEN: &[&str] = &["smtp"];

/// What an OPTIONS answer means for the call to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The first of our protocols that the peer lists and the sender speaks.
    Use(String),
    /// The peer described its protocols and none of them will do: relay without an INVITE.
    NoCommon {
        /// What it listed, in its order (empty: no fast-path media line at all).
        listed: Vec<String>,
    },
    /// The probe said nothing usable; why, for the log.
    Unknown(String),
}

/// Decide on `probed`, the protocols a peer listed (or why it listed none), given `ours`
/// (`fastpath.protocols`, preference order).
pub fn decide(ours: &[String], probed: Result<Vec<String>, ProbeError>) -> Decision {
    match probed {
        Ok(listed) => match ours.iter().find(|p| SPOKEN.contains(&p.as_str()) && listed.contains(p)) {
            Some(p) => Decision::Use(p.clone()),
            None => Decision::NoCommon { listed },
        },
        Err(e) => Decision::Unknown(e.to_string()),
    }
}

/// Probe `tel` at `target` if the table does not know its protocol: see the module docs. `Err`
/// holds the reason to relay instead of calling.
pub async fn before_invite(fp: &FastPath, tel: &str, target: &Target) -> Result<(), String> {
    let cfg = &fp.config.fastpath;
    if !cfg.probe_options || fp.store.protocol(tel).ok().flatten().is_some_and(|e| e.protocol.is_some()) {
        return Ok(());
    }
    let budget = cfg.answer_budget.0;
    let probed = match target {
        Target::Proxy => fp.agent.probe(tel, budget).await,
        Target::Direct { uri, addr, .. } => fp.agent.probe_uri(tel, uri, *addr, budget).await,
    };
    match decide(&cfg.protocols, probed) {
        Decision::Use(protocol) => {
            info!(tel, %protocol, "protocol learned from OPTIONS");
            if let Err(e) = fp.store.protocol_negotiated(tel, &protocol) {
                debug!(error = %e, "cannot update the protocol table");
            }
            Ok(())
        }
        Decision::NoCommon { listed } => {
            let listed = if listed.is_empty() { "none".to_owned() } else { listed.join(" ") };
            Err(format!("OPTIONS to {tel}: it accepts none of our fast-path protocols (it lists: {listed})"))
        }
        Decision::Unknown(why) => {
            debug!(tel, %why, "OPTIONS told nothing; calling anyway");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_first_of_ours_that_the_peer_lists_and_mail_can_use_is_chosen() {
        assert_eq!(decide(&list(&["smtp"]), Ok(list(&["http", "smtp"]))), Decision::Use("smtp".into()));
        assert_eq!(decide(&list(&["http", "smtp"]), Ok(list(&["http", "smtp"]))), Decision::Use("smtp".into()), "http carries no mail");
    }

    #[test]
    fn a_peer_listing_none_of_ours_gets_no_invite() {
        assert_eq!(decide(&list(&["smtp"]), Ok(list(&["http"]))), Decision::NoCommon { listed: list(&["http"]) });
        assert_eq!(decide(&list(&["smtp", "http"]), Ok(list(&["http"]))), Decision::NoCommon { listed: list(&["http"]) });
        assert_eq!(decide(&list(&["smtp"]), Ok(vec![])), Decision::NoCommon { listed: vec![] }, "a telephone");
    }

    #[test]
    fn a_probe_that_says_nothing_leaves_the_decision_to_the_invite() {
        let errors = [
            ProbeError::Timeout,
            ProbeError::NoDescription,
            ProbeError::BadDescription("SDP does not start with v=0".into()),
            ProbeError::Rejected { code: 405, reason: "Method Not Allowed".into() },
            ProbeError::Rejected { code: 404, reason: "Not Found".into() },
            ProbeError::Transport("connection refused".into()),
        ];
        for e in errors {
            let why = e.to_string();
            assert_eq!(decide(&list(&["smtp"]), Err(e)), Decision::Unknown(why));
        }
    }
}
