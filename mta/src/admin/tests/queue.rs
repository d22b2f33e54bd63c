//! Queue control through the admin API while the daemon runs: each change reaches the queue
//! manager at once. Relay attempts go to 127.0.0.1:9, where nothing listens, so they fail at
//! once and leave the recipient deferred; retries are an hour apart, so any attempt seen within
//! the test is one the operator caused.

use std::net::SocketAddr;
use std::time::Duration;

use sipmta_store::{Envelope, QueueId, RcptState, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Running, api_error, blocking, start};
use crate::config::Span;
use crate::queue_control::{Action, HistoryFilter};
use crate::testutil::eventually;

/// Send one message to `rcpt` over SMTP (the test trusts loopback); its queue id.
pub(super) async fn send(addr: SocketAddr, rcpt: &str) -> QueueId {
    let mut io = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut last = String::new();
    for line in ["", "EHLO client.test", "MAIL FROM:<a@example.org>", &format!("RCPT TO:<{rcpt}>"), "DATA", "Subject: q\r\n\r\nx\r\n."] {
        if !line.is_empty() {
            io.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        }
        loop {
            last.clear();
            io.read_line(&mut last).await.unwrap();
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(last.starts_with('2') || last.starts_with('3'), "{line}: {last}");
    }
    let id = last.trim_end().rsplit(' ').next().unwrap();
    id.parse().unwrap_or_else(|_| panic!("no queue id in {last:?}"))
}

fn envelope(store: &Store, id: QueueId) -> Option<Envelope> {
    store.envelope(id).unwrap()
}

/// The one recipient's state and attempts.
fn rcpt(store: &Store, id: QueueId) -> (RcptState, u32) {
    let env = envelope(store, id).unwrap();
    (env.recipients[0].state, env.recipients[0].attempts)
}

async fn until(s: &Running, id: QueueId, want: (RcptState, u32)) {
    let store = s.store.clone();
    eventually(&format!("{id} to be {want:?}"), || {
        envelope(&store, id).is_some_and(|e| (e.recipients[0].state, e.recipients[0].attempts) == want)
    })
    .await;
}

#[tokio::test]
async fn flush_hold_release_and_delete_reach_the_running_queue_manager() {
    let s = start(|c| {
        c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.relay.transport.insert("remote.example".into(), "[127.0.0.1]:9".into());
        c.relay.retry = vec![Span(Duration::from_secs(3600))];
    })
    .await;
    let c = s.client().await;
    let a = send(s.smtp, "far@remote.example").await;
    let b = send(s.smtp, "other@remote.example").await;
    // The first attempts happen on reception and fail.
    until(&s, a, (RcptState::Deferred, 1)).await;
    until(&s, b, (RcptState::Deferred, 1)).await;
    assert!(envelope(&s.store, a).unwrap().recipients[0].next_attempt > sipmta_store::now() + 3000, "the retry is an hour away");

    // Flush: retried at once, long before the retry time.
    let api = c.clone();
    let change = blocking(move || api.flush(Some(a))).await.unwrap();
    assert_eq!((change.action, change.recipients()), (Action::Flush, 1));
    until(&s, a, (RcptState::Deferred, 2)).await;
    assert_eq!(rcpt(&s.store, b), (RcptState::Deferred, 1), "only the flushed message is retried");

    // Hold: a flush of the whole queue now retries only the other message.
    let api = c.clone();
    assert_eq!(blocking(move || api.hold(a)).await.unwrap().recipients(), 1);
    assert_eq!(rcpt(&s.store, a), (RcptState::Held, 2));
    let api = c.clone();
    let change = blocking(move || api.flush(None)).await.unwrap();
    assert_eq!(change.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![b]);
    until(&s, b, (RcptState::Deferred, 2)).await;
    // The manager handled the hold's wake before the flush's; the held message was left alone.
    assert_eq!(rcpt(&s.store, a), (RcptState::Held, 2));

    // Release: attempted again at once.
    let api = c.clone();
    assert_eq!(blocking(move || api.release(a)).await.unwrap().recipients(), 1);
    until(&s, a, (RcptState::Deferred, 3)).await;

    // Delete: gone from the spool while the daemon runs; no DSN is queued for it.
    let api = c.clone();
    let change = blocking(move || api.delete(a)).await.unwrap();
    assert_eq!(change.messages[0].recipients, vec!["far@remote.example".to_string()]);
    assert!(envelope(&s.store, a).is_none());
    assert!(s.store.message(a).unwrap().is_none());
    assert_eq!(s.store.queue().map(|e| e.unwrap().id).collect::<Vec<_>>(), vec![b], "no DSN was queued");
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.hold(a)).await), (404, format!("no such message: {a}")));

    // The history tells the story, and outlives the message.
    let api = c.clone();
    let events = blocking(move || api.history(&HistoryFilter { rcpt: Some("FAR@remote.example".into()), since: None })).await.unwrap();
    let texts: Vec<&str> = events.iter().map(|e| e.text.as_str()).collect();
    let at = |prefix: &str| texts.iter().position(|t| t.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix:?} not in {texts:?}"));
    assert!(at("received from client.test") < at("flushed by the operator"));
    assert!(at("flushed by the operator") < at("held by the operator"));
    assert!(at("held by the operator") < at("released by the operator"));
    assert!(at("released by the operator") < at("deleted by the operator"));
    assert!(events.iter().all(|e| e.id == a), "only the recipient's message: {events:?}");
    assert_eq!(texts.iter().filter(|t| t.starts_with("deferred: ")).count(), 3, "{texts:?}");
    s.stop().await;
}

#[tokio::test]
async fn history_is_filtered_by_the_query() {
    let s = start(|_| {}).await;
    let (x, y) = (QueueId(0x10), QueueId(0x20));
    s.store.record(x, Some("bob@remote.example"), "one").unwrap();
    s.store.record(y, Some("carol@remote.example"), "two").unwrap();
    let c = s.client().await;
    let api = c.clone();
    let all = blocking(move || api.history(&HistoryFilter::default())).await.unwrap();
    assert_eq!(all.iter().map(|e| (e.id, e.text.as_str())).collect::<Vec<_>>(), vec![(x, "one"), (y, "two")]);
    // Addresses with characters that need encoding arrive intact.
    s.store.record(y, Some("we+ird&x=1@remote.example"), "three").unwrap();
    let api = c.clone();
    let odd = blocking(move || api.history(&HistoryFilter { rcpt: Some("WE+IRD&x=1@remote.example".into()), since: None })).await.unwrap();
    assert_eq!(odd.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), vec!["three"]);
    let api = c.clone();
    let future = sipmta_store::now() + 3600;
    assert!(blocking(move || api.history(&HistoryFilter { rcpt: None, since: Some(future) })).await.unwrap().is_empty());
    // The API also takes a duration itself.
    let api = c.clone();
    let recent = blocking(move || api.raw("GET", "/history?since=1h", b"")).await.unwrap();
    assert_eq!(recent.status, 200);
    assert_eq!(serde_json::from_slice::<Vec<crate::queue_control::HistoryEntry>>(&recent.body).unwrap().len(), 3);
    s.stop().await;
}
