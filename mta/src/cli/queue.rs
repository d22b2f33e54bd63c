//! `sipmta queue list|show` (what `mailq` shows on a Postfix system).
//!
//! While the daemon runs the commands go through its admin API, otherwise to the store itself
//! (see [`super::backend`]); the output is the same either way.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sipmta_store::QueueId;

use super::backend::Backend;
use crate::admin::QueueEntry;

/// Queue inspection.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// One block per message: id, size, arrival, sender, then each recipient with its state.
    List,
    /// Everything about one message: envelope, DSN parameters, recipients, history.
    Show {
        /// The queue id as printed by `queue list` or in the `250` reply.
        id: String,
    },
}

pub fn run(config: Option<&Path>, cmd: QueueCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`.
pub(super) fn execute(backend: &Backend, cmd: QueueCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        QueueCommand::List => {
            let queue = backend.queue()?;
            for env in &queue {
                let sender = if env.sender.is_empty() { "<>" } else { env.sender.as_str() };
                writeln!(out, "{}  {:>8}  {}  {sender}", env.id, env.size, date(env.received))?;
                for r in &env.recipients {
                    let reply = r.last_reply.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
                    writeln!(out, "    {:<10} {}{reply}", r.state.to_string(), r.address)?;
                }
            }
            let n = queue.len();
            writeln!(out, "-- {n} message{} in the queue", if n == 1 { "" } else { "s" })?;
        }
        QueueCommand::Show { id } => {
            let qid: QueueId = id.parse().with_context(|| format!("{id:?} is not a queue id"))?;
            let Some(QueueEntry { envelope, history }) = backend.message(qid)? else {
                bail!("no such message: {id}");
            };
            match envelope {
                Some(env) => writeln!(out, "{}", serde_json::to_string_pretty(&env)?)?,
                None => writeln!(out, "{qid}: no longer queued (every recipient finished)")?,
            }
            writeln!(out, "history:")?;
            for ev in history {
                let who = ev.recipient.map(|r| format!(" <{r}>")).unwrap_or_default();
                writeln!(out, "  {}{who} {}", date(ev.at), ev.text)?;
            }
        }
    }
    Ok(())
}

fn date(secs: u64) -> String {
    mail_builder::headers::date::Date::new(secs as i64).to_rfc822()
}
