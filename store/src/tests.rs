//! Store tests: each reopens the database to check what really reached the disk.

#![allow(clippy::unwrap_used)]

use super::*;
use sipmta_rules::Route;

pub(crate) fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        id: QueueId(0),
        received: now(),
        sender: "alice@example.org".into(),
        env_id: Some("ENV-1".into()),
        ret: Some(Ret::Hdrs),
        body: Body::EightBitMime,
        smtputf8: false,
        size: 0,
        origin: Origin { listener: "smtp".into(), peer: "127.0.0.1:1".into(), helo: "client".into(), ..Origin::default() },
        recipients: rcpts.iter().map(|a| Recipient::new(*a, Route::Local)).collect(),
    }
}

#[tokio::test]
async fn accepted_messages_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (store, rec) = Store::open(dir.path()).unwrap();
        assert_eq!(rec, Recovery::default());
        store.accept(envelope(&["bob@localhost"]), b"Subject: x\r\n\r\nhi\r\n".to_vec()).await.unwrap()
    };
    let (store, rec) = Store::open(dir.path()).unwrap();
    assert_eq!(rec.queued, 1);
    let env = store.envelope(id).unwrap().unwrap();
    assert_eq!(env.id, id);
    assert_eq!(env.size, 18);
    assert_eq!(env.env_id.as_deref(), Some("ENV-1"));
    assert_eq!(store.message(id).unwrap().unwrap(), b"Subject: x\r\n\r\nhi\r\n");
}

#[tokio::test]
async fn ids_are_unique_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let (store, _) = Store::open(dir.path()).unwrap();
        for _ in 0..5 {
            assert!(ids.insert(store.accept(envelope(&["a@localhost"]), b"x".to_vec()).await.unwrap()));
        }
    }
    assert_eq!(ids.len(), 15);
}

#[tokio::test]
async fn orphan_messages_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        // A reception interrupted after the message but before its envelope was written.
        store.inner.spool.write(QueueId(42), b"half").unwrap();
        store.flush().unwrap();
    }
    let (store, rec) = Store::open(dir.path()).unwrap();
    assert_eq!(rec.orphans_removed, 1);
    assert!(store.message(QueueId(42)).unwrap().is_none());
    assert!(!dir.path().join("spool").join(QueueId(42).to_string()).exists());
}

#[tokio::test]
async fn update_and_remove_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (id, other) = {
        let (store, _) = Store::open(dir.path()).unwrap();
        let id = store.accept(envelope(&["a@localhost", "b@remote.example"]), b"m".to_vec()).await.unwrap();
        let other = store.accept(envelope(&["c@localhost"]), b"n".to_vec()).await.unwrap();
        let mut env = store.envelope(id).unwrap().unwrap();
        env.recipients[0].state = RcptState::Delivered;
        store.update(&env).await.unwrap();
        store.record(id, Some("a@localhost"), "delivered to maildir").unwrap();
        store.remove(other).await.unwrap();
        (id, other)
    };
    let (store, _) = Store::open(dir.path()).unwrap();
    let env = store.envelope(id).unwrap().unwrap();
    assert_eq!(env.recipients[0].state, RcptState::Delivered);
    assert_eq!(env.recipients[1].state, RcptState::Queued);
    assert!(!env.is_finished());
    assert!(store.envelope(other).unwrap().is_none());
    assert!(store.message(other).unwrap().is_none());
    let history = store.history(id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, "delivered to maildir");
    assert_eq!(store.queue().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let (store, _) = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.accept(envelope(&["x@localhost"]), format!("message {i}").into_bytes()).await.unwrap() })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids
    };
    let (store, rec) = Store::open(dir.path()).unwrap();
    assert_eq!(rec.queued, 64);
    for id in ids {
        assert!(store.message(id).unwrap().is_some());
    }
}

#[tokio::test]
async fn corrupt_envelopes_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    store.inner.envelopes.insert(QueueId(7).key(), b"{not json".to_vec()).unwrap();
    assert!(matches!(store.envelope(QueueId(7)), Err(StoreError::Corrupt { .. })));
    assert!(store.queue().next().unwrap().is_err());
}

#[tokio::test]
async fn users_add_verify_change_remove() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    store.add_user("Alice@Localhost", "pw1").unwrap();
    assert!(matches!(store.add_user("alice@localhost", "x"), Err(StoreError::UserExists(_))));
    assert!(store.user_exists("ALICE@localhost").unwrap());
    assert!(store.authenticate("alice@localhost", "pw1").await.unwrap());
    assert!(!store.authenticate("alice@localhost", "pw2").await.unwrap());
    assert!(!store.authenticate("nobody@localhost", "pw1").await.unwrap());
    store.set_password("alice@localhost", "pw2").unwrap();
    assert!(store.authenticate("alice@localhost", "pw2").await.unwrap());
    let stored = store.user("alice@localhost").unwrap().unwrap();
    assert!(!stored.hash.contains("pw2"), "plain passwords never reach the store");
    assert_eq!(store.users().unwrap().len(), 1);
    store.remove_user("alice@localhost").unwrap();
    assert!(matches!(store.remove_user("alice@localhost"), Err(StoreError::NoSuchUser(_))));
    assert!(matches!(store.set_password("bob@localhost", "x"), Err(StoreError::NoSuchUser(_))));
}

#[test]
fn a_second_opener_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Locked(path)) => assert!(path.ends_with("db")),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn free_space_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    assert!(store.free_space().unwrap() > 0);
}

