//! `sipmta keyword add|rm|list|import|export`: the keyword table (DESIGN.md "Routing rules":
//! `KYOTOBRANCHOFFICE -> 050-1234-5678`). A keyword found in a recipient address (or, for mail
//! to a single domain, in the headers or text) routes the mail to its number. Keywords are
//! compared without regard to case, so `Kyoto` and `KYOTO` are one entry; the spelling last
//! given is kept. The work is done by [`super::route`], the same as for the address table.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use sipmta_store::Table;

use super::backend::Backend;
use super::queue::Format;
use super::route::{Op, execute_table};

/// The keyword table.
#[derive(Debug, Subcommand)]
pub enum KeywordCommand {
    /// Route mail that names KEYWORD over the fast path to NUMBER. An entry for the same
    /// keyword (in any case) is replaced.
    ///
    /// A keyword is any text of up to 256 characters without control characters; spaces at
    /// either end are dropped. NUMBER may be national (050-1234-5678) or E.164
    /// (+81 50 1234 5678), with hyphens, dots, spaces, full-width digits and dashes; it must
    /// match a prefix (`sipmta prefix list`) and is stored in E.164.
    Add {
        /// The keyword, e.g. KYOTOBRANCHOFFICE.
        keyword: String,
        /// The IP telephone number.
        number: String,
        /// A note shown by `list` and kept by `export`.
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Remove a keyword (in any case).
    Rm {
        /// The keyword.
        keyword: String,
        #[command(flatten)]
        format: Format,
    },
    /// List the keywords: keyword, number in E.164 and national form, name.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Add or replace keywords from a CSV file (`-` reads standard input), all or nothing.
    ///
    /// One entry per line: `keyword,number[,name]`, in the format of `sipmta route import`
    /// (see its --help). Every line is checked first: if any is bad, each bad line is reported
    /// with its line number and reason and nothing is imported. Otherwise keywords already in
    /// the table (in any case) are replaced, the others added, and the counts printed.
    Import {
        /// The CSV file (`sipmta keyword export` writes one).
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
}

pub fn run(config: Option<&Path>, cmd: KeywordCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, &config.routing.country_code, cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`; `country_code` is the configured one.
pub(super) fn execute(backend: &Backend, country_code: &str, cmd: KeywordCommand, out: &mut dyn Write) -> Result<()> {
    let (op, format) = match cmd {
        KeywordCommand::Add { keyword, number, name, format } => (Op::Add { key: keyword, number, name }, format),
        KeywordCommand::Rm { keyword, format } => (Op::Rm { key: keyword }, format),
        KeywordCommand::List { format } => (Op::List, format),
        KeywordCommand::Import { file, format } => (Op::Import { file }, format),
        KeywordCommand::Export { format } => (Op::Export, format),
    };
    execute_table(backend, country_code, Table::Keywords, op, format, out)
}
