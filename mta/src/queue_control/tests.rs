//! The queue operations on a store in a temporary directory, without a daemon.

#![allow(clippy::unwrap_used)]

use sipmta_rules::Route;
use sipmta_store::{Body, Envelope, Origin, QueueId, RcptState, Recipient, Store, StoreError};

use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn rcpt(address: &str, state: RcptState, next_attempt: u64) -> Recipient {
    Recipient { state, next_attempt, attempts: u32::from(state != RcptState::Queued), ..Recipient::new(address, Route::Relay) }
}

/// Spool a message with these recipients; record its reception as the SMTP server does.
async fn spool(store: &Store, recipients: Vec<Recipient>) -> QueueId {
    let env = Envelope {
        id: QueueId(0),
        received: now(),
        sender: "a@example.org".into(),
        env_id: None,
        ret: None,
        body: Body::SevenBit,
        smtputf8: false,
        size: 0,
        origin: Origin::default(),
        recipients,
    };
    let id = store.accept(env, b"Subject: t\r\n\r\nx\r\n".to_vec()).await.unwrap();
    store.record(id, None, "received").unwrap();
    id
}

fn states(store: &Store, id: QueueId) -> Vec<(RcptState, u64)> {
    store.envelope(id).unwrap().unwrap().recipients.iter().map(|r| (r.state, r.next_attempt)).collect()
}

const LATER: u64 = 4_000_000_000;

#[tokio::test]
async fn flush_makes_only_pending_recipients_due() {
    let (_dir, store) = open();
    let id = spool(
        &store,
        vec![
            rcpt("deferred@remote.example", RcptState::Deferred, LATER),
            rcpt("queued@remote.example", RcptState::Queued, 0),
            rcpt("held@remote.example", RcptState::Held, LATER),
            rcpt("failed@remote.example", RcptState::Failed, LATER),
        ],
    )
    .await;
    let change = flush(&store, Some(id)).await.unwrap();
    assert_eq!(change.action, Action::Flush);
    assert_eq!(change.id, Some(id));
    assert_eq!(change.messages, vec![Changed { id, recipients: vec!["deferred@remote.example".into(), "queued@remote.example".into()] }]);
    assert_eq!(
        states(&store, id),
        vec![(RcptState::Deferred, 0), (RcptState::Queued, 0), (RcptState::Held, LATER), (RcptState::Failed, LATER)]
    );
    let history = store.history(id).unwrap();
    assert_eq!(history.iter().filter(|e| e.text == "flushed by the operator").count(), 2, "{history:?}");

    // Nothing pending: nothing changes, nothing is recorded.
    let quiet = spool(&store, vec![rcpt("held@remote.example", RcptState::Held, LATER)]).await;
    assert!(flush(&store, Some(quiet)).await.unwrap().messages.is_empty());
    assert_eq!(store.history(quiet).unwrap().len(), 1);
}

#[tokio::test]
async fn flush_without_an_id_covers_every_message_with_pending_recipients() {
    let (_dir, store) = open();
    let a = spool(&store, vec![rcpt("x@remote.example", RcptState::Deferred, LATER)]).await;
    let held = spool(&store, vec![rcpt("y@remote.example", RcptState::Held, LATER)]).await;
    let b = spool(&store, vec![rcpt("z@remote.example", RcptState::Deferred, LATER), rcpt("w@remote.example", RcptState::Queued, 0)]).await;
    let change = flush(&store, None).await.unwrap();
    assert_eq!(change.id, None);
    assert_eq!(change.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(change.recipients(), 3);
    assert_eq!(states(&store, a), vec![(RcptState::Deferred, 0)]);
    assert_eq!(states(&store, held), vec![(RcptState::Held, LATER)]);
}

#[tokio::test]
async fn hold_and_release_round_trip() {
    let (_dir, store) = open();
    let id = spool(
        &store,
        vec![
            rcpt("one@remote.example", RcptState::Deferred, LATER),
            rcpt("two@remote.example", RcptState::Queued, 0),
            rcpt("done@remote.example", RcptState::Relayed, 0),
        ],
    )
    .await;
    let held = hold(&store, id).await.unwrap();
    assert_eq!(held.recipients(), 2);
    assert_eq!(states(&store, id), vec![(RcptState::Held, LATER), (RcptState::Held, 0), (RcptState::Relayed, 0)]);
    // A second hold finds nothing pending and changes nothing.
    let again = hold(&store, id).await.unwrap();
    assert_eq!((again.action, again.id, again.messages.len()), (Action::Hold, Some(id), 0));

    let released = release(&store, id).await.unwrap();
    assert_eq!(released.messages, vec![Changed { id, recipients: vec!["one@remote.example".into(), "two@remote.example".into()] }]);
    // Released recipients are deferred and due at once; their attempts count is kept.
    let env = store.envelope(id).unwrap().unwrap();
    assert_eq!(states(&store, id), vec![(RcptState::Deferred, 0), (RcptState::Deferred, 0), (RcptState::Relayed, 0)]);
    assert_eq!(env.recipients[0].attempts, 1);
    assert!(release(&store, id).await.unwrap().messages.is_empty());

    let texts: Vec<_> = store.history(id).unwrap().into_iter().map(|e| (e.recipient, e.text)).collect();
    assert_eq!(
        texts[1..],
        [
            (Some("one@remote.example".into()), "held by the operator".into()),
            (Some("two@remote.example".into()), "held by the operator".into()),
            (Some("one@remote.example".into()), "released by the operator".into()),
            (Some("two@remote.example".into()), "released by the operator".into()),
        ]
    );
}

#[tokio::test]
async fn delete_removes_message_and_envelope_and_keeps_the_history() {
    let (dir, store) = open();
    let id =
        spool(&store, vec![rcpt("x@remote.example", RcptState::Deferred, LATER), rcpt("y@remote.example", RcptState::Relayed, 0)]).await;
    let other = spool(&store, vec![rcpt("z@remote.example", RcptState::Queued, 0)]).await;
    let change = delete(&store, id).await.unwrap();
    assert_eq!(change.messages, vec![Changed { id, recipients: vec!["x@remote.example".into()] }]);
    assert!(store.envelope(id).unwrap().is_none());
    assert!(store.message(id).unwrap().is_none());
    assert!(store.envelope(other).unwrap().is_some(), "other messages stay");
    let history = store.history(id).unwrap();
    assert_eq!(history.last().unwrap().text, "deleted by the operator, no DSN sent (1 recipient undelivered)");
    assert_eq!(history.last().unwrap().recipient, None);
    // Durable: the deletion and its event survive a reopen.
    drop(store);
    let (store, _) = Store::open(dir.path()).unwrap();
    assert!(store.envelope(id).unwrap().is_none());
    assert_eq!(store.history(id).unwrap(), history);
    // A second delete names the id.
    let err = delete(&store, id).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchMessage(ref s) if *s == id.to_string()), "{err}");
}

