//! Log setup: `tracing` to stderr as text or JSON lines, filtered by `SIPMTA_LOG` or the
//! config's `log.filter`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The environment variable that overrides the configured filter.
pub const ENV: &str = "SIPMTA_LOG";

/// Install the global subscriber. `default_filter` applies when `SIPMTA_LOG` is unset.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env(ENV).unwrap_or_else(|_| EnvFilter::try_new(default_filter).unwrap_or_else(|_| EnvFilter::new("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
