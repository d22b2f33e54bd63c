//! The command line: `sipmta serve`, `check-config`, `user ...`, `queue ...`, `history`,
//! `log`, `route ...`, `keyword ...`, `learned ...`, `prefix ...`, `protocol ...`, `dkim ...`, `demo`.
//!
//! Doc comments here are the `--help` text. Each subcommand lives in its own module and
//! returns `anyhow::Result`; `main` prints the error chain and picks the exit code.

mod backend;
mod check;
mod demo;
mod dkim;
mod history;
mod keyword;
mod learned;
mod log;
mod prefix;
mod protocol;
mod queue;
mod route;
mod sendmail;
mod serve;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sipmta: a site's outbound mail server that delivers straight to the destination's server
/// over a SIP fast path when it can, and by ordinary SMTP relay otherwise.
///
/// Run `sipmta serve` to start the daemon with embedded defaults (SMTP on 127.0.0.1:2525,
/// submission on 127.0.0.1:2587, data in ./sipmta-data, local domain "localhost").
/// Set SIPMTA_LOG (e.g. `debug`, `sipmta=trace`) to change what is logged.
#[derive(Debug, Parser)]
#[command(name = "sipmta", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults are used; see
    /// deploy/sipmta.toml for every key.
    #[arg(long, short = 'c', global = true, env = "SIPMTA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mail server until SIGTERM or Ctrl-C.
    ///
    /// Listeners are announced in the log ("smtp listener on ADDR"), then "ready". On SIGTERM
    /// open transactions may finish within limits.shutdown_grace; new connections get 421.
    /// SIGHUP reads the config file again: an invalid one is refused with its errors and the
    /// running one stays; a valid one applies to new sessions and delivery attempts (TLS
    /// certificates, domains, networks, limits, relay and routing settings), while listeners,
    /// data_dir, admin, fastpath, registrar and log keep their values until a restart.
    Serve,
    /// Check a configuration file and report every error in it at once.
    ///
    /// Exits 0 when the file is valid, 1 otherwise. Without FILE (or --config) the embedded
    /// defaults are checked.
    CheckConfig {
        /// The file to check.
        file: Option<PathBuf>,
    },
    /// Manage SMTP AUTH users (stored with salted password hashes).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Inspect and control the mail queue.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Show what happened to mail (receptions, attempts, DSNs, operator actions) across all
    /// messages, oldest first; finished messages included.
    History(history::HistoryArgs),
    /// Follow one message through the daemon's log: its reception, every delivery attempt
    /// with the remote reply, and the reports queued about it.
    ///
    /// Reads the log files named, or standard input:
    /// `journalctl -u sipmta -o cat | sipmta log 6A1F0B2C00000007`. Text and JSON lines
    /// (log.format) both work. Lines are printed unchanged, in order.
    Log(log::LogArgs),
    /// The address/domain table: which addresses and domains are reached over the fast path,
    /// at which IP telephone number.
    #[command(subcommand)]
    Route(route::RouteCommand),
    /// The keyword table: text that, found in an address or a message, routes it to a number.
    #[command(subcommand)]
    Keyword(keyword::KeywordCommand),
    /// Numbers learned from other sites' mail (X-Fastpath-Tel proved by DKIM, SPF or the
    /// fast-path call it came over): list them, or forget one.
    #[command(subcommand)]
    Learned(learned::LearnedCommand),
    /// The number prefixes that mark IP telephone numbers (050 and 080 by default).
    #[command(subcommand)]
    Prefix(prefix::PrefixCommand),
    /// The protocol table: what each number we called agreed to over the fast path.
    #[command(subcommand)]
    Protocol(protocol::ProtocolCommand),
    /// DKIM signing keys: make one, print the DNS record that publishes it.
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// The sendmail interface for cron, PHP and scripts: read a message on standard input
    /// and submit it (`sipmta sendmail -t -i`, `sipmta sendmail -f me@example.org you@example.net`).
    ///
    /// Goes to the running daemon over SMTP, or, when none runs, into the queue directly (it
    /// leaves when the daemon starts). Relay needs the loopback network in trusted_networks.
    /// Unqualified names get the first local domain. Missing From, Date and Message-ID headers
    /// are added. Install it as /usr/sbin/sendmail with a two-line script that runs
    /// `exec sipmta sendmail "$@"`. Exit codes are sendmail's: 0 sent, 64 usage, 65 bad input,
    /// 69 refused, 75 try again later. `-bp` lists the queue like mailq.
    #[command(disable_version_flag = true)]
    Sendmail(sendmail::SendmailArgs),
    /// Try it: a registrar and two sites on this machine, one message by fast path and one
    /// that falls back to relay, each step printed with its timing.
    ///
    /// Needs no config and no other software; everything listens on 127.0.0.1 ports the
    /// kernel picks. Exits non-zero when a message does not arrive as described.
    /// SIPMTA_LOG=info shows the sites' own logs alongside.
    Demo(demo::DemoArgs),
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve => serve::run(cli.config.as_deref()),
        Command::CheckConfig { file } => return check::run(file.or(cli.config).as_deref()),
        Command::User(cmd) => user::run(cli.config.as_deref(), cmd),
        Command::Queue(cmd) => queue::run(cli.config.as_deref(), cmd),
        Command::History(args) => history::run(cli.config.as_deref(), args),
        Command::Log(args) => log::run(&args),
        Command::Route(cmd) => route::run(cli.config.as_deref(), cmd),
        Command::Keyword(cmd) => keyword::run(cli.config.as_deref(), cmd),
        Command::Learned(cmd) => learned::run(cli.config.as_deref(), cmd),
        Command::Prefix(cmd) => prefix::run(cli.config.as_deref(), cmd),
        Command::Protocol(cmd) => protocol::run(cli.config.as_deref(), cmd),
        Command::Dkim(cmd) => dkim::run(cmd),
        Command::Demo(args) => demo::run(&args),
        Command::Sendmail(args) => return sendmail::run(cli.config.as_deref(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipmta: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load the configuration or fail with every error in it.
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    crate::config::Config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration\n{e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap checks option clashes (a subcommand's -V against --version, say) only when a
        // command is parsed; this checks every subcommand at once.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
