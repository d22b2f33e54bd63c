//! `sipmta sendmail [-t] [-i] [-f SENDER] [RCPT...]`: the `/usr/sbin/sendmail` interface that
//! cron, PHP's `mail()` and scripts call (issue 9 item 5).
//!
//! The message is read from standard input and submitted over SMTP, so it goes through the
//! same reception as any other mail (Received header, routing decision, fsync before success):
//! - to the running daemon, on its first SMTP listener (an unspecified address is reached on
//!   loopback), which any local user can reach;
//! - when nothing answers there, to an SMTP session run in this process on the store itself
//!   (which needs the store owner's rights); the message waits in the queue and goes out when
//!   the daemon starts.
//!
//! Sending out (relay) is allowed as for any SMTP client: the loopback network must be in
//! `trusted_networks`. Unqualified names (`root`) get the first local domain, like Postfix's
//! `myorigin`. The exit codes are sendmail's (`sysexits.h`): 0 sent, 64 usage, 65 bad input,
//! 69 refused, 75 try again later.

use std::borrow::Cow;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use mail_send::smtp::message::{Address, Message, Parameters};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;

/// How long each SMTP step may take (the whole message is in memory, so this is generous).
const TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting to the daemon may take (it is on this machine).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// sendmail's options, as cron, PHP and scripts pass them.
#[derive(Debug, Clone, Default, Args)]
pub struct SendmailArgs {
    /// Take recipients from the To, Cc and Bcc headers too (the Bcc header is removed).
    #[arg(short = 't')]
    pub extract: bool,
    /// A line with a single dot does not end the message (also `-oi`).
    #[arg(short = 'i')]
    pub ignore_dots: bool,
    /// The envelope sender (default: the user running the command, at the first local domain).
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    pub sender: Option<String>,
    /// The sender's full name, for a From header added when the message has none.
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,
    /// sendmail options: `-oi` is `-i`; others (`-oem`, `-odb`, ...) are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// Body type (`7BIT`, `8BITMIME`); 8BITMIME is declared anyway when the message needs it.
    #[arg(short = 'B', value_name = "TYPE")]
    pub body_type: Option<String>,
    /// Mode: `m` (deliver, the default) or `p` (list the queue, like `mailq`).
    #[arg(short = 'b', value_name = "MODE")]
    pub mode: Option<String>,
    /// DSN notify: `never`, or a list of `success`, `failure`, `delay` (RFC 3461).
    #[arg(short = 'N', value_name = "DSN")]
    pub notify: Option<String>,
    /// DSN return: `full` or `hdrs`.
    #[arg(short = 'R', value_name = "RET")]
    pub ret: Option<String>,
    /// DSN envelope id.
    #[arg(short = 'V', value_name = "ENVID")]
    pub envid: Option<String>,
    /// Accepted and ignored (sendmail's verbose mode).
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Recipients (commas separate several in one argument).
    pub recipients: Vec<String>,
}

/// Why a submission failed, and sendmail's exit code for it.
#[derive(Debug)]
struct Failure {
    code: u8,
    text: String,
}

impl Failure {
    fn new(code: u8, text: impl Into<String>) -> Failure {
        Failure { code, text: text.into() }
    }
}

pub fn run(config_path: Option<&std::path::Path>, args: SendmailArgs) -> ExitCode {
    let result = (|| {
        // Not the keys and certificates: the users sendmail runs for may not read them.
        let config = crate::config::Config::load_with(config_path, crate::config::Files::Skip)
            .map_err(|e| Failure::new(EX_TEMPFAIL, format!("invalid configuration\n{e}")))?;
        match args.mode.as_deref() {
            None | Some("m") => {}
            Some("p") => {
                let list = super::queue::QueueCommand::List { format: super::queue::Format::default() };
                return super::queue::run(config_path, list).map_err(|e| Failure::new(EX_TEMPFAIL, format!("{e:#}")));
            }
            Some(other) => {
                return Err(Failure::new(EX_USAGE, format!("-b{other}: only -bm (send) and -bp (list the queue) are supported")));
            }
        }
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).map_err(|e| Failure::new(EX_DATAERR, format!("reading the message: {e}")))?;
        let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");
        let (envelope, body) = prepare(&config, &args, &input, ignore_dots, &login_name())?;
        submit(&config, envelope, body)
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sipmta sendmail: {}", f.text);
            ExitCode::from(f.code)
        }
    }
}

/// The envelope: sender, recipients and their MAIL/RCPT parameters.
#[derive(Debug, PartialEq)]
struct Envelope {
    sender: String,
    recipients: Vec<String>,
    mail_params: Vec<(String, String)>,
    rcpt_params: Vec<(String, String)>,
}

