//! `sipmta check-config [FILE]`.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// Print every error (exit 1) or a short summary of what the file sets up (exit 0).
pub fn run(path: Option<&Path>) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            let source = path.map_or_else(|| "embedded defaults".to_owned(), |p| p.display().to_string());
            println!("{source}: ok");
            for (name, l) in [("smtp", &config.smtp), ("submission", &config.submission), ("submissions", &config.submissions)] {
                for addr in &l.listen {
                    println!("  {name} listener on {addr}");
                }
            }
            for addr in &config.admin.listen {
                println!("  admin API on {addr}");
            }
            println!("  data in {}", config.data_dir.display());
            println!("  local domains: {}", config.local_domains.join(", "));
            for k in &config.dkim.keys {
                println!("  DKIM signing for {} with selector {} ({})", k.domain, k.selector, k.key.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::FAILURE
        }
    }
}
