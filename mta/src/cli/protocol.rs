//! `sipmta protocol list|rm`: the protocol table (DESIGN.md "FP/1 preamble"; seed 004, first
//! embodiment): which protocol each number we called agreed to over a fast-path stream, so the
//! next call skips `PROTOS?`. Removing an entry makes the next call negotiate again.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use sipmta_rules::NumberPlan;

use super::backend::Backend;
use super::queue::{Format, json};
use crate::queue_control::plural;

/// The protocol table.
#[derive(Debug, Subcommand)]
pub enum ProtocolCommand {
    /// List numbers with their agreed protocol, uses and failures.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Forget what NUMBER agreed to; the next call to it asks again (`PROTOS?`).
    Rm {
        /// The number, national (050-1234-5678) or E.164.
        number: String,
        #[command(flatten)]
        format: Format,
    },
}

pub fn run(config: Option<&Path>, cmd: ProtocolCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, &config.routing.country_code, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`; `country_code` is the configured one.
pub(super) fn execute(backend: &Backend, country_code: &str, cmd: ProtocolCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ProtocolCommand::List { format } => {
            let rows = backend.protocols()?;
            if format.json {
                return json(out, &rows);
            }
            for row in &rows {
                let e = &row.entry;
                let protocol = e.protocol.as_deref().unwrap_or("-");
                let failure = e.last_failure.as_deref().map(|f| format!("  last failure: {f}")).unwrap_or_default();
                writeln!(out, "{}  {protocol:<5}  {} uses  {} failures{failure}", row.number, e.uses, e.failures)?;
            }
            writeln!(out, "-- {}", plural(rows.len(), "number"))?;
        }
        ProtocolCommand::Rm { number, format } => {
            let plan = NumberPlan { country_code: country_code.to_owned(), prefixes: backend.prefixes()? };
            let e164 = plan.normalise(&number)?;
            backend.remove_protocol(&e164.0)?;
            if format.json {
                return json(out, &serde_json::json!({ "removed": e164.0 }));
            }
            writeln!(out, "removed {} from the protocol table", e164.0)?;
        }
    }
    Ok(())
}
