//! The demo's cast: the built-in registrar on its own store, and two sites, each a full
//! [`Server`] built from a config written here as TOML text (the same path `serve` takes, so
//! the demo runs what an operator runs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sipfast::registrar::RegistrarHandle;
use sipmta_store::{QueueId, Store};
use tokio::sync::oneshot;

use super::{A_NUMBER, B_NUMBER, ms};
use crate::config::Config;
use crate::server::Server;
use crate::smtp::Kind;

/// The SIP domain (and digest realm) of the demo.
pub const SIP_DOMAIN: &str = "sip.demo.invalid";

/// How often the demo looks for a change it waits on.
const POLL: Duration = Duration::from_millis(2);

const A_PASSWORD: &str = "demo-secret-a";
const B_PASSWORD: &str = "demo-secret-b";

fn quoted(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

fn parse(what: &str, text: &str) -> Result<Config> {
    Config::from_toml(text).map_err(|e| anyhow::anyhow!("the demo's config for {what} is invalid (a bug):\n{e}"))
}

/// What both sites share: loopback listeners the kernel picks, no admin API or submission
/// port, the fast path registering `number` through `proxy`. Nothing here needs DNS; the
/// resolver points at a closed loopback port so the demo never leaves the machine.
fn site_config(dir: &Path, name: &str, domains: &str, number: &str, password: &str, proxy: SocketAddr, transport: &str) -> String {
    format!(
        "hostname = \"mx.{name}.example\"\ndata_dir = {data}\nlocal_domains = [{domains}]\ntrusted_networks = [\"127.0.0.0/8\"]\n\
         [smtp]\nlisten = [\"127.0.0.1:0\"]\n[submission]\nlisten = []\n[admin]\nlisten = []\n\
         [registrar]\nenabled = false\n\
         [fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:0\"\nstream_listen = \"127.0.0.1:0\"\nproxy = \"{proxy}\"\ndomain = \"{SIP_DOMAIN}\"\n\
         [[fastpath.numbers]]\nnumber = \"{number}\"\npassword = \"{password}\"\n\
         [relay]\nnameservers = [\"127.0.0.1:9\"]\nretry = [\"1s\"]\n[relay.transport]\n{transport}",
        data = quoted(&dir.join(name)),
    )
}

/// Site B: the final server for b.example and c.example.
pub fn b_config(dir: &Path, proxy: SocketAddr) -> String {
    site_config(dir, "b", "\"b.example\", \"c.example\"", B_NUMBER, B_PASSWORD, proxy, "")
}

/// Site A: the sender's outbound server; ordinary relay for B's domains goes to B's SMTP port
/// (in production an MX lookup finds it).
pub fn a_config(dir: &Path, proxy: SocketAddr, b_smtp: SocketAddr) -> String {
    let transport =
        format!("\"b.example\" = \"[{}]:{}\"\n\"c.example\" = \"[{}]:{}\"\n", b_smtp.ip(), b_smtp.port(), b_smtp.ip(), b_smtp.port());
    site_config(dir, "a", "\"a.example\"", A_NUMBER, A_PASSWORD, proxy, &transport)
}

/// The registrar, as `sipmta serve` runs it, with both sites' numbers as digest users.
pub struct Stage {
    pub proxy: SocketAddr,
    store: Store,
    registrar: RegistrarHandle,
}

impl Stage {
    pub async fn start(dir: &Path) -> Result<Stage> {
        let data = dir.join("registrar");
        let text = format!(
            "data_dir = {}\n[registrar]\nlisten = \"127.0.0.1:0\"\ndomain = \"{SIP_DOMAIN}\"\n\
             [[registrar.users]]\nnumber = \"{A_NUMBER}\"\npassword = \"{A_PASSWORD}\"\n\
             [[registrar.users]]\nnumber = \"{B_NUMBER}\"\npassword = \"{B_PASSWORD}\"\n",
            quoted(&data)
        );
        let config = parse("the registrar", &text)?;
        let (store, _) = Store::open(&data).with_context(|| format!("opening the registrar's store in {}", data.display()))?;
        let registrar = crate::registrar::start(&config, &store).await?.context("the registrar is enabled")?;
        Ok(Stage { proxy: registrar.local_addr(), store, registrar })
    }

    /// Wait until each of `users` (E.164) has a binding; their contacts, in order.
    pub async fn wait_registered(&self, users: &[&str], limit: Duration) -> Result<Vec<(String, String)>> {
        let start = Instant::now();
        loop {
            let bindings = self.store.locations()?;
            let found: Vec<(String, String)> = users
                .iter()
                .filter_map(|u| bindings.iter().find(|(aor, _)| aor.contains(u)).map(|(aor, e)| (aor.clone(), e.contact.clone())))
                .collect();
            if found.len() == users.len() {
                return Ok(found);
            }
            if start.elapsed() > limit {
                bail!("after {limit:?} only these registered with the registrar: {found:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn stop(self) {
        self.registrar.shutdown().await;
    }
}

/// One running site.
pub struct Site {
    pub smtp: SocketAddr,
    pub store: Store,
    data: PathBuf,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<()>>,
}

impl Site {
    pub async fn start(text: String) -> Result<Site> {
        let config = parse("a site", &text)?;
        let data = config.data_dir.clone();
        let server = Server::start(config).await?;
        let smtp =
            server.local_addrs().into_iter().find_map(|(k, a)| (k == Kind::Smtp).then_some(a)).context("the site has no SMTP listener")?;
        let store = server.store();
        let (stop, rx) = oneshot::channel();
        let done = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Site { smtp, store, data, stop, done })
    }

    /// Wait for the first message in `user@domain`'s Maildir; its path.
    pub async fn wait_mailbox(&self, domain: &str, user: &str, limit: Duration) -> Result<PathBuf> {
        let new = self.data.join("maildir").join(domain).join(user).join("new");
        let start = Instant::now();
        loop {
            if let Some(file) = std::fs::read_dir(&new).ok().and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path()))) {
                return Ok(file);
            }
            if start.elapsed() > limit {
                bail!("nothing in {} after {limit:?}", new.display());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Print `id`'s history lines as they are written, with the time since `since` when given,
    /// until the message has left the queue and its last line is printed.
    pub async fn follow(&self, id: QueueId, since: Option<Instant>, limit: Duration) -> Result<()> {
        let start = Instant::now();
        let mut shown = 0;
        loop {
            // Read "done" first, so every line written before it counts is printed below.
            let done = self.store.envelope(id)?.is_none();
            let events = self.store.history(id)?;
            for e in events.iter().skip(shown) {
                let when = since.map(|t| format!("[{}] ", ms(t))).unwrap_or_default();
                match &e.recipient {
                    Some(r) => println!("   {when}{r}: {}", e.text),
                    None => println!("   {when}{}", e.text),
                }
            }
            shown = shown.max(events.len());
            if done {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("{id} is still queued after {limit:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .context("a site did not stop within 30 s")?
            .context("a site panicked")?
    }
}