/// Build the envelope and the message to send from the input and the options.
fn prepare(config: &Config, args: &SendmailArgs, input: &[u8], ignore_dots: bool, user: &str) -> Result<(Envelope, Vec<u8>), Failure> {
    let origin = config.local_domains.first().map_or(config.hostname.as_str(), String::as_str);
    let qualify = |a: &str| if a.is_empty() || a.contains('@') { a.to_owned() } else { format!("{a}@{origin}") };
    let mut text = crlf(input, ignore_dots);
    let mut recipients: Vec<String> =
        args.recipients.iter().flat_map(|r| r.split(',')).map(str::trim).filter(|r| !r.is_empty()).map(qualify).collect();
    if args.extract {
        let parsed = mail_parser::MessageParser::new().parse_headers(&text);
        if let Some(parsed) = parsed {
            for header in [parsed.to(), parsed.cc(), parsed.bcc()].into_iter().flatten() {
                // `To: root` (cron's MAILTO) parses as a display name without an address.
                for a in header.iter() {
                    if let Some(address) = a.address().or_else(|| a.name().filter(|n| !n.contains(char::is_whitespace))) {
                        recipients.push(qualify(address.trim()));
                    }
                }
            }
        }
        text = remove_header(&text, "bcc");
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if recipients.is_empty() {
        return Err(Failure::new(EX_USAGE, "no recipients: name them on the command line or use -t with To/Cc/Bcc headers"));
    }
    let sender = qualify(args.sender.as_deref().unwrap_or(user));
    text = add_missing_headers(text, &sender, args.full_name.as_deref(), &config.hostname);
    let mut mail_params = Vec::new();
    if text.iter().any(|b| *b >= 0x80) {
        mail_params.push(("BODY".to_owned(), "8BITMIME".to_owned()));
    }
    if let Some(ret) = &args.ret {
        mail_params.push(("RET".to_owned(), ret.to_ascii_uppercase()));
    }
    if let Some(envid) = &args.envid {
        mail_params.push(("ENVID".to_owned(), envid.clone()));
    }
    let rcpt_params = args.notify.iter().map(|n| ("NOTIFY".to_owned(), n.to_ascii_uppercase())).collect();
    Ok((Envelope { sender, recipients, mail_params, rcpt_params }, text))
}

/// The input with CRLF line endings, cut at a lone `.` line unless `ignore_dots`, without
/// its final line break (the client's `\r\n.\r\n` ends it).
fn crlf(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for line in input.split_inclusive(|b| *b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if !ignore_dots && bare == b"." {
            break;
        }
        out.extend_from_slice(bare);
        out.extend_from_slice(b"\r\n");
    }
    out.truncate(out.len().saturating_sub(2));
    out
}

/// The message without the header `name` (and its continuation lines).
fn remove_header(message: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut in_header = true;
    let mut dropping = false;
    for line in message.split_inclusive(|b| *b == b'\n') {
        if in_header {
            if line == b"\r\n" {
                in_header = false;
            } else if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                if dropping {
                    continue;
                }
            } else {
                dropping = line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name.as_bytes()) && line[name.len()] == b':';
                if dropping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// From, Date and Message-ID when the message lacks them (RFC 5322 §3.6 requires From and
/// Date; cron and scripts often send neither), as Postfix's cleanup adds them.
fn add_missing_headers(message: Vec<u8>, sender: &str, full_name: Option<&str>, hostname: &str) -> Vec<u8> {
    let parsed = mail_parser::MessageParser::new().parse_headers(&message);
    let has = |name: &str| parsed.as_ref().is_some_and(|m| m.headers().iter().any(|h| h.name().eq_ignore_ascii_case(name)));
    let mut added = String::new();
    if !has("From") {
        let from = if sender.is_empty() { "MAILER-DAEMON".to_owned() } else { sender.to_owned() };
        match full_name.filter(|n| !n.trim().is_empty()) {
            Some(name) => added.push_str(&format!("From: \"{}\" <{from}>\r\n", name.replace(['"', '\\', '\r', '\n'], ""))),
            None => added.push_str(&format!("From: {from}\r\n")),
        }
    }
    if !has("Date") {
        added.push_str(&format!("Date: {}\r\n", mail_builder::headers::date::Date::new(sipmta_store::now() as i64).to_rfc822()));
    }
    if !has("Message-ID") {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        added.push_str(&format!("Message-ID: <{nanos:x}.{}@{hostname}>\r\n", std::process::id()));
    }
    if added.is_empty() {
        return message;
    }
    // A message whose first line is no header field (RFC 5322 §2.2: a name of printable
    // characters, then a colon) is all body: the headers added need the empty line after them.
    let first = message.split(|b| *b == b'\n').next().unwrap_or_default();
    let is_field =
        first.iter().position(|b| *b == b':').is_some_and(|colon| colon > 0 && first[..colon].iter().all(|b| (33..=126).contains(b)));
    let mut out = added.into_bytes();
    if !is_field && !message.starts_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&message);
    out
}

/// The name of the user running the command (cron sets LOGNAME, shells USER).
fn login_name() -> String {
    ["LOGNAME", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty() && !s.contains(['@', ' ', '<', '>'])))
        .unwrap_or_else(|| "root".to_owned())
}

/// Submit to the running daemon, or to an in-process session on the store when none runs.
fn submit(config: &Config, envelope: Envelope, body: Vec<u8>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EX_TEMPFAIL, format!("starting the runtime: {e}")))?;
    runtime.block_on(async {
        // The daemon first: any user can reach its port, while the store is its owner's.
        let addr = daemon_address(config).filter(|a| a.port() != 0);
        if let Some(addr) = addr {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return transact(stream, config, &envelope, &body).await,
                // Nobody listens: the daemon is not running (or not yet), so queue it ourselves.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Ok(Err(e)) => return Err(Failure::new(EX_TEMPFAIL, format!("connecting to the daemon at {addr}: {e}"))),
                Err(_) => return Err(Failure::new(EX_TEMPFAIL, format!("connecting to the daemon at {addr}: timed out"))),
            }
        }
        match sipmta_store::Store::open(&config.data_dir) {
            Ok((store, _)) => {
                let (client, server) = tokio::io::duplex(64 << 10);
                // Kept until the session ends: a dropped sender reads as "shutting down".
                let (_running, shutdown) = tokio::sync::watch::channel(false);
                let session = tokio::spawn(crate::smtp::serve_connection(server, local_ctx(config, store, shutdown), local_session()));
                let result = transact(client, config, &envelope, &body).await;
                let _ = session.await;
                result
            }
            Err(sipmta_store::StoreError::Locked(_)) => Err(Failure::new(
                EX_TEMPFAIL,
                match addr {
                    Some(addr) => format!("the daemon holds the store but does not answer at {addr}"),
                    None => "the daemon holds the store but listens on no fixed SMTP port (smtp.listen); give it one".to_owned(),
                },
            )),
            Err(e) => Err(Failure::new(EX_TEMPFAIL, format!("the daemon does not run and the store cannot be opened: {e}"))),
        }
    })
}

