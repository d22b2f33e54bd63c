//! The daemon's configuration: TOML read into typed structs (`deny_unknown_fields`), with every
//! default in one place ([`Default`] impls below) so `sipmta serve` runs with no file at all.
//!
//! [`Config::from_toml`] reports every error at once (see [`load`]); [`Config::validate`] adds
//! the checks serde cannot express (both TLS files or neither, listeners not shared, ...).
//! `deploy/sipmta.toml` documents each field and is parsed by a test.

mod dkim;
mod fastpath;
mod learning;
mod load;
mod registrar;
mod relay;
mod routing;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::smtp::data::BareEndings;

pub use dkim::{Dkim, DkimKey};
pub use fastpath::{FastPath, Locator, MediaRole, OwnNumber, SipTransport};
pub use learning::Learning;
pub use load::ConfigErrors;
pub use registrar::{Registrar, RegistrarUser};
pub use relay::{Relay, Smarthost, TlsPolicy, Transport};
pub use routing::Routing;
pub use values::{ByteSize, IpNet, Span};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The name this server uses in its greeting, EHLO answer and Received headers.
    /// Default: the machine's host name.
    pub hostname: String,
    /// Where the store, Maildirs, TLS material and admin token live. Default `./sipmta-data`.
    pub data_dir: PathBuf,
    /// Domains delivered here (Maildir). Mail for them is accepted from anyone.
    pub local_domains: Vec<String>,
    /// Clients that may relay without authenticating. Default: none.
    pub trusted_networks: Vec<IpNet>,
    /// The MX-facing listener (port 25 in production). No AUTH here.
    pub smtp: Listener,
    /// The message submission listener (RFC 6409; port 587 in production): AUTH required.
    pub submission: Listener,
    /// Submission over implicit TLS (RFC 8314; port 465 in production). Default: off.
    pub submissions: Listener,
    /// Certificate and key for STARTTLS and implicit TLS.
    pub tls: Tls,
    /// Protocol limits and timeouts.
    pub limits: Limits,
    /// Local delivery settings.
    pub local: Local,
    /// Spool settings.
    pub spool: Spool,
    /// Logging.
    pub log: Log,
    /// The admin API the CLI uses while the daemon runs.
    pub admin: Admin,
    /// How mail for other domains leaves: queue, MX, smarthosts, DSNs.
    pub relay: Relay,
    /// How the routing rules read numbers and messages.
    pub routing: Routing,
    /// The SIP fast path: registration, calls and fast-path streams.
    pub fastpath: FastPath,
    /// The built-in SIP registrar/proxy.
    pub registrar: Registrar,
    /// Number exchange: announcing ours, learning other sites'.
    pub learning: Learning,
    /// DKIM signing of outgoing mail.
    pub dkim: Dkim,
}

/// One kind of listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listener {
    /// Addresses to listen on; an empty list turns this listener off.
    pub listen: Vec<SocketAddr>,
    /// Answer VRFY with `252` (RFC 5321 §3.5.3) instead of `502` (disabled).
    pub vrfy: bool,
    /// A CR or LF outside CRLF in a message: `normalize` stores it as CRLF, `reject` refuses
    /// the message. Either way it never ends DATA (SMTP smuggling).
    pub bare_line_endings: BareEndings,
}

/// TLS material. Without both files a self-signed certificate is made in the data directory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Limits, each with the reply RFC 5321 prescribes when it is hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted (advertised with SIZE, RFC 1870; `552 5.3.4` beyond it).
    pub max_message_size: ByteSize,
    /// Recipients per message (`452 4.5.3` beyond it; RFC 5321 §4.5.3.1.8 asks for at least 100).
    pub max_recipients: usize,
    /// Longest command line, CRLF included (`500 5.5.2`; RFC 5321 §4.5.3.1.4 minimum 512).
    pub max_command_line: usize,
    /// Longest text line in a message, CRLF excluded (RFC 5322 §2.1.1: 998).
    pub max_line_length: usize,
    /// Close a session that sends nothing for this long (`421 4.4.2`; RFC 5321 §4.5.3.2.7).
    pub idle_timeout: Span,
    /// Concurrent sessions over all listeners; more are answered `421 4.3.2` and closed.
    pub max_sessions: usize,
    /// Concurrent sessions from one client address.
    pub max_sessions_per_client: usize,
    /// Commands answered `5xx` in one session before it is closed with `421 4.7.0`.
    pub max_errors: usize,
    /// Failed AUTH attempts from one client address within `auth_failure_window` after which
    /// its AUTH commands get `421 4.7.0` until the window ends. From the third failure on,
    /// each `535` is answered a second later than the one before (up to 5 s).
    pub max_auth_failures: u32,
    /// The window of `max_auth_failures`, counted from an address's first failure.
    pub auth_failure_window: Span,
    /// On shutdown, how long open transactions may take to finish.
    pub shutdown_grace: Span,
}

