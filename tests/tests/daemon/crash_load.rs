//! Crash safety under load (issue 8): parallel clients submit to site A, which relays half of
//! the mail to smtp-sink and sends the other half by fast path to site B (A runs the registrar
//! B registers with). A is killed with SIGKILL at random moments and restarted; in the second
//! test B, the fast-path peer, is killed while A's transactions to it are in flight. Every
//! message that got `250` must reach a destination: the reply is a promise (RFC 5321 §6.1).
//! Duplicates are allowed by the same section but counted, in two kinds: a message a client
//! sent again because the connection broke before the reply (its first copy may have been
//! accepted), and a message accepted once but delivered twice (a kill between delivery and its
//! bookkeeping).
//!
//! CI runs `CRASH_MESSAGES` messages (default 1000) with `CRASH_KILLS` kills (default 5);
//! `bench/crash.sh` runs 10,000 against a release build and records the summary lines
//! (`crash summary: ...`) for RELIABILITY.md.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::support::peers::Sink;
use crate::support::sip::{DOMAIN, free_port};
use crate::support::smtp::Raw;
use crate::support::*;

const FAST_RCPT: &str = "bob@b.example";
const RELAY_RCPT: &str = "carol@sink.example";
const END: &str = "END-OF-CRASH-BODY";
const CLIENTS: usize = 8;
/// What one kill may duplicate: each client's transaction in flight at most twice (the
/// client's resend, and the copy the next hop had accepted before the sender recorded it).
/// Anything systematic (a whole batch delivered again after a restart) goes far beyond.
const DUPS_PER_KILL: usize = 2 * CLIENTS;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A site with the fast path on, registering its number through `proxy`.
fn site(domain: &str, number: &str, proxy: SocketAddr, registrar: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let sip = free_port();
    let tables = format!(
        "[registrar]\n{registrar}\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{proxy}\"\ndomain = \"{DOMAIN}\"\n\
         [[fastpath.numbers]]\nnumber = \"{number}\"\n\
         [limits]\nmax_sessions_per_client = 100\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n{extra}"
    );
    Daemon::prepare(&format!("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"{domain}\"]"), &tables)
}

/// Sites A (registrar, sender) and B (fast-path destination), and the sink A relays to.
struct Sites {
    a: Daemon,
    b: Daemon,
    sink: Sink,
}