#[tokio::test]
async fn next_id_never_returns_a_spooled_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let taken = store.next_id().unwrap();
    // Occupy the next ids the counter would produce in this second.
    for offset in 1..=3 {
        store.inner.envelopes.insert(QueueId(taken.0 + offset).key(), b"{}".to_vec()).unwrap();
    }
    store.inner.spool.write(QueueId(taken.0 + 4), b"a message file without its envelope yet").unwrap();
    for _ in 0..4 {
        let id = store.next_id().unwrap();
        assert!(store.inner.envelopes.get(id.key()).unwrap().is_none(), "{id} is taken");
        assert!(store.message(id).unwrap().is_none(), "{id} has a file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_modifications_of_one_envelope_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let rcpts: Vec<String> = (0..16).map(|i| format!("r{i}@localhost")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let id = store.accept(envelope(&refs), b"m".to_vec()).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.modify(id, move |env| env.recipients[i].state = RcptState::Delivered).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let env = store.envelope(id).unwrap().unwrap();
    assert!(env.recipients.iter().all(|r| r.state == RcptState::Delivered), "every task's change survived");
    assert!(store.remove_if_finished(id).await.unwrap());
    assert!(store.message(id).unwrap().is_none());
    assert!(store.modify(id, |_| {}).await.unwrap().is_none(), "a removed message cannot be modified");
}

#[tokio::test]
async fn unfinished_messages_are_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let id = store.accept(envelope(&["a@localhost"]), b"m".to_vec()).await.unwrap();
    assert!(!store.remove_if_finished(id).await.unwrap());
    assert!(store.envelope(id).unwrap().is_some());
}

#[tokio::test]
async fn tracking_outlives_the_spool_entry() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (store, _) = Store::open(dir.path()).unwrap();
        let id = store.accept(envelope(&["far@remote.example"]), b"m".to_vec()).await.unwrap();
        let tracked = Tracked { id, sender: "a@example.org".into(), recipients: vec![("far@remote.example".into(), None)], at: 1 };
        store.track(&id.to_string(), &tracked).unwrap();
        store.remove(id).await.unwrap();
        id
    };
    let (store, _) = Store::open(dir.path()).unwrap();
    let t = store.tracked(&id.to_string()).unwrap().unwrap();
    assert_eq!(t.id, id);
    assert_eq!(t.sender, "a@example.org");
    assert!(store.tracked("unknown").unwrap().is_none());
}

#[tokio::test]
async fn messages_live_in_spool_files_and_old_spools_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let (id, old) = {
        let (store, _) = Store::open(dir.path()).unwrap();
        let id = store.accept(envelope(&["a@localhost"]), vec![b'x'; 300_000]).await.unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("spool").join(id.to_string())).unwrap().len(), 300_000);
        // A message stored the old way, inside sled, with its envelope.
        let old = QueueId(7);
        store.inner.envelopes.insert(old.key(), encode(&Envelope { id: old, ..envelope(&["b@localhost"]) })).unwrap();
        store.inner.messages.insert(old.key(), b"old style".to_vec()).unwrap();
        store.flush().unwrap();
        (id, old)
    };
    let (store, _) = Store::open(dir.path()).unwrap();
    assert_eq!(store.message(id).unwrap().unwrap().len(), 300_000);
    assert_eq!(store.message(old).unwrap().unwrap(), b"old style");
    assert!(store.inner.messages.is_empty(), "moved out of sled");
    store.remove(id).await.unwrap();
    assert!(!dir.path().join("spool").join(id.to_string()).exists());
}

#[tokio::test]
async fn retention_prunes_only_old_finished_history_and_old_tracking() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let cutoff = now() + 10;
    let finished = store.accept(envelope(&["a@localhost"]), b"x".to_vec()).await.unwrap();
    store.record(finished, None, "received").unwrap();
    store.record(finished, Some("a@localhost"), "delivered").unwrap();
    store.remove(finished).await.unwrap();
    let queued = store.accept(envelope(&["b@localhost"]), b"x".to_vec()).await.unwrap();
    store.record(queued, None, "received").unwrap();
    // Finished long ago, but a DSN about it came in after the cutoff.
    let late = store.accept(envelope(&["c@localhost"]), b"x".to_vec()).await.unwrap();
    store.record(late, None, "received").unwrap();
    store.remove(late).await.unwrap();
    let dsn = Event { at: cutoff + 5, recipient: None, text: "DSN from elsewhere".into() };
    let mut key = late.key().to_vec();
    key.extend_from_slice(&u64::MAX.to_be_bytes());
    store.inner.history.insert(key, serde_json::to_vec(&dsn).unwrap()).unwrap();
    // Arrived after the cutoff: outside the range a pass reads.
    let newer = QueueId(((cutoff + 100) << 32) | 1);
    store.record(newer, None, "received").unwrap();

    let pruned = store.prune_history(cutoff).unwrap();
    assert_eq!(pruned, Pruned { messages: 1, events: 2 });
    assert!(store.history(finished).unwrap().is_empty());
    assert_eq!(store.history(queued).unwrap().len(), 1);
    assert_eq!(store.history(late).unwrap().len(), 2);
    assert_eq!(store.history(newer).unwrap().len(), 1);
    assert_eq!(store.prune_history(cutoff).unwrap(), Pruned::default(), "a second pass finds nothing more");

    let tracked = |at| Tracked { id: finished, sender: "alice@example.org".into(), recipients: vec![], at };
    store.track("id:old", &tracked(cutoff - 1)).unwrap();
    store.track("id:new", &tracked(cutoff)).unwrap();
    assert_eq!(store.prune_tracking(cutoff).unwrap(), 1);
    assert!(store.tracked("id:old").unwrap().is_none());
    assert!(store.tracked("id:new").unwrap().is_some());
}
