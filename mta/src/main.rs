//! The `sipmta` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    sipmta::cli::run(sipmta::cli::Cli::parse())
}
