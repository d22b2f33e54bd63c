//! `sipmta route add|rm|list|import|export`: the address/domain table (DESIGN.md "Routing
//! rules": `abc@efg.com -> 050-1234-5678`, `efg.com -> ...`). The keyword table's commands
//! ([`super::keyword`]) are the same and share the code here.
//!
//! Numbers are checked with the number plan (the stored prefixes, `sipmta prefix list`, and
//! `routing.country_code`) and stored in E.164. While the daemon runs the commands go through
//! its admin API, otherwise to the store itself (see [`super::backend`]); the output is the same
//! either way. `--json` prints what the API answers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use sipmta_rules::number::NumberPlan;
use sipmta_store::{Table, TableEntry};

use super::backend::Backend;
use super::queue::{Format, json};
use crate::config::Config;
use crate::queue_control::plural;
use crate::tables::{self, NewEntry};
use sipmta_rules::Route;

/// The address/domain table.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route mail for an address, or a whole domain, over the fast path to NUMBER. An entry
    /// for the same address or domain is replaced.
    ///
    /// An address entry wins over its domain's entry. NUMBER may be national (050-1234-5678)
    /// or E.164 (+81 50 1234 5678), with hyphens, dots, spaces, full-width digits and dashes; it
    /// must match a prefix (`sipmta prefix list`) and is stored in E.164.
    Add {
        /// An address (abc@efg.com), a domain (efg.com: its addresses) or a parent domain
        /// (.efg.com: addresses in its subdomains); compared without regard to case.
        #[arg(value_name = "ADDRESS|DOMAIN")]
        key: String,
        /// The IP telephone number.
        number: String,
        /// A note shown by `list` and kept by `export`, e.g. "Kyoto office".
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Remove the entry of an address or domain.
    Rm {
        /// The address or domain.
        #[arg(value_name = "ADDRESS|DOMAIN")]
        key: String,
        #[command(flatten)]
        format: Format,
    },
    /// List the entries: address or domain, number in E.164 and national form, name.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Add or replace entries from a CSV file (`-` reads standard input), all or nothing.
    ///
    /// One entry per line: `address-or-domain,number[,name]`. Lines starting with # and blank
    /// lines are ignored, and so is a first line `key,number,name`. Fields may be in double
    /// quotes so they can hold commas; a quote inside is written twice ("a ""b"""). The file must
    /// be UTF-8.
    ///
    /// Every line is checked first: if any is bad, each bad line is reported with its line
    /// number and reason and nothing is imported. Otherwise entries for addresses or domains
    /// already in the table are replaced, the others added, and the counts printed. Entries not
    /// in the file are kept.
    Import {
        /// The CSV file (`sipmta route export` writes one).
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        #[command(flatten)]
        format: Format,
    },
    /// Print the table as CSV (the format `import` reads, numbers in E.164) on standard output.
    Export {
        #[command(flatten)]
        format: Format,
    },
    /// Show where mail to RCPT would go (local, fast path to a number, or relay) and why.
    ///
    /// Uses the running daemon's tables when it runs, else the stored ones. With --message the
    /// rules may also read that message's To, Cc, Subject, X-Fastpath-Tel and text (DESIGN.md
    /// "Routing rules" 5 and 6); without it only the address and the tables count.
    Explain {
        /// The recipient address.
        rcpt: String,
        /// A message (an .eml file, `-` for standard input) to read headers and text from.
        #[arg(long, value_name = "FILE.eml")]
        message: Option<PathBuf>,
        #[command(flatten)]
        format: Format,
    },
}

/// A table command, whichever table it is for.
pub(super) enum Op {
    Explain { rcpt: String, message: Option<PathBuf> },
    Add { key: String, number: String, name: Option<String> },
    Rm { key: String },
    List,
    Import { file: PathBuf },
    Export,
}

impl RouteCommand {
    fn split(self) -> (Op, Format) {
        match self {
            RouteCommand::Add { key, number, name, format } => (Op::Add { key, number, name }, format),
            RouteCommand::Rm { key, format } => (Op::Rm { key }, format),
            RouteCommand::List { format } => (Op::List, format),
            RouteCommand::Import { file, format } => (Op::Import { file }, format),
            RouteCommand::Export { format } => (Op::Export, format),
            RouteCommand::Explain { rcpt, message, format } => (Op::Explain { rcpt, message }, format),
        }
    }
}