/// Local delivery.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Local {
    /// Local domains that accept only known users (`sipmta user add local@domain`); the others
    /// accept any local part. `postmaster` is always accepted (RFC 5321 §4.5.1).
    pub known_users_only: Vec<String>,
    /// Answer a `Disposition-Notification-To` (RFC 8098) with an automatic MDN (`processed`)
    /// once the message is in a local mailbox, when it names the envelope sender and the
    /// message is not itself automatic. To a sender whose number we know it goes back over the
    /// fast path. Receipts are usually the reader's choice, hence: Default false.
    pub send_mdn: bool,
}

/// Spool settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spool {
    /// Below this much free disk, MAIL is answered `452 4.3.1` (RFC 3463) instead of
    /// failing half-way through DATA.
    pub min_free_space: ByteSize,
    /// How long the history of a finished message stays in the store for `queue show` and
    /// `history` (counted from its last event). The store holds it in memory, about 1 KiB per
    /// message, so this bounds the daemon's size: three days at 10,000 messages a day is about
    /// 30 MiB. The log keeps the long-term record.
    pub history_retention: Span,
    /// Memory for the store's page cache (sled's cache capacity). sled keeps pages it wrote
    /// until this cap, so it bounds how much the daemon grows with the queue and history.
    pub db_cache: ByteSize,
    /// How long an accepted message is remembered so that the same message sent again (same
    /// sender, recipients and content, Message-ID included) is answered with the first copy's
    /// id instead of being delivered twice: a client whose connection broke before our `250`
    /// cannot know it was accepted and sends it again (RFC 5321 §6.1). `0s` turns it off.
    pub resend_window: Span,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json` (one object per line).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `sipmta=debug`; the `SIPMTA_LOG` variable overrides it.
    pub filter: String,
}

/// The admin API: HTTP/1.1 with a bearer token that the daemon writes to
/// `<data_dir>/admin.token` at each start. `sipmta user ...` and `sipmta queue ...` use it while
/// the daemon holds the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Loopback addresses to listen on (requests carry passwords in clear text, so nothing
    /// else is allowed); an empty list turns the API off. Default `["127.0.0.1:8025"]`.
    pub listen: Vec<SocketAddr>,
    /// Serve `/metrics` (Prometheus) and `/status` (HTML) without the token: they show counts,
    /// queue states, recent deliveries and registrations, no message content or secrets, and
    /// the listener is loopback-only. Default true; false asks for the token there too.
    pub open_pages: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: system_hostname(),
            data_dir: PathBuf::from("./sipmta-data"),
            local_domains: vec!["localhost".into()],
            trusted_networks: Vec::new(),
            smtp: Listener { listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))], ..Listener::default() },
            submission: Listener { listen: vec![SocketAddr::from(([127, 0, 0, 1], 2587))], ..Listener::default() },
            submissions: Listener::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            local: Local::default(),
            spool: Spool::default(),
            log: Log::default(),
            admin: Admin::default(),
            relay: Relay::default(),
            routing: Routing::default(),
            fastpath: FastPath::default(),
            registrar: Registrar::default(),
            learning: Learning::default(),
            dkim: Dkim::default(),
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin { listen: vec![SocketAddr::from(([127, 0, 0, 1], 8025))], open_pages: true }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Listener { listen: Vec::new(), vrfy: true, bare_line_endings: BareEndings::Normalise }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: ByteSize(50 << 20),
            max_recipients: 100,
            max_command_line: 2048,
            max_line_length: 998,
            idle_timeout: Span(Duration::from_secs(300)),
            max_sessions: 200,
            max_sessions_per_client: 20,
            max_errors: 20,
            max_auth_failures: 10,
            auth_failure_window: Span(Duration::from_secs(15 * 60)),
            shutdown_grace: Span(Duration::from_secs(30)),
        }
    }
}

impl Default for Spool {
    fn default() -> Self {
        Spool {
            min_free_space: ByteSize(100 << 20),
            history_retention: Span(Duration::from_secs(3 * 86_400)),
            db_cache: ByteSize(sipmta_store::DEFAULT_CACHE),
            resend_window: Span(Duration::from_secs(600)),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log { format: LogFormat::Text, filter: "info".into() }
    }
}

/// The machine's host name, or `localhost` when it cannot be read.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether validation reads the files a config names (TLS certificate and key, DKIM keys,
/// password files). The daemon and `check-config` do; `sipmta sendmail` does not, because the
/// ordinary users it runs for (cron jobs, PHP) may read the config but not the secrets beside
/// it (deploy/INSTALL.md makes those `root:sipmta`), and it needs none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    Read,
    Skip,
}

impl Config {
    /// Parse a TOML document, reporting every error found (syntax, types, unknown keys and the
    /// semantic checks of [`Config::validate`]) at once.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        load::from_toml(text, Files::Read)
    }

    /// Read and parse a config file; `None` gives the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        Config::load_with(path, Files::Read)
    }

    /// [`Config::load`], reading the files the config names or not (see [`Files`]).
    pub fn load_with(path: Option<&Path>, files: Files) -> Result<Config, ConfigErrors> {
        let Some(path) = path else {
            let config = Config::default();
            let errors = config.validate_with(files);
            return if errors.is_empty() { Ok(config) } else { Err(ConfigErrors::plain(errors)) };
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors::plain(vec![format!("cannot read {}: {e}", path.display())]))?;
        load::from_toml(&text, files).map_err(|e| e.in_file(path))
    }

    /// Checks serde cannot express, reading every file the config names. Returns every problem
    /// found.
    pub fn validate(&self) -> Vec<String> {
        self.validate_with(Files::Read)
    }

    /// [`Config::validate`], reading the files the config names or not.
    pub fn validate_with(&self, files: Files) -> Vec<String> {
        let mut errors = Vec::new();
        if !is_domain(&self.hostname) {
            errors.push(format!("hostname: {:?} is not a host name", self.hostname));
        }
        for d in &self.local_domains {
            if !is_domain(d) {
                errors.push(format!("local_domains: {d:?} is not a domain name"));
            }
        }
        if self.spool.db_cache.0 < 1 << 20 {
            errors.push("spool.db_cache: must be at least 1MiB".into());
        }
        if self.spool.history_retention.0 < Duration::from_secs(1) {
            errors.push("spool.history_retention: must be at least 1s".into());
        }
        for d in &self.local.known_users_only {
            if !self.is_local_domain(d) {
                errors.push(format!("local.known_users_only: {d:?} is not in local_domains"));
            }
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) | (None, Some(_)) => errors.push("tls: set both cert and key, or neither".into()),
            (Some(cert), Some(key)) if files == Files::Read => {
                for (name, path) in [("cert", cert), ("key", key)] {
                    if let Err(e) = std::fs::metadata(path) {
                        errors.push(format!("tls.{name}: cannot read {}: {e}", path.display()));
                    }
                }
            }
            _ => {}
        }
        let listeners = [("smtp", &self.smtp), ("submission", &self.submission), ("submissions", &self.submissions)];
        let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
        for (name, l) in listeners {
            for addr in &l.listen {
                // Port 0 asks the kernel for a fresh port each time, so it never clashes.
                if let Some((_, other)) = seen.iter().find(|(a, _)| a == addr && addr.port() != 0) {
                    errors.push(format!("{name}.listen: {addr} is already used by {other}.listen"));
                }
                seen.push((*addr, name));
            }
        }
        if seen.is_empty() {
            errors.push("no listener: set smtp.listen, submission.listen or submissions.listen".into());
        }
        for addr in &self.admin.listen {
            // to_canonical: an IPv4-mapped ::ffff:127.0.0.1 is loopback too.
            if !addr.ip().to_canonical().is_loopback() {
                errors.push(format!(
                    "admin.listen: {addr} is not a loopback address; the admin API carries passwords in clear text, so use 127.0.0.1 or [::1]"
                ));
            }
            if let Some((_, other)) = seen.iter().find(|(a, _)| a == addr && addr.port() != 0) {
                errors.push(format!("admin.listen: {addr} is already used by {other}.listen"));
            }
        }
        let l = &self.limits;
        if l.max_message_size.0 < 1024 {
            errors.push("limits.max_message_size: must be at least 1KiB".into());
        }
        if l.max_recipients == 0 {
            errors.push("limits.max_recipients: must be at least 1".into());
        }
        if l.max_command_line < 512 {
            errors.push("limits.max_command_line: RFC 5321 §4.5.3.1.4 requires at least 512".into());
        }
        if l.max_line_length < 78 {
            errors.push("limits.max_line_length: must be at least 78".into());
        }
        if l.idle_timeout.0 < Duration::from_secs(1) {
            errors.push("limits.idle_timeout: must be at least 1s".into());
        }
        if l.max_sessions == 0 || l.max_sessions_per_client == 0 {
            errors.push("limits.max_sessions and max_sessions_per_client: must be at least 1".into());
        }
        if l.max_errors == 0 {
            errors.push("limits.max_errors: must be at least 1".into());
        }
        if l.max_auth_failures == 0 {
            errors.push("limits.max_auth_failures: must be at least 1".into());
        }
        self.relay.validate(&mut errors, files);
        self.routing.validate(&mut errors);
        self.learning.validate(&mut errors);
        self.fastpath.validate(&mut errors, files);
        self.registrar.validate(&mut errors, files);
        self.dkim.validate(&mut errors, files);
        errors
    }

    /// Whether `domain` is one of ours.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| sipmta_rules::same_domain(d, domain))
    }

    /// Whether this local domain takes only known users.
    pub fn known_users_only(&self, domain: &str) -> bool {
        self.local.known_users_only.iter().any(|d| sipmta_rules::same_domain(d, domain))
    }
}

/// A plausible DNS name (RFC 1035 §2.3.1 letters, digits, hyphens; we also allow `_` and
/// non-ASCII labels, which IDNs and internal names use). The store checks routing table domains
/// by the same rule, and says why one fails.
pub fn is_domain(s: &str) -> bool {
    sipmta_store::routing::check_domain(s).is_ok()
}

#[cfg(test)]
mod tests;