fn sites() -> Sites {
    let sink = Sink::start(&[], None);
    let registrar = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let b_smtp = free_port();
    // If a fast-path attempt fails, A relays to B's SMTP listener instead.
    let a_transport =
        format!("[relay.transport]\n\"sink.example\" = \"[127.0.0.1]:{}\"\n\"b.example\" = \"[127.0.0.1]:{b_smtp}\"", sink.addr.port());
    let (dir, config) = site("a.example", "050-1111-1111", registrar, &format!("listen = \"{registrar}\""), &a_transport);
    let out = cli(&config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let a = Daemon::start_with(dir, config);
    let (dir, config) = site("b.example", "050-2222-2222", registrar, "enabled = false", "");
    // B's SMTP port is fixed: A's relay fallback names it, and it must survive B's restarts.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[smtp]\nlisten = [\"127.0.0.1:0\"]",
        &format!("[smtp]\nlisten = [\"127.0.0.1:{b_smtp}\"]"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut b = Daemon::start_with(dir, config);
    b.wait_line(|l| l.contains(" registered number=+815022222222"));
    Sites { a, b, sink }
}

/// What the clients saw.
#[derive(Default)]
struct Load {
    /// Tokens of messages answered `250` (each exactly once: a client moves on after it).
    acked: Mutex<HashSet<String>>,
    /// Tokens sent again after a connection broke between the final dot and the reply.
    resent: Mutex<HashSet<String>>,
    /// Transient refusals (4xx) before a message was accepted, and reconnects.
    transient: AtomicUsize,
    reconnects: AtomicUsize,
}

impl Load {
    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// One client: sends its messages in order over one connection, reconnecting (to wherever
/// `addr` now points) whenever the daemon goes away, until each one is answered `250`.
fn client(addr: Arc<RwLock<SocketAddr>>, messages: Vec<(String, &'static str)>, load: Arc<Load>) {
    let mut conn: Option<Raw> = None;
    for (token, rcpt) in messages {
        let body = format!(
            "From: <alice@a.example>\r\nTo: <{rcpt}>\r\nSubject: crash {token}\r\nMessage-ID: <{token}@a.example>\r\n\r\n{}{END}\r\n.\r\n",
            "a line of text to make the message a realistic size.\r\n".repeat(16)
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(Instant::now() < deadline, "{token} was not accepted within 300 s");
            if conn.is_none() {
                if let Ok((mut c, greeting)) = Raw::try_connect(*addr.read().unwrap(), Duration::from_secs(60))
                    && greeting.starts_with("220")
                    && c.try_cmd(b"EHLO client.test\r\n").is_some_and(|r| r.starts_with("250"))
                {
                    conn = Some(c);
                }
                if conn.is_none() {
                    load.reconnects.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            let envelope = ["MAIL FROM:<alice@a.example>\r\n".to_owned(), format!("RCPT TO:<{rcpt}>\r\n"), "DATA\r\n".to_owned()];
            let mut ok = true;
            for (cmd, want) in envelope.iter().zip(["250", "250", "354"]) {
                match c.try_cmd(cmd.as_bytes()) {
                    Some(r) if r.starts_with(want) => {}
                    Some(r) if r.starts_with('4') => {
                        load.transient.fetch_add(1, Ordering::Relaxed);
                        ok = false;
                        break;
                    }
                    Some(r) => panic!("{token}: {} answered {r}", cmd.trim_end()),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                conn = None;
                continue;
            }
            match c.try_cmd(body.as_bytes()) {
                Some(r) if r.starts_with("250") => {
                    assert!(load.acked.lock().unwrap().insert(token.clone()), "{token} acknowledged twice");
                    break;
                }
                Some(r) if r.starts_with('4') => load.transient.fetch_add(1, Ordering::Relaxed),
                Some(r) => panic!("{token}: the end of DATA was answered {r}"),
                None => {
                    // Accepted or not, nobody can tell: send it again, as a client would.
                    load.resent.lock().unwrap().insert(token.clone());
                    0
                }
            };
            conn = None;
        }
    }
    if let Some(mut c) = conn {
        let _ = c.try_cmd(b"QUIT\r\n");
    }
}

/// Copies of each token found so far in the destinations, read once per complete file.
#[derive(Default)]
struct Arrivals {
    read: HashSet<PathBuf>,
    copies: HashMap<String, usize>,
}

impl Arrivals {
    fn scan(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if self.read.contains(&path) {
                continue;
            }
            // smtp-sink writes its dumps in place: a file without the end marker is not done.
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if !text.contains(END) {
                continue;
            }
            let token = text.split("Subject: crash ").nth(1).and_then(|s| s.split_whitespace().next());
            let token = token.unwrap_or_else(|| panic!("{} is not a test message:\n{text}", path.display()));
            *self.copies.entry(token.to_owned()).or_default() += 1;
            self.read.insert(path);
        }
    }
}

/// The clients' messages, alternating between the fast path and the relay when `mixed`.
fn start_clients(addr: &Arc<RwLock<SocketAddr>>, load: &Arc<Load>, total: usize, mixed: bool) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|n| {
            let messages = (n..total)
                .step_by(CLIENTS)
                .map(|i| (format!("m{i:05}"), if mixed && i % 2 == 1 { RELAY_RCPT } else { FAST_RCPT }))
                .collect();
            let (addr, load) = (addr.clone(), load.clone());
            std::thread::spawn(move || client(addr, messages, load))
        })
        .collect()
}

/// Kill thresholds: `kills` points spread over the run, each moved by up to a quarter of the
/// gap (xorshift seeded from the clock; the seed is printed to replay a run's order).
fn thresholds(total: usize, kills: usize) -> Vec<usize> {
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash: kill seed {seed}");
    let gap = total / (kills + 1);
    (1..=kills)
        .map(|k| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            k * gap + (seed as usize % (gap / 2 + 1)) - gap / 4
        })
        .collect()
}

/// Wait until every acknowledged message arrived and `queue` is empty, as long as arrivals keep
/// coming (a drain of thousands of messages takes longer than one fixed timeout).
fn drain(load: &Load, arrivals: &mut Arrivals, dirs: &[PathBuf], d: &Daemon) {
    let acked = load.acked.lock().unwrap().clone();
    let (mut last, mut since) = (0, Instant::now());
    loop {
        for dir in dirs {
            arrivals.scan(dir);
        }
        let arrived = acked.iter().filter(|t| arrivals.copies.contains_key(*t)).count();
        let queue = (arrived == acked.len()).then(|| transcript(&cli(&d.config, &["queue", "list"], "")));
        if queue.as_ref().is_some_and(|q| q.contains("-- 0 messages in the queue")) {
            return;
        }
        if arrived > last {
            (last, since) = (arrived, Instant::now());
        }
        if since.elapsed() >= Duration::from_secs(120) {
            let log = d.log();
            let tail = &log[log.len().saturating_sub(20000)..];
            panic!("no progress for 120 s: {arrived} of {} acknowledged messages arrived\n{queue:?}\nlog tail:\n{tail}", acked.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lost, resent-duplicate and server-duplicate counts, printed as one summary line; with
/// `mixed` (odd tokens relayed, even ones by fast path) the duplicates are split by route too.
fn summarize(what: &str, total: usize, kills: usize, load: &Load, arrivals: &Arrivals, mixed: bool) -> usize {
    let acked = load.acked.lock().unwrap();
    let resent = load.resent.lock().unwrap();
    let lost: Vec<&String> = acked.iter().filter(|t| !arrivals.copies.contains_key(*t)).collect();
    let extra = |resent_ones: bool| {
        arrivals.copies.iter().filter(|(t, n)| **n > 1 && resent.contains(*t) == resent_ones).map(|(_, n)| n - 1).sum::<usize>()
    };
    let (client_dups, server_dups) = (extra(true), extra(false));
    let delivered: usize = arrivals.copies.values().sum();
    let twice: Vec<&String> = arrivals.copies.iter().filter(|(_, n)| **n > 1).map(|(t, _)| t).take(5).collect();
    if !twice.is_empty() {
        eprintln!("crash: delivered more than once, e.g. {twice:?}");
    }
    if mixed {
        let relayed = |t: &str| t[1..].parse::<usize>().is_ok_and(|i| i % 2 == 1);
        let by = |relay: bool| arrivals.copies.iter().filter(|(t, n)| **n > 1 && relayed(t) == relay).map(|(_, n)| n - 1).sum::<usize>();
        eprintln!("crash: duplicates by route: fast path {}, relay {}", by(false), by(true));
    }
    eprintln!(
        "crash summary: {what}: messages={total} acknowledged={} kills={kills} delivered={delivered} lost={} \
         duplicates={} (resent by the client after a broken connection: {client_dups}, delivered twice: {server_dups}) \
         dup_pct={:.3} resent={} transient_4xx={} reconnects={}",
        acked.len(),
        lost.len(),
        client_dups + server_dups,
        100.0 * (client_dups + server_dups) as f64 / total as f64,
        resent.len(),
        load.transient.load(Ordering::Relaxed),
        load.reconnects.load(Ordering::Relaxed),
    );
    assert!(lost.is_empty(), "{what}: {} acknowledged messages lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert_eq!(acked.len(), total, "every client finished");
    client_dups + server_dups
}

#[test]
fn repeated_sigkill_of_the_sending_site_under_load_loses_nothing() {
    let (total, kills) = (env_or("CRASH_MESSAGES", 1000), env_or("CRASH_KILLS", 5));
    let Sites { a, b, sink } = sites();
    let addr = Arc::new(RwLock::new(a.smtp));
    let load = Arc::new(Load::default());
    let clients = start_clients(&addr, &load, total, true);
    let mut a = a;
    for (k, at) in thresholds(total, kills).into_iter().enumerate() {
        wait_progress(&load, at);
        let (dir, config) = a.kill9();
        eprintln!("crash: kill {} of A at {} acknowledged", k + 1, load.acked());
        a = Daemon::start_with(dir, config);
        *addr.write().unwrap() = a.smtp;
    }
    for c in clients {
        c.join().unwrap();
    }
    let mut arrivals = Arrivals::default();
    let dirs = [sink.dir().to_path_buf(), b.data().join("maildir/b.example/bob/new")];
    drain(&load, &mut arrivals, &dirs, &a);
    let dups = summarize("A killed", total, kills, &load, &arrivals, true);
    // Both ways were taken, and the restarts did not turn the fast path off.
    let relayed = arrivals.read.iter().filter(|p| p.starts_with(&dirs[0])).count();
    assert!(relayed > 0 && relayed < arrivals.read.len(), "{relayed} relayed of {}", arrivals.read.len());
    assert!(a.log().contains("route=\"fast\" tel=\"+815022222222\" result=\"delivered\""), "{}", a.log());
    assert!(dups <= kills * DUPS_PER_KILL, "{dups} duplicates for {kills} kills");
}

#[test]
fn repeated_sigkill_of_the_fast_path_peer_mid_transaction_loses_nothing() {
    let (total, kills) = (env_or("CRASH_MESSAGES", 1000), env_or("CRASH_KILLS", 5));
    let Sites { a, mut b, sink: _sink } = sites();
    let addr = Arc::new(RwLock::new(a.smtp));
    let load = Arc::new(Load::default());
    let clients = start_clients(&addr, &load, total, false);
    for (k, at) in thresholds(total, kills).into_iter().enumerate() {
        // A answers 250 once B did (inline fast path): at this count A's other sessions to B
        // are mid-transaction.
        wait_progress(&load, at);
        let (dir, config) = b.kill9();
        eprintln!("crash: kill {} of B at {} acknowledged", k + 1, load.acked());
        b = Daemon::start_with(dir, config);
    }
    for c in clients {
        c.join().unwrap();
    }
    let (mut arrivals, mailbox) = (Arrivals::default(), b.data().join("maildir/b.example/bob/new"));
    drain(&load, &mut arrivals, &[mailbox], &a);
    let dups = summarize("fast-path peer B killed", total, kills, &load, &arrivals, false);
    // The kills broke fast-path transactions, and A made up for them.
    assert!(a.log().contains("fast path failed; falling back to relay"), "{}", a.log());
    // And none twice: a copy that B had spooled before its kill, which A could not know of and
    // relayed again, is recognised by B as the same message sent again (spool.resend_window).
    assert_eq!(dups, 0, "{dups} duplicates for {kills} kills of B");
}

/// Wait until `at` messages were acknowledged (while the clients keep sending).
fn wait_progress(load: &Load, at: usize) {
    let start = Instant::now();
    while load.acked() < at {
        assert!(start.elapsed() < Duration::from_secs(300), "only {} acknowledged after 300 s", load.acked());
        std::thread::sleep(Duration::from_millis(5));
    }
}
