//! `sipmta queue list|show` (what `mailq` shows on a Postfix system).

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sipmta_store::QueueId;

use super::backend::open_store;

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
    let store = open_store(&config)?;
    match cmd {
        QueueCommand::List => {
            let mut n = 0;
            for env in store.queue() {
                let env = env?;
                n += 1;
                let sender = if env.sender.is_empty() { "<>" } else { env.sender.as_str() };
                println!("{}  {:>8}  {}  {sender}", env.id, env.size, date(env.received));
                for r in &env.recipients {
                    let reply = r.last_reply.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
                    println!("    {:<10} {}{reply}", r.state.to_string(), r.address);
                }
            }
            println!("-- {n} message{} in the queue", if n == 1 { "" } else { "s" });
        }
        QueueCommand::Show { id } => {
            let qid: QueueId = id.parse().with_context(|| format!("{id:?} is not a queue id"))?;
            let history = store.history(qid)?;
            match store.envelope(qid)? {
                Some(env) => println!("{}", serde_json::to_string_pretty(&env)?),
                None if history.is_empty() => bail!("no such message: {id}"),
                None => println!("{qid}: no longer queued (every recipient finished)"),
            }
            println!("history:");
            for ev in history {
                let who = ev.recipient.map(|r| format!(" <{r}>")).unwrap_or_default();
                println!("  {}{who} {}", date(ev.at), ev.text);
            }
        }
    }
    Ok(())
}

fn date(secs: u64) -> String {
    mail_builder::headers::date::Date::new(secs as i64).to_rfc822()
}
