//! DSN tracking (DESIGN.md "Relay queue and DSN", issue 3 item 6).
//!
//! Every relayed message goes out with an envelope id: the sender's ENVID, or our queue id.
//! When it is relayed we remember it ([`remember`]) under `id:<queue id>` and, for a sender's
//! own ENVID, under `envid:<sender>\0<ENVID>` (ENVIDs are only unique per sender). DSNs that
//! come back are recognised by `Original-Envelope-Id` ([`observe`]) and what they say is
//! recorded against the original queue entry (its history, and `remote_dsn` on the recipient
//! while it is still queued).
//!
//! With `relay.return_path_rewrite`, relayed mail carries `bounce+<queue id>@<hostname>` as
//! its return path, so DSNs from further down come here first even when the sender did not ask
//! for them; they are recorded and passed on to the sender when its NOTIFY asks for them.

use sipmta_store::{Envelope, Notify, QueueId, Store, Tracked, now};
use tracing::{info, warn};

use crate::config::Config;
use crate::dsn::{self, ParsedAction, ParsedDsn};

const BOUNCE_PREFIX: &str = "bounce+";

/// The return path for relayed mail when `return_path_rewrite` is on.
pub fn bounce_address(config: &Config, id: QueueId) -> String {
    format!("{BOUNCE_PREFIX}{id}@{}", config.hostname)
}

/// The queue id in one of our bounce addresses.
pub fn parse_bounce_address(config: &Config, address: &str) -> Option<QueueId> {
    if !config.relay.return_path_rewrite {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    if !sipmta_rules::same_domain(domain, &config.hostname) {
        return None;
    }
    let hex = local.get(..BOUNCE_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(BOUNCE_PREFIX)).map(|_| &local[BOUNCE_PREFIX.len()..])?;
    (hex.len() == 16).then(|| hex.parse().ok()).flatten()
}

/// Whether `id` is a message we relayed (so its bounce address takes mail).
pub fn is_tracked(store: &Store, id: QueueId) -> bool {
    store.tracked(&key_for_id(id)).ok().flatten().is_some()
}

fn key_for_id(id: QueueId) -> String {
    format!("id:{id}")
}

fn key_for_envid(sender: &str, env_id: &str) -> String {
    format!("envid:{}\0{env_id}", sender.to_lowercase())
}

/// Remember that these recipients of `env` were relayed (a later DSN can then be matched).
pub fn remember(store: &Store, env: &Envelope, relayed: Vec<(String, Option<Notify>)>) {
    let tracked = Tracked { id: env.id, sender: env.sender.clone(), recipients: relayed, at: now() };
    let mut keys = vec![key_for_id(env.id)];
    if let Some(env_id) = &env.env_id {
        keys.push(key_for_envid(&env.sender, env_id));
    }
    for key in keys {
        if let Err(e) = store.track(&key, &tracked) {
            warn!(queue_id = %env.id, error = %e, "cannot remember the relayed message for DSN tracking");
        }
    }
}

/// Relayed recipients that the handover journal finished at start (the crash came between the
/// next hop's `250` and our record of it): remembered for DSN tracking as the record would
/// have, so that the next hop's later reports about them still find their message.
pub fn remember_recovered(store: &Store, handovers: &[(QueueId, usize)]) {
    let mut ids: Vec<QueueId> = handovers.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let Ok(Some(env)) = store.envelope(id) else { continue };
        let relayed: Vec<(String, Option<Notify>)> = handovers
            .iter()
            .filter(|(i, _)| *i == id)
            .filter_map(|(_, index)| env.recipients.get(*index))
            .filter(|r| r.state == sipmta_store::RcptState::Relayed)
            .map(|r| (r.address.clone(), r.notify))
            .collect();
        if !relayed.is_empty() {
            remember(store, &env, relayed);
        }
    }
}

/// What [`observe`] matched.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The original message.
    pub tracked: Tracked,
    /// The report.
    pub dsn: ParsedDsn,
}

/// Whether a message is a DSN about mail we relayed, and which. `rcpts` are the DSN's own
/// recipients (the original sender, or our bounce address) and `hint` the queue id of a
/// bounce address.
pub fn identify(store: &Store, message: &[u8], rcpts: &[String], hint: Option<QueueId>) -> Option<Observed> {
    let dsn = dsn::parse(message)?;
    let tracked = find(store, &dsn, rcpts, hint)?;
    Some(Observed { tracked, dsn })
}

