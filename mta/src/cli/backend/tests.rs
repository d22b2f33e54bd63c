//! The admin commands through both backends: the same script runs against a daemon's admin API
//! and against a copy of the same store opened directly, and must print the same bytes. The
//! routing table commands are in [`tables`].

#![allow(clippy::unwrap_used)]

use std::path::Path;

use sipmta_store::{Event, RcptState, Recipient, now};

use super::*;
use crate::admin::tests::{blocking, relay_envelope};
use crate::cli::history::{self, HistoryArgs};
use crate::cli::keyword::{self, KeywordCommand};
use crate::cli::prefix::{self, PrefixCommand};
use crate::cli::queue::{self, Format, QueueCommand};
use crate::cli::route::{self, RouteCommand};
use crate::cli::user::{self, UserCommand};
use crate::queue_control::{HistoryEntry, plural};
use crate::testutil::{start, start_in};

enum Cmd {
    User(UserCommand),
    Queue(QueueCommand),
    History(HistoryArgs),
    Route(RouteCommand),
    Keyword(KeywordCommand),
    Prefix(PrefixCommand),
    Protocol(crate::cli::protocol::ProtocolCommand),
}

/// The messages the script works on.
#[derive(Debug, Clone, Copy)]
struct Seed {
    /// A deferred recipient (`far@remote.example`) and a relayed one.
    first: QueueId,
    /// One deferred recipient (`two@remote.example`).
    second: QueueId,
    /// Only history is left of it.
    gone: QueueId,
}

const TEXT: Format = Format { json: false };
const JSON: Format = Format { json: true };

