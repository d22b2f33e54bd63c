//! `sipmta history [--rcpt ADDR] [--since T]`: what happened to mail, across every message,
//! queued or long gone (history outlives the spool). One line per event, oldest first:
//! date, queue id, recipient (when the event is about one), text.
//!
//! While the daemon runs this goes through its admin API, otherwise to the store itself (see
//! [`super::backend`]); the output is the same either way.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Args;
use sipmta_store::now;

use super::backend::Backend;
use super::queue::{Format, date, json};
use crate::queue_control::{HistoryFilter, parse_since};

/// Which events to show.
#[derive(Debug, Clone, Default, Args)]
pub struct HistoryArgs {
    /// Only events about this recipient (any case), with the events about the whole message
    /// (reception, DSNs, deletion) of the messages sent to it.
    #[arg(long, value_name = "ADDR")]
    pub rcpt: Option<String>,
    /// Only events since T: a duration ago (`90s`, `15m`, `2h`, `1d`, `1w`, `1h30m`) or Unix
    /// seconds.
    #[arg(long, value_name = "T", value_parser = since)]
    pub since: Option<u64>,
    #[command(flatten)]
    pub format: Format,
}

/// `--since` is turned into Unix seconds here, so the daemon and the store see the same time.
fn since(text: &str) -> Result<u64, String> {
    parse_since(text, now())
}

pub fn run(config: Option<&Path>, args: HistoryArgs) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, args, &mut std::io::stdout().lock())
}

/// Carry out the command, printing to `out`.
pub(super) fn execute(backend: &Backend, args: HistoryArgs, out: &mut dyn Write) -> Result<()> {
    let events = backend.history(&HistoryFilter { rcpt: args.rcpt, since: args.since })?;
    if args.format.json {
        return json(out, &events);
    }
    for e in events {
        let who = e.recipient.map(|r| format!("<{r}> ")).unwrap_or_default();
        writeln!(out, "{}  {}  {who}{}", date(e.at), e.id, e.text)?;
    }
    Ok(())
}