/// [`identify`], then record what the DSN says against the original message: a history line
/// per reported recipient and `remote_dsn` on recipients still queued.
pub async fn observe(store: &Store, message: &[u8], rcpts: &[String], hint: Option<QueueId>) -> Option<Observed> {
    let observed = identify(store, message, rcpts, hint)?;
    let (tracked, dsn) = (&observed.tracked, &observed.dsn);
    let reporter = dsn.reporting_mta.clone().unwrap_or_else(|| "a remote server".into());
    for r in &dsn.recipients {
        let action = match &r.action {
            ParsedAction::Known(a) => a.as_str().to_owned(),
            ParsedAction::Unknown(s) if s.is_empty() => "(no action)".into(),
            ParsedAction::Unknown(s) => s.clone(),
        };
        let status = (!r.status.is_empty()).then(|| r.status.clone());
        let detail = [Some(action), status, r.diagnostic.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        let text = format!("DSN from {reporter}: {detail}");
        info!(queue_id = %tracked.id, rcpt = %r.final_recipient, dsn = %detail, reporting_mta = %reporter, "DSN received for relayed mail");
        let _ = store.record(tracked.id, Some(&r.final_recipient), &text);
        let (addr, orcpt, note) = (r.final_recipient.clone(), r.original_recipient.clone(), text.clone());
        let _ = store
            .modify(tracked.id, move |env| {
                for rcpt in env.recipients.iter_mut() {
                    let orig = rcpt.orcpt.as_deref().and_then(|o| o.split_once(';')).map(|(_, a)| a);
                    if rcpt.address.eq_ignore_ascii_case(&addr)
                        || orcpt.as_deref().is_some_and(|o| Some(o) == orig || o.eq_ignore_ascii_case(&rcpt.address))
                    {
                        rcpt.remote_dsn = Some(note.clone());
                    }
                }
            })
            .await;
    }
    Some(observed)
}

fn find(store: &Store, dsn: &ParsedDsn, rcpts: &[String], hint: Option<QueueId>) -> Option<Tracked> {
    let mut keys = Vec::new();
    if let Some(id) = hint {
        keys.push(key_for_id(id));
    }
    if let Some(env_id) = &dsn.original_envelope_id {
        if let Ok(id) = env_id.parse::<QueueId>() {
            keys.push(key_for_id(id));
        }
        keys.extend(rcpts.iter().map(|r| key_for_envid(r, env_id)));
    }
    keys.iter().find_map(|k| store.tracked(k).ok().flatten())
}

/// Whether the original sender asked to hear what this DSN reports (RFC 3461 §4.1 per
/// recipient): true when any reported recipient's action is wanted.
pub fn sender_wants(observed: &Observed) -> bool {
    observed.dsn.recipients.iter().any(|r| {
        let notify = observed.tracked.recipients.iter().find(|(a, _)| a.eq_ignore_ascii_case(&r.final_recipient)).and_then(|(_, n)| *n);
        match &r.action {
            ParsedAction::Known(a) => dsn::wanted(notify, *a),
            ParsedAction::Unknown(_) => dsn::wanted(notify, dsn::Action::Failed),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_handover_recovered_at_start_is_remembered_for_dsn_tracking() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let env = Envelope {
            id: QueueId(0),
            received: now(),
            sender: "alice@example.org".into(),
            env_id: None,
            ret: None,
            body: sipmta_store::Body::SevenBit,
            smtputf8: false,
            size: 0,
            origin: sipmta_store::Origin::default(),
            recipients: ["a@remote.example", "b@remote.example"]
                .into_iter()
                .map(|a| sipmta_store::Recipient::new(a, sipmta_rules::Route::Relay))
                .collect(),
        };
        let id = store.accept(env, b"Subject: x\r\n\r\nhi\r\n".to_vec()).await.unwrap();
        store.note_handover(id, &[1], sipmta_store::RcptState::Relayed, "250 ok").unwrap();
        drop(store);
        let (store, recovery) = Store::open(dir.path()).unwrap();
        remember_recovered(&store, &recovery.handovers);
        let tracked = store.tracked(&key_for_id(id)).unwrap().expect("tracked");
        assert_eq!(tracked.recipients, [("b@remote.example".to_owned(), None)]);
    }

    #[test]
    fn bounce_addresses_round_trip_only_when_enabled() {
        let mut config = Config { hostname: "mx.test".into(), ..Config::default() };
        let id = QueueId(0x6B01_6172_0000_0001);
        let addr = bounce_address(&config, id);
        assert_eq!(addr, "bounce+6B01617200000001@mx.test");
        assert_eq!(parse_bounce_address(&config, &addr), None, "off by default");
        config.relay.return_path_rewrite = true;
        assert_eq!(parse_bounce_address(&config, &addr), Some(id));
        assert_eq!(parse_bounce_address(&config, "BOUNCE+6b01617200000001@MX.TEST"), Some(id));
        assert_eq!(parse_bounce_address(&config, "bounce+6B01617200000001@other.test"), None);
        assert_eq!(parse_bounce_address(&config, "bounce+xyz@mx.test"), None);
        assert_eq!(parse_bounce_address(&config, "alice@mx.test"), None);
    }
}
