//! `sipmta queue list|show|flush|hold|release|delete` (what `mailq` and `postqueue -f` /
//! `postsuper -h|-H|-d` do on a Postfix system).
//!
//! While the daemon runs the commands go through its admin API, which also wakes the queue
//! manager after a change; otherwise they act on the store itself (see [`super::backend`]). The
//! output is the same either way. `--json` prints what the API answers, for scripts.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use sipmta_rules::Route;
use sipmta_store::{Envelope, Notify, QueueId, RcptState, Recipient, Ret};

use super::backend::Backend;
use crate::admin::QueueEntry;
use crate::queue_control::{Action, Change, plural};

/// Queue inspection and control.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// One block per message: id, size, arrival, sender, then each recipient with its state,
    /// attempts, next attempt and last reply.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Everything about one message: envelope, DSN parameters, each recipient's state, attempts,
    /// last reply, remote MTA and the DSNs seen for it, and the history.
    Show {
        /// The queue id as printed by `queue list` or in the `250` reply.
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Retry now: every queued or deferred recipient of ID (of every message without ID) is
    /// due at once. Held recipients stay held.
    Flush {
        /// The queue id; without it the whole queue is flushed.
        id: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Put the queued and deferred recipients of a message on hold: they are not attempted
    /// until released, but still expire at the end of the queue lifetime.
    Hold {
        /// The queue id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Release the held recipients of a message; they are attempted at once.
    Release {
        /// The queue id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Remove a message from the queue without sending any DSN (like `postsuper -d`). Its
    /// history is kept and records the deletion.
    Delete {
        /// The queue id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
}

/// Output format options shared by every command.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Format {
    /// Print JSON (the admin API's answer) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Option<&Path>, cmd: QueueCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`.
pub(super) fn execute(backend: &Backend, cmd: QueueCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        QueueCommand::List { format } => {
            let queue = backend.queue()?;
            if format.json {
                return json(out, &queue);
            }
            for env in &queue {
                list_entry(out, env)?;
            }
            writeln!(out, "-- {} in the queue", plural(queue.len(), "message"))?;
        }
        QueueCommand::Show { id, format } => {
            let qid = parse_id(&id)?;
            let Some(entry) = backend.message(qid)? else {
                bail!("no such message: {id}");
            };
            if format.json {
                return json(out, &entry);
            }
            show(out, qid, entry)?;
        }
        QueueCommand::Flush { id, format } => {
            let qid = id.as_deref().map(parse_id).transpose()?;
            changed(out, &backend.flush(qid)?, format)?;
        }
        QueueCommand::Hold { id, format } => changed(out, &backend.hold(parse_id(&id)?)?, format)?,
        QueueCommand::Release { id, format } => changed(out, &backend.release(parse_id(&id)?)?, format)?,
        QueueCommand::Delete { id, format } => changed(out, &backend.delete(parse_id(&id)?)?, format)?,
    }
    Ok(())
}

pub(super) fn parse_id(id: &str) -> Result<QueueId> {
    id.parse().with_context(|| format!("{id:?} is not a queue id"))
}

pub(super) fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

pub(super) fn date(secs: u64) -> String {
    mail_builder::headers::date::Date::new(i64::try_from(secs).unwrap_or(i64::MAX)).to_rfc822()
}

/// The text after a change: what changed, or that there was nothing to do.
fn changed(out: &mut dyn Write, change: &Change, format: Format) -> Result<()> {
    if format.json {
        return json(out, change);
    }
    let n = change.recipients();
    let text = match (change.action, change.id) {
        (Action::Delete, Some(id)) => format!("deleted {id} without a DSN ({} undelivered)", plural(n, "recipient")),
        (Action::Flush, None) if n == 0 => "nothing to flush: no queued or deferred recipients in the queue".to_owned(),
        (Action::Flush, None) => format!("flushed {} of {}", plural(n, "recipient"), plural(change.messages.len(), "message")),
        (action, Some(id)) if n == 0 => {
            let why = if action == Action::Release { "no held recipients" } else { "no queued or deferred recipients" };
            format!("{id}: nothing to {action} ({why})")
        }
        (action, id) => {
            let done = match action {
                Action::Flush => "flushed",
                Action::Hold => "held",
                Action::Release => "released",
                Action::Delete => "deleted",
            };
            let of = id.map(|id| format!(" of {id}")).unwrap_or_default();
            format!("{done} {}{of}", plural(n, "recipient"))
        }
    };
    writeln!(out, "{text}")?;
    Ok(())
}

/// `queue list`: a block per message.
fn list_entry(out: &mut dyn Write, env: &Envelope) -> Result<()> {
    writeln!(out, "{}  {:>8}  {}  {}", env.id, env.size, date(env.received), sender(env))?;
    for r in &env.recipients {
        let when = match r.state {
            RcptState::Queued | RcptState::Deferred => format!(", next {}", next_attempt(r)),
            _ => String::new(),
        };
        writeln!(out, "    {:<9} {}  (attempts {}{when})", r.state.to_string(), r.address, r.attempts)?;
        if let Some(reply) = &r.last_reply {
            writeln!(out, "              {reply}")?;
        }
    }
    Ok(())
}

/// `queue show`: the envelope as labelled lines, then the history.
fn show(out: &mut dyn Write, id: QueueId, QueueEntry { envelope, history }: QueueEntry) -> Result<()> {
    match envelope {
        Some(env) => {
            writeln!(out, "queue id:      {}", env.id)?;
            writeln!(out, "received:      {}", date(env.received))?;
            if !env.origin.peer.is_empty() {
                let o = &env.origin;
                let user = o.auth_user.as_deref().map(|u| format!(", user {u}")).unwrap_or_default();
                let tls = if o.tls { ", TLS" } else { "" };
                writeln!(out, "from:          {} ({}) on {}{user}{tls}", o.helo, o.peer, o.listener)?;
            }
            writeln!(out, "sender:        {}", sender(&env))?;
            writeln!(out, "size:          {} octets", env.size)?;
            let ret = match env.ret {
                Some(Ret::Full) => "FULL",
                Some(Ret::Hdrs) => "HDRS",
                None => "-",
            };
            writeln!(out, "DSN:           ENVID {}, RET {ret}", env.env_id.as_deref().unwrap_or("-"))?;
            let body = match env.body {
                sipmta_store::Body::SevenBit => "7BIT",
                sipmta_store::Body::EightBitMime => "8BITMIME",
            };
            writeln!(out, "body:          {body}{}", if env.smtputf8 { ", SMTPUTF8" } else { "" })?;
            for r in &env.recipients {
                recipient(out, r)?;
            }
        }
        None => writeln!(out, "{id}: no longer queued (every recipient finished, or deleted)")?,
    }
    writeln!(out, "history:")?;
    for ev in history {
        let who = ev.recipient.map(|r| format!(" <{r}>")).unwrap_or_default();
        writeln!(out, "  {}{who} {}", date(ev.at), ev.text)?;
    }
    Ok(())
}

fn recipient(out: &mut dyn Write, r: &Recipient) -> Result<()> {
    writeln!(out, "recipient {}", r.address)?;
    let since = if r.updated > 0 { format!(" since {}", date(r.updated)) } else { String::new() };
    writeln!(out, "    state:         {}{since}", r.state)?;
    let route = match &r.route {
        Route::Local => "local".to_owned(),
        Route::Relay => "relay".to_owned(),
        // With fastpath.enabled off such recipients are relayed; the decision stays.
        Route::Fast { tel } => format!("fast path to {tel}"),
    };
    writeln!(out, "    route:         {route}")?;
    if let Some(evidence) = &r.evidence {
        writeln!(out, "    because:       {evidence}")?;
    }
    writeln!(out, "    notify:        {}", notify(r.notify))?;
    if let Some(orcpt) = &r.orcpt {
        writeln!(out, "    orcpt:         {orcpt}")?;
    }
    writeln!(out, "    attempts:      {}", r.attempts)?;
    if r.is_pending() {
        writeln!(out, "    next attempt:  {}", next_attempt(r))?;
    }
    let optional = [("last reply:    ", &r.last_reply), ("remote MTA:    ", &r.remote_mta), ("DSNs seen:     ", &r.remote_dsn)];
    for (label, value) in optional {
        if let Some(value) = value {
            writeln!(out, "    {label}{value}")?;
        }
    }
    Ok(())
}

fn sender(env: &Envelope) -> &str {
    if env.sender.is_empty() { "<>" } else { env.sender.as_str() }
}

fn next_attempt(r: &Recipient) -> String {
    if r.next_attempt == 0 { "now".to_owned() } else { date(r.next_attempt) }
}

/// RFC 3461 §4.1 `NOTIFY` as it was given.
fn notify(n: Option<Notify>) -> String {
    let Some(n) = n else {
        return "(not given: FAILURE,DELAY)".to_owned();
    };
    if n.never {
        return "NEVER".to_owned();
    }
    let kinds: Vec<&str> = [(n.success, "SUCCESS"), (n.failure, "FAILURE"), (n.delay, "DELAY")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    kinds.join(",")
}
