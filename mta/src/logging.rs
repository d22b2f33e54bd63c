//! Log setup: `tracing` to stderr as text or JSON lines, filtered by `SIPMTA_LOG` or the
//! config's `log.filter`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The environment variable that overrides the configured filter.
pub const ENV: &str = "SIPMTA_LOG";

/// Install the global subscriber. `default_filter` applies when `SIPMTA_LOG` is unset.
pub fn init(default_filter: &str, format: LogFormat) {
    let spec = std::env::var(ENV).ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| default_filter.to_owned());
    let filter = EnvFilter::try_new(quiet_sip_stack(&spec)).unwrap_or_else(|_| EnvFilter::new(quiet_sip_stack("info")));
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

/// The SIP stack logs every message it sends or receives at `info`; that belongs at debug
/// level for an operator, so it is held to warnings unless the filter names it
/// (`SIPMTA_LOG=info,rsipstack=info` shows the SIP traffic).
fn quiet_sip_stack(spec: &str) -> String {
    if spec.contains("rsipstack") { spec.to_owned() } else { format!("{spec},rsipstack=warn") }
}

#[cfg(test)]
mod tests {
    use super::quiet_sip_stack;

    #[test]
    fn the_sip_stack_is_quiet_unless_named() {
        assert_eq!(quiet_sip_stack("info"), "info,rsipstack=warn");
        assert_eq!(quiet_sip_stack("debug,rsipstack=trace"), "debug,rsipstack=trace");
    }
}
