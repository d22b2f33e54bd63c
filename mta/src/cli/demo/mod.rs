//! `sipmta demo`: the whole mission on one machine with no other software and no config.
//!
//! It starts, inside this process and on loopback ports the kernel picks, the built-in SIP
//! registrar and two sites: A (a.example, number 050-1111-1111) and B (b.example and
//! c.example, number 050-2222-2222), both registering with digest authentication. A routes
//! b.example to B's number and c.example to 050-3333-3333, which nobody registers. Then it
//! plays the mail client at A twice and prints every step with its timing:
//!
//! 1. to bob@b.example: A calls B's number, runs SMTP with B over the negotiated stream and
//!    answers the client's final `.` with B's verdict (inline mode);
//! 2. to carol@c.example: the call finds no one, so the reply says "queued" and A's relay
//!    queue carries the message to B by ordinary SMTP; A's history shows each step.
//!
//! It exits non-zero when either message does not arrive as described.

mod client;
mod sites;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sipmta_store::{QueueId, Table};

use crate::tables::{self, NewEntry};
use sites::{Site, Stage};

/// `sipmta demo`'s options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the three data directories (stores, spools, Maildirs) in DIR instead of a
    /// temporary directory removed at the end. DIR must not exist yet.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// How long any one step may take before the demo gives up.
const STEP_LIMIT: Duration = Duration::from_secs(30);

const A_NUMBER: &str = "050-1111-1111";
const B_NUMBER: &str = "050-2222-2222";
const NOBODY: &str = "050-3333-3333";

pub fn run(args: &DemoArgs) -> Result<()> {
    crate::logging::init("warn", crate::config::LogFormat::Text);
    let dir = match &args.keep {
        Some(d) if d.exists() => bail!("--keep {}: already exists; name a new directory", d.display()),
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("sipmta-demo.{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kept = if args.keep.is_some() { "kept" } else { "removed at the end; --keep DIR keeps them" };
    println!("sipmta demo: a SIP registrar and two mail sites in this process, on 127.0.0.1");
    println!("data in {} ({kept})\n", dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let result = runtime.block_on(demo(dir.clone()));
    drop(runtime);
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Milliseconds since `t`, for the step lines.
fn ms(t: Instant) -> String {
    let d = t.elapsed();
    format!("{:>6.1} ms", d.as_secs_f64() * 1000.0)
}

async fn demo(dir: PathBuf) -> Result<()> {
    let t0 = Instant::now();
    let stage = Stage::start(&dir).await?;
    println!("[{}] registrar   {} (SIP domain {}; digest users {A_NUMBER}, {B_NUMBER})", ms(t0), stage.proxy, sites::SIP_DOMAIN);
    let b = Site::start(sites::b_config(&dir, stage.proxy)).await?;
    println!("[{}] site B      b.example, c.example: SMTP {}, number {B_NUMBER}", ms(t0), b.smtp);
    let a = Site::start(sites::a_config(&dir, stage.proxy, b.smtp)).await?;
    println!("[{}] site A      a.example: SMTP {}, number {A_NUMBER}; relays c.example to B", ms(t0), a.smtp);
    for (who, contact) in stage.wait_registered(&["+815011111111", "+815022222222"], STEP_LIMIT).await? {
        println!("[{}] registered  {who} at {contact}", ms(t0));
    }
    for (key, number, note) in [("b.example", B_NUMBER, "site B"), ("c.example", NOBODY, "nobody registers this number")] {
        let new = NewEntry { key: key.into(), number: number.into(), name: Some(note.into()) };
        tables::add(&a.store, "81", Table::Routes, &new).with_context(|| format!("adding the route {key}"))?;
        println!("[{}] route at A  {key} -> {number} ({note})", ms(t0));
    }

    let result = messages(&a, &b).await;
    let stopping = Instant::now();
    a.stop().await?;
    b.stop().await?;
    stage.stop().await;
    println!("\nstopped both sites and the registrar in {}", ms(stopping).trim_start());
    result?;
    println!("\nBoth messages arrived: one by fast path with B's verdict in the client's reply,");
    println!("one by relay after the fast path found no one at its number.");
    println!("Next: README.md \"Fast path\" for a real deployment (deploy/sipmta.toml, deploy/kamailio.cfg).");
    Ok(())
}

async fn messages(a: &Site, b: &Site) -> Result<()> {
    println!("\n1. Fast path: alice@a.example -> bob@b.example (b.example is routed to {B_NUMBER})");
    let sent = client::send(a.smtp, "alice@a.example", "bob@b.example", "By fast path", "Hello Bob, straight to your server.").await?;
    println!("   the client had the final server's verdict {:.1} ms after its final dot", sent.after_dot.as_secs_f64() * 1000.0);
    if sent.code != 250 || !sent.reply.contains("via fast path") {
        bail!("expected B's verdict via fast path in the reply, got {:?}", sent.reply);
    }
    let id = queue_id(&sent.reply, "delivered as ")?;
    let t = Instant::now();
    let file = b.wait_mailbox("b.example", "bob", STEP_LIMIT).await?;
    println!("   [{}] in B's Maildir: {}", ms(t), file.display());
    println!("   A's history of {id}:");
    a.follow(id, None, STEP_LIMIT).await?;

    println!("\n2. Fallback to relay: alice@a.example -> carol@c.example (routed to {NOBODY}, not registered)");
    let sent = client::send(a.smtp, "alice@a.example", "carol@c.example", "By relay", "Hello Carol, the long way round.").await?;
    println!("   the client had its reply {:.1} ms after its final dot", sent.after_dot.as_secs_f64() * 1000.0);
    if sent.code != 250 || !sent.reply.contains("queued as ") {
        bail!("expected \"queued as\" after the fast path failed, got {:?}", sent.reply);
    }
    let id = queue_id(&sent.reply, "queued as ")?;
    let t = Instant::now();
    println!("   A's history of {id}, as it happens (times since the reply):");
    a.follow(id, Some(t), STEP_LIMIT).await?;
    let file = b.wait_mailbox("c.example", "carol", STEP_LIMIT).await?;
    println!("   [{}] in B's Maildir: {}", ms(t), file.display());
    let history = a.store.history(id)?;
    let failed = history.iter().any(|e| e.text.starts_with("fast path to ") && e.text.contains(" failed: "));
    if !failed || !history.iter().any(|e| e.text.starts_with("relayed: ")) {
        bail!("A's history does not show the fast path failing and the relay delivering");
    }
    Ok(())
}

/// The queue ID after `marker` in a reply (`... delivered as ID via ...`, `... queued as ID`).
fn queue_id(reply: &str, marker: &str) -> Result<QueueId> {
    let rest = reply.split_once(marker).map(|(_, r)| r).unwrap_or_default();
    let word = rest.split_whitespace().next().unwrap_or_default();
    word.parse().map_err(|_| anyhow::anyhow!("no queue ID after {marker:?} in {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_come_out_of_both_kinds_of_reply() {
        let id = QueueId(0x1A2B);
        let delivered = format!("250 2.0.0 Ok: delivered as {id} via fast path to +815022222222 in 3 ms (final server: 250 ok)");
        assert_eq!(queue_id(&delivered, "delivered as ").ok(), Some(id));
        assert_eq!(queue_id(&format!("250 2.0.0 Ok: queued as {id}"), "queued as ").ok(), Some(id));
        assert!(queue_id("250 2.0.0 Ok", "queued as ").is_err());
    }
}
