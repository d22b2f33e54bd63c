//! `sipmta learned list|rm`: the learned table (DESIGN.md "Routing rules", rule 4; issue 7):
//! numbers other sites announced in their mail (`X-Fastpath-Tel`) and proved with DKIM, SPF
//! or the fast-path call they came over. They route mail to the address over the fast path
//! unless an operator's entry says otherwise, and are forgotten `learning.lifetime` after they
//! were last confirmed.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use super::backend::Backend;
use super::queue::{Format, date, json};
use crate::config::Config;
use crate::queue_control::plural;

/// The learned table.
#[derive(Debug, Subcommand)]
pub enum LearnedCommand {
    /// List learned numbers: address, number, when learned, when it expires, and the proof.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Forget ADDRESS's learned number; its mail is relayed again until it is learned anew
    /// (or routed by `sipmta route add`, which always wins over a learned number).
    Rm {
        /// The address (any case).
        address: String,
        #[command(flatten)]
        format: Format,
    },
}

pub fn run(config: Option<&Path>, cmd: LearnedCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, &config, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`.
pub(super) fn execute(backend: &Backend, config: &Config, cmd: LearnedCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        LearnedCommand::List { format } => {
            let rows = backend.learned(config)?;
            if format.json {
                return json(out, &rows);
            }
            for r in &rows {
                writeln!(out, "{}  {}  learned {}  expires {}", r.address, r.tel, date(r.at), date(r.expires))?;
                writeln!(out, "    {}", r.evidence)?;
            }
            writeln!(out, "-- {}", plural(rows.len(), "learned number"))?;
        }
        LearnedCommand::Rm { address, format } => {
            backend.forget(&address)?;
            if format.json {
                return json(out, &serde_json::json!({ "removed": address.to_lowercase() }));
            }
            writeln!(out, "forgot the learned number of {}", address.to_lowercase())?;
        }
    }
    Ok(())
}
