//! `sipmta prefix add|rm|list`: which national prefixes mark IP telephone numbers, and how many
//! digits follow each (DESIGN.md "Routing rules": 050 and 080 with 8 digits by default).
//!
//! The prefixes decide which numbers the rules find in addresses and mail, and which numbers
//! `route add` and `keyword add` accept. A new store holds the defaults; removing one sticks.
//! While the daemon runs the commands go through its admin API, otherwise to the store itself
//! (see [`super::backend`]); the output is the same either way.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use super::backend::Backend;
use super::queue::{Format, json};
use crate::queue_control::plural;

/// Number prefixes.
#[derive(Debug, Subcommand)]
pub enum PrefixCommand {
    /// Treat numbers that start with DIGITS followed by LENGTH more digits as IP telephone
    /// numbers (`sipmta prefix add 050 8`). For an existing prefix, LENGTH replaces its length.
    ///
    /// DIGITS is the national prefix with its leading 0 (2 to 8 digits); the whole number must
    /// fit E.164 (15 digits with the country code).
    Add {
        /// The prefix, e.g. 050.
        digits: String,
        /// How many digits follow it, e.g. 8.
        length: u8,
        #[command(flatten)]
        format: Format,
    },
    /// Stop treating numbers under DIGITS as IP telephone numbers.
    ///
    /// Routes and keywords that already hold such numbers are kept (the output counts them);
    /// new ones are refused.
    Rm {
        /// The prefix, e.g. 050.
        digits: String,
        #[command(flatten)]
        format: Format,
    },
    /// List the prefixes and how many digits follow each.
    List {
        #[command(flatten)]
        format: Format,
    },
}

pub fn run(config: Option<&Path>, cmd: PrefixCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, &config.routing.country_code, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`; `country_code` is the configured one.
pub(super) fn execute(backend: &Backend, country_code: &str, cmd: PrefixCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PrefixCommand::Add { digits, length, format } => {
            let set = backend.add_prefix(country_code, &digits, length)?;
            if format.json {
                return json(out, &set);
            }
            let p = &set.prefix;
            match set.previous {
                None => writeln!(out, "added prefix {} + {}", p.digits, plural(usize::from(p.length), "digit"))?,
                Some(old) if old == p.length => writeln!(out, "prefix {} + {} unchanged", p.digits, plural(usize::from(old), "digit"))?,
                Some(old) => writeln!(out, "changed prefix {} to + {} (was + {old})", p.digits, plural(usize::from(p.length), "digit"))?,
            }
        }
        PrefixCommand::Rm { digits, format } => {
            let removed = backend.remove_prefix(country_code, &digits)?;
            if format.json {
                return json(out, &removed);
            }
            let p = &removed.prefix;
            write!(out, "removed prefix {} + {}", p.digits, plural(usize::from(p.length), "digit"))?;
            match removed.in_use {
                0 => {}
                1 => write!(out, "; 1 route or keyword still holds a number under it")?,
                n => write!(out, "; {n} routes and keywords still hold numbers under it")?,
            }
            writeln!(out)?;
        }
        PrefixCommand::List { format } => {
            let prefixes = backend.prefixes()?;
            if format.json {
                return json(out, &prefixes);
            }
            for p in &prefixes {
                writeln!(out, "{} + {}", p.digits, plural(usize::from(p.length), "digit"))?;
            }
            let n = prefixes.len();
            writeln!(out, "-- {n} prefix{}", if n == 1 { "" } else { "es" })?;
        }
    }
    Ok(())
}