/// Run commands as the CLI would, collecting what each prints or the error it reports, under
/// a label for the checks. The script leaves users as it found them; it ends with an empty queue.
/// `csv` holds the files the import commands read.
fn script(backend: &Backend, seed: Seed, csv: &Path) -> Vec<(&'static str, String)> {
    let name = || "Carol@Example.com".to_string();
    let (first, second, gone) = (seed.first.to_string(), seed.second.to_string(), seed.gone.to_string());
    let unknown = || "00000000000000FF".to_string();
    let history = |rcpt: Option<&str>, format| Cmd::History(HistoryArgs { rcpt: rcpt.map(str::to_owned), since: None, format });
    let mut commands = vec![
        ("user list", Cmd::User(UserCommand::List)),
        ("user add", Cmd::User(UserCommand::Add { name: name() })),
        ("user add again", Cmd::User(UserCommand::Add { name: name() })),
        ("user add bad", Cmd::User(UserCommand::Add { name: "bad name".into() })),
        ("user list after", Cmd::User(UserCommand::List)),
        ("user passwd", Cmd::User(UserCommand::Passwd { name: name() })),
        ("user passwd unknown", Cmd::User(UserCommand::Passwd { name: "nobody@example.com".into() })),
        ("user rm", Cmd::User(UserCommand::Rm { name: name() })),
        ("user rm again", Cmd::User(UserCommand::Rm { name: name() })),
        ("list", Cmd::Queue(QueueCommand::List { format: TEXT })),
        ("list json", Cmd::Queue(QueueCommand::List { format: JSON })),
        ("show", Cmd::Queue(QueueCommand::Show { id: first.clone(), format: TEXT })),
        ("show json", Cmd::Queue(QueueCommand::Show { id: first.clone(), format: JSON })),
        ("show gone", Cmd::Queue(QueueCommand::Show { id: gone.clone(), format: TEXT })),
        ("show unknown", Cmd::Queue(QueueCommand::Show { id: unknown(), format: TEXT })),
        ("show bad id", Cmd::Queue(QueueCommand::Show { id: "xyz".into(), format: TEXT })),
        ("history", history(None, TEXT)),
        ("history rcpt", history(Some("FAR@Remote.example"), TEXT)),
        ("history json", history(None, JSON)),
        ("history future", Cmd::History(HistoryArgs { rcpt: None, since: Some(now() + 86_400), format: TEXT })),
        ("hold", Cmd::Queue(QueueCommand::Hold { id: first.clone(), format: TEXT })),
        ("hold again", Cmd::Queue(QueueCommand::Hold { id: first.clone(), format: TEXT })),
        ("hold again json", Cmd::Queue(QueueCommand::Hold { id: first.clone(), format: JSON })),
        // In the daemon the manager now attempts it at once, and fails: still deferred.
        ("release", Cmd::Queue(QueueCommand::Release { id: first.clone(), format: TEXT })),
        ("release again", Cmd::Queue(QueueCommand::Release { id: first.clone(), format: TEXT })),
        ("flush one", Cmd::Queue(QueueCommand::Flush { id: Some(second.clone()), format: TEXT })),
        ("flush one json", Cmd::Queue(QueueCommand::Flush { id: Some(second.clone()), format: JSON })),
        ("flush all", Cmd::Queue(QueueCommand::Flush { id: None, format: TEXT })),
        ("delete", Cmd::Queue(QueueCommand::Delete { id: second.clone(), format: TEXT })),
        ("delete again", Cmd::Queue(QueueCommand::Delete { id: second.clone(), format: TEXT })),
        ("flush unknown", Cmd::Queue(QueueCommand::Flush { id: Some(unknown()), format: TEXT })),
        ("hold unknown", Cmd::Queue(QueueCommand::Hold { id: unknown(), format: TEXT })),
        ("release bad id", Cmd::Queue(QueueCommand::Release { id: "xyz".into(), format: TEXT })),
        ("delete json", Cmd::Queue(QueueCommand::Delete { id: first.clone(), format: JSON })),
        ("flush empty queue", Cmd::Queue(QueueCommand::Flush { id: None, format: TEXT })),
        ("list empty", Cmd::Queue(QueueCommand::List { format: TEXT })),
    ];
    commands.extend(tables::commands(csv));
    {
        use crate::cli::protocol::ProtocolCommand as Pr;
        commands.extend([
            ("protocol list", Cmd::Protocol(Pr::List { format: TEXT })),
            ("protocol list json", Cmd::Protocol(Pr::List { format: JSON })),
            ("protocol rm", Cmd::Protocol(Pr::Rm { number: "050-1234-5678".into(), format: TEXT })),
            ("protocol rm again", Cmd::Protocol(Pr::Rm { number: "+815012345678".into(), format: TEXT })),
            ("protocol rm bad number", Cmd::Protocol(Pr::Rm { number: "03-1234-5678".into(), format: TEXT })),
            ("protocol list after", Cmd::Protocol(Pr::List { format: TEXT })),
        ]);
    }
    let cc = "81";
    commands
        .into_iter()
        .map(|(label, cmd)| {
            let mut out = Vec::new();
            let result = match cmd {
                Cmd::User(c) => user::execute(backend, c, &mut || Ok("pw".into()), &mut out),
                Cmd::Queue(c) => queue::execute(backend, c, &mut out),
                Cmd::History(a) => history::execute(backend, a, &mut out),
                Cmd::Route(c) => route::execute(backend, &crate::config::Config::default(), c, &mut out),
                Cmd::Keyword(c) => keyword::execute(backend, cc, c, &mut out),
                Cmd::Prefix(c) => prefix::execute(backend, cc, c, &mut out),
                Cmd::Protocol(c) => crate::cli::protocol::execute(backend, cc, c, &mut out),
            };
            let printed = match result {
                Ok(()) => tables::timeless(String::from_utf8(out).unwrap()),
                Err(e) => format!("error: {e:#}"),
            };
            (label, printed)
        })
        .collect()
}