pub fn run(config: Option<&Path>, cmd: RouteCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, &config, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd` with the configuration in force, printing to `out`.
pub(super) fn execute(backend: &Backend, config: &Config, cmd: RouteCommand, out: &mut dyn Write) -> Result<()> {
    let (op, format) = cmd.split();
    if let Op::Explain { rcpt, message } = op {
        return explain(backend, config, &rcpt, message.as_deref(), format, out);
    }
    execute_table(backend, &config.routing.country_code, Table::Routes, op, format, out)
}

/// `route explain`: the decision and its evidence.
fn explain(backend: &Backend, config: &Config, rcpt: &str, message: Option<&Path>, format: Format, out: &mut dyn Write) -> Result<()> {
    let message = message.map(read_input).transpose()?;
    let e = backend.explain(config, rcpt, message.as_deref())?;
    if format.json {
        return json(out, &e);
    }
    let route = match &e.route {
        Route::Local => "local delivery".to_owned(),
        Route::Relay => "relay (hop-by-hop SMTP)".to_owned(),
        Route::Fast { tel } => match &e.national {
            Some(n) => format!("fast path to {tel} ({n})"),
            None => format!("fast path to {tel}"),
        },
    };
    writeln!(out, "recipient: {}", e.rcpt)?;
    writeln!(out, "route:     {route}")?;
    writeln!(out, "evidence:  {}", e.evidence)?;
    if let Some(l) = &e.learned {
        writeln!(out, "learned:   {} from {}", super::queue::date(l.at), l.evidence)?;
        writeln!(out, "expires:   {} unless confirmed again", super::queue::date(l.expires))?;
    }
    if !e.with_message {
        writeln!(out, "(no --message given: header and body evidence were not considered)")?;
    }
    Ok(())
}

/// Carry out a command on either table.
pub(super) fn execute_table(
    backend: &Backend,
    country_code: &str,
    table: Table,
    op: Op,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let noun = table.noun();
    match op {
        Op::Add { key, number, name } => {
            let set = backend.add_entry(country_code, table, &NewEntry { key, number, name })?;
            if format.json {
                return json(out, &set);
            }
            let e = &set.entry;
            let name = e.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            match set.replaced {
                Some(old) => writeln!(out, "replaced {noun} {} -> {}{name} (was {})", e.key, e.tel, old.tel)?,
                None => writeln!(out, "added {noun} {} -> {}{name}", e.key, e.tel)?,
            }
        }
        Op::Rm { key } => {
            let removed = backend.remove_entry(table, &key)?;
            if format.json {
                return json(out, &removed);
            }
            writeln!(out, "removed {noun} {} (was {})", removed.key, removed.tel)?;
        }
        Op::List => {
            let entries = backend.entries(table)?;
            if format.json {
                return json(out, &entries);
            }
            let plan = NumberPlan { country_code: country_code.to_owned(), prefixes: backend.prefixes()? };
            list(out, &plan, &entries)?;
            writeln!(out, "-- {}", plural(entries.len(), noun))?;
        }
        Op::Import { file } => {
            let text = read_input(&file)?;
            let from = if file == Path::new("-") { "standard input".to_owned() } else { file.display().to_string() };
            let report = backend.import(country_code, table, &text).with_context(|| format!("importing {from}"))?;
            if format.json {
                return json(out, &report);
            }
            let total = plural(report.added + report.updated, noun);
            writeln!(out, "imported {total} from {from}: {} added, {} replaced", report.added, report.updated)?;
        }
        Op::Export => {
            if format.json {
                return json(out, &backend.entries(table)?);
            }
            out.write_all(backend.export(table)?.as_bytes())?;
        }
        // Only the route table has explain; its command handles it before coming here.
        Op::Explain { .. } => anyhow::bail!("explain is a route command: sipmta route explain RCPT"),
    }
    Ok(())
}

/// One line per entry, in columns: key, E.164, national form (`-` when no prefix matches it
/// any more), name.
fn list(out: &mut dyn Write, plan: &NumberPlan, entries: &[TableEntry]) -> Result<()> {
    let national: Vec<String> = entries.iter().map(|e| tables::national(plan, &e.tel).unwrap_or_else(|| "-".into())).collect();
    let key_w = entries.iter().map(|e| columns(&e.key)).max().unwrap_or(0);
    let tel_w = entries.iter().map(|e| e.tel.0.len()).max().unwrap_or(0);
    let nat_w = national.iter().map(String::len).max().unwrap_or(0);
    for (e, nat) in entries.iter().zip(&national) {
        let pad = " ".repeat(key_w - columns(&e.key));
        let line = format!("{}{pad}  {:<tel_w$}  {:<nat_w$}  {}", e.key, e.tel.0, nat, e.name.as_deref().unwrap_or(""));
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Terminal columns `text` takes: East Asian wide and full-width characters (kanji, kana,
/// hangul, full-width forms; Unicode UAX #11) take two, so Japanese keywords line up.
fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xA000..=0xA4CF => 2,
            0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// The bytes of `file`, or of standard input for `-`.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin().lock().read_to_end(&mut text).context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}