/// Where the running daemon takes SMTP: its first listener, on loopback if it listens on all
/// addresses.
fn daemon_address(config: &Config) -> Option<SocketAddr> {
    let mut addr = *config.smtp.listen.first().or_else(|| config.submission.listen.first())?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) });
    }
    Some(addr)
}

/// A reception context on the store alone: no TLS, no inline fast path (the queue delivers).
fn local_ctx(config: &Config, store: sipmta_store::Store, shutdown: tokio::sync::watch::Receiver<bool>) -> Arc<crate::smtp::Ctx> {
    // Nobody delivers here: the queue manager finds the message when the daemon starts.
    let (accepted, _) = tokio::sync::mpsc::unbounded_channel();
    let limits = &config.limits;
    Arc::new(crate::smtp::Ctx {
        config: Arc::new(config.clone()),
        routing: Arc::new(crate::routing::Routing::new(store.clone(), config)),
        store,
        tls: None,
        accepted,
        shutdown,
        relay: None,
        auth_guard: Arc::new(crate::smtp::guard::AuthGuard::new(limits.max_auth_failures, limits.auth_failure_window.0)),
    })
}

/// The in-process session's client: this machine, as over loopback.
fn local_session() -> crate::smtp::SessionState {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    crate::smtp::SessionState::new(crate::smtp::Kind::Smtp, loopback, loopback)
}

/// One SMTP transaction: greeting, EHLO, MAIL, RCPT for each, DATA, QUIT.
async fn transact<S: AsyncRead + AsyncWrite + Unpin>(stream: S, config: &Config, e: &Envelope, body: &[u8]) -> Result<(), Failure> {
    let mut client = SmtpClient { stream, timeout: TIMEOUT };
    client.read().await.map_err(failure)?.assert_positive_completion().map_err(failure)?;
    client.ehlo(&config.hostname).await.map_err(failure)?;
    let params = |list: &[(String, String)]| {
        let mut p = Parameters::new();
        for (k, v) in list {
            p.add((k.clone(), v.clone()));
        }
        p
    };
    let message = Message {
        mail_from: Address::new(e.sender.as_str(), params(&e.mail_params)),
        rcpt_to: e.recipients.iter().map(|r| Address::new(r.as_str(), params(&e.rcpt_params))).collect(),
        body: Cow::Borrowed(body),
    };
    client.send(message).await.map_err(failure)?;
    let _ = client.quit().await;
    Ok(())
}

/// sendmail's exit code for an SMTP failure: 4xx and broken connections are worth retrying.
fn failure(e: mail_send::Error) -> Failure {
    match &e {
        mail_send::Error::UnexpectedReply(r) if r.code() >= 500 => {
            let hint = if r.message().contains("Relay access denied") {
                " (to let local programs send out, add 127.0.0.0/8 to trusted_networks)"
            } else {
                ""
            };
            Failure::new(EX_UNAVAILABLE, format!("refused: {} {}{hint}", r.code(), r.message()))
        }
        mail_send::Error::UnexpectedReply(r) => Failure::new(EX_TEMPFAIL, format!("try again later: {} {}", r.code(), r.message())),
        other => Failure::new(EX_TEMPFAIL, format!("SMTP: {other}")),
    }
}

#[cfg(test)]
#[path = "sendmail_tests.rs"]
mod tests;