/// A store in `dir` holding the [`Seed`] messages, closed again. Times are real (the daemon
/// would expire old mail at once) and retries an hour away, so nothing is due while the
/// script runs unless the script makes it so.
async fn seed(dir: &Path) -> Seed {
    let (store, _) = Store::open(dir).unwrap();
    let later = now() + 3600;
    let deferred = |address: &str| Recipient {
        state: RcptState::Deferred,
        attempts: 1,
        next_attempt: later,
        last_reply: Some("451 4.4.1 connect to 127.0.0.1[127.0.0.1]:9 failed: Connection refused".into()),
        ..Recipient::new(address, sipmta_rules::Route::Relay)
    };
    let relayed = Recipient {
        state: RcptState::Relayed,
        attempts: 1,
        last_reply: Some("250 2.0.0 Ok: queued as 4ABC".into()),
        remote_mta: Some("mx.remote.example".into()),
        remote_dsn: Some("delivered (2.0.0) by mx.remote.example".into()),
        ..Recipient::new("done@remote.example", sipmta_rules::Route::Relay)
    };
    let first = relay_envelope();
    let first = Envelope { received: now(), recipients: vec![deferred("far@remote.example"), relayed], ..first };
    let first = store.accept(first, b"Subject: q\r\n\r\nx\r\n".to_vec()).await.unwrap();
    store.record(first, None, "received from client.test").unwrap();
    store.record(first, Some("far@remote.example"), "queued for relay").unwrap();
    let second = Envelope { received: now(), recipients: vec![deferred("two@remote.example")], ..relay_envelope() };
    let second = store.accept(second, b"Subject: 2\r\n\r\ny\r\n".to_vec()).await.unwrap();
    store.record(second, Some("two@remote.example"), "queued for relay").unwrap();
    let gone = store.next_id().unwrap();
    store.record(gone, None, "delivered and removed").unwrap();
    store.flush().unwrap();
    // The protocol table as fast-path calls leave it.
    store.protocol_negotiated("+815012345678", "smtp").unwrap();
    store.protocol_used("+815012345678").unwrap();
    store.protocol_negotiated("+818011112222", "smtp").unwrap();
    store.protocol_failed("+818011112222", "FP/1 ERR 415 unsupported-protocol").unwrap();
    store.flush().unwrap();
    Seed { first, second, gone }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn commands_print_the_same_through_the_api_and_the_store() {
    // Two data directories with the same contents (history times included): one served by a
    // daemon, one opened directly after the daemon has stopped.
    let served = tempfile::tempdir().unwrap();
    let seed = seed(served.path()).await;
    let direct = tempfile::tempdir().unwrap();
    copy_dir(served.path(), direct.path());
    let csv = tempfile::tempdir().unwrap();
    tables::write_files(csv.path());
    let csv_path = csv.path().to_path_buf();
    // Attempts fail at once and leave the recipients deferred.
    let s = start_in(served, |c| {
        c.relay.transport.insert("remote.example".into(), "[127.0.0.1]:9".into());
    })
    .await;

    let config = Config { data_dir: s.dir.path().to_path_buf(), ..Config::default() };
    let files = csv_path.clone();
    let via_api = blocking(move || {
        let backend = Backend::open(&config).unwrap();
        assert!(matches!(backend, Backend::Api(_)), "a running daemon must be used through its API");
        script(&backend, seed, &files)
    })
    .await;
    let served = s.stop().await;

    let config = Config { data_dir: direct.path().to_path_buf(), ..Config::default() };
    let via_store = blocking(move || {
        let backend = Backend::open(&config).unwrap();
        assert!(matches!(backend, Backend::Store(_)), "without a daemon the store is opened directly");
        script(&backend, seed, &csv_path)
    })
    .await;
    for (api, store) in via_api.iter().zip(&via_store) {
        assert_eq!(api, store, "`{}` printed differently", api.0);
    }
    assert_eq!(via_api.len(), via_store.len());

    // Spot checks that the script did what it says.
    let out = |label: &str| via_api.iter().find(|(l, _)| *l == label).map(|(_, o)| o.as_str()).unwrap();
    let (first, second) = (seed.first, seed.second);
    assert_eq!(out("user add"), "added user carol@example.com\n");
    assert_eq!(out("user add again"), "error: user carol@example.com already exists");
    assert_eq!(out("user list after"), "carol@example.com\n");
    assert_eq!(out("user passwd unknown"), "error: no such user: nobody@example.com");

    let list = out("list");
    assert!(list.ends_with("-- 2 messages in the queue\n"), "{list}");
    assert!(list.contains("    deferred  far@remote.example  (attempts 1, next "), "{list}");
    assert!(list.contains("\n              451 4.4.1 connect to 127.0.0.1[127.0.0.1]:9 failed"), "{list}");
    assert!(list.contains("    relayed   done@remote.example  (attempts 1)\n"), "{list}");
    let listed: Vec<Envelope> = serde_json::from_str(out("list json")).unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first, second]);

    let show = out("show");
    for want in [
        "DSN:           ENVID env-1, RET -\n",
        "recipient far@remote.example\n    state:         deferred since ",
        "    attempts:      1\n    next attempt:  ",
        "recipient done@remote.example\n",
        "    remote MTA:    mx.remote.example\n",
        "    DSNs seen:     delivered (2.0.0) by mx.remote.example\n",
        "> queued for relay\n",
    ] {
        assert!(show.contains(want), "{want:?} missing from:\n{show}");
    }
    let entry: QueueEntry = serde_json::from_str(out("show json")).unwrap();
    assert_eq!(entry.envelope.unwrap().recipients[1].remote_dsn.as_deref(), Some("delivered (2.0.0) by mx.remote.example"));
    assert_eq!(entry.history.len(), 2);
    assert!(out("show gone").contains("no longer queued"), "{}", out("show gone"));
    assert_eq!(out("show unknown"), "error: no such message: 00000000000000FF");
    assert!(out("show bad id").starts_with("error: \"xyz\" is not a queue id"), "{}", out("show bad id"));

    let history = out("history");
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(history.contains(&format!("  {first}  <far@remote.example> queued for relay\n")), "{history}");
    assert!(history.contains(&format!("  {}  delivered and removed\n", seed.gone)), "{history}");
    // The recipient's own events and those about its whole message, not the other messages'.
    let rcpt: Vec<&str> = out("history rcpt").lines().collect();
    assert_eq!(rcpt.len(), 2, "{rcpt:?}");
    assert!(rcpt[0].ends_with(&format!("  {first}  received from client.test")), "{rcpt:?}");
    let entries: Vec<HistoryEntry> = serde_json::from_str(out("history json")).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(out("history future"), "");

    assert_eq!(out("hold"), format!("held 1 recipient of {first}\n"));
    assert_eq!(out("hold again"), format!("{first}: nothing to hold (no queued or deferred recipients)\n"));
    let change: Change = serde_json::from_str(out("hold again json")).unwrap();
    assert!(change.messages.is_empty());
    assert_eq!(out("release"), format!("released 1 recipient of {first}\n"));
    assert_eq!(out("release again"), format!("{first}: nothing to release (no held recipients)\n"));
    assert_eq!(out("flush one"), format!("flushed 1 recipient of {second}\n"));
    let change: Change = serde_json::from_str(out("flush one json")).unwrap();
    assert_eq!(change.recipients(), 1);
    assert_eq!(out("flush all"), format!("flushed {} of {}\n", plural(2, "recipient"), plural(2, "message")));
    assert_eq!(out("delete"), format!("deleted {second} without a DSN (1 recipient undelivered)\n"));
    assert_eq!(out("delete again"), format!("error: no such message: {second}"));
    assert_eq!(out("flush unknown"), "error: no such message: 00000000000000FF");
    assert_eq!(out("hold unknown"), "error: no such message: 00000000000000FF");
    assert!(out("release bad id").starts_with("error: \"xyz\" is not a queue id"), "{}", out("release bad id"));
    let change: Change = serde_json::from_str(out("delete json")).unwrap();
    assert_eq!(change.messages[0].recipients, vec!["far@remote.example".to_string()]);
    assert_eq!(out("flush empty queue"), "nothing to flush: no queued or deferred recipients in the queue\n");
    assert_eq!(out("list empty"), "-- 0 messages in the queue\n");
    tables::check(&via_api, csv.path());
    let out = |label: &str| via_api.iter().find(|(l, _)| *l == label).map(|(_, o)| o.clone()).unwrap();
    assert_eq!(
        out("protocol list"),
        "+815012345678  smtp   1 uses  0 failures\n+818011112222  -      0 uses  1 failures  last failure: FP/1 ERR 415 unsupported-protocol\n-- 2 numbers\n"
    );
    assert_eq!(out("protocol rm"), "removed +815012345678 from the protocol table\n");
    assert_eq!(out("protocol rm again"), "error: no protocol table entry for +815012345678");
    assert!(out("protocol rm bad number").starts_with("error: \"03-1234-5678\" is not a number"), "{}", out("protocol rm bad number"));
    assert!(out("protocol list after").ends_with("-- 1 number\n"), "{}", out("protocol list after"));

    // Both stores kept the history of what the operator did.
    for dir in [served.path(), direct.path()] {
        let (store, _) = Store::open(dir).unwrap();
        let texts = |id| store.history(id).unwrap().into_iter().map(|e: Event| e.text).collect::<Vec<_>>();
        let first = texts(first);
        for want in ["held by the operator", "released by the operator", "flushed by the operator"] {
            assert!(first.iter().any(|t| t == want), "{want:?} missing: {first:?}");
        }
        // In the daemon an attempt that was under way may finish, and be recorded, after that.
        assert!(first.iter().any(|t| t.starts_with("deleted by the operator")), "{first:?}");
        assert!(texts(second).iter().any(|t| t.starts_with("deleted by the operator")));
        assert_eq!(store.queue_len(), 0);
    }
}

#[tokio::test]
async fn a_daemon_without_its_api_is_named_as_the_holder() {
    let s = start(|c| c.admin.listen = vec![]).await;
    let config = Config { data_dir: s.dir.path().to_path_buf(), ..Config::default() };
    let err = blocking(move || Backend::open(&config).map(drop)).await.unwrap_err();
    assert!(format!("{err:#}").contains("held by a running `sipmta serve` whose admin API is not reachable"), "{err:#}");
    s.stop().await;
}

mod tables;