#[tokio::test]
async fn unknown_ids_are_errors_naming_them() {
    let (_dir, store) = open();
    let id = QueueId(0xFF);
    for result in [flush(&store, Some(id)).await, hold(&store, id).await, release(&store, id).await, delete(&store, id).await] {
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "no such message: 00000000000000FF");
    }
    assert!(store.history(id).unwrap().is_empty(), "nothing is recorded for an unknown id");
    // Flushing an empty queue is not an error.
    assert!(flush(&store, None).await.unwrap().messages.is_empty());
}

#[tokio::test]
async fn history_spans_messages_in_order_and_filters_by_recipient_and_time() {
    let (_dir, store) = open();
    let a = spool(&store, vec![rcpt("Bob@Remote.example", RcptState::Queued, 0)]).await;
    let b = spool(&store, vec![rcpt("carol@remote.example", RcptState::Queued, 0)]).await;
    store.record(a, Some("Bob@Remote.example"), "deferred").unwrap();
    store.record(b, Some("carol@remote.example"), "relayed").unwrap();
    store.record(a, None, "DSN queued").unwrap();
    let all = history(&store, &HistoryFilter::default()).unwrap();
    let seen: Vec<_> = all.iter().map(|e| (e.id, e.text.as_str())).collect();
    assert_eq!(seen, vec![(a, "received"), (b, "received"), (a, "deferred"), (b, "relayed"), (a, "DSN queued")]);

    // Case-insensitive, with the message-wide events of the messages concerned.
    let bob = history(&store, &HistoryFilter { rcpt: Some("<bob@remote.EXAMPLE>".into()), since: None }).unwrap();
    assert_eq!(bob.iter().map(|e| (e.id, e.text.as_str())).collect::<Vec<_>>(), vec![(a, "received"), (a, "deferred"), (a, "DSN queued")]);
    assert!(history(&store, &HistoryFilter { rcpt: Some("nobody@remote.example".into()), since: None }).unwrap().is_empty());

    assert_eq!(history(&store, &HistoryFilter { rcpt: None, since: Some(now().saturating_sub(60)) }).unwrap().len(), 5);
    assert!(history(&store, &HistoryFilter { rcpt: None, since: Some(now() + 60) }).unwrap().is_empty());
}

#[test]
fn since_takes_unix_seconds_or_a_duration_ago() {
    let now = 1_000_000;
    assert_eq!(parse_since("1700000000", now), Ok(1_700_000_000));
    assert_eq!(parse_since("2h", now), Ok(now - 7200));
    assert_eq!(parse_since("1d", now), Ok(now - 86_400));
    assert_eq!(parse_since("1h30m", now), Ok(now - 5400));
    assert_eq!(parse_since("90s", now), Ok(now - 90));
    assert_eq!(parse_since("1w", now), Ok(now - 604_800));
    assert_eq!(parse_since("99999d", now), Ok(0), "before the epoch is the epoch");
    for bad in ["", "h", "2x", "2h3", "-1h", "1.5h", "99999999999999999999d", "99999999999999999999"] {
        let err = parse_since(bad, now).unwrap_err();
        assert!(err.contains("neither Unix seconds nor a duration"), "{bad}: {err}");
    }
}
