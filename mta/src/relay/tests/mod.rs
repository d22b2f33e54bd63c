//! The relay queue against real peers, in-process: sipmta on port 0 submitting to Postfix's
//! smtp-sink (accept, 4xx and 5xx modes), to MX hosts served by dnsmasq on loopback, to a
//! second sipmta as a DSN-capable hop, and to a plain server without DSN. DSNs are read back
//! from the sender's Maildir and parsed as RFC 3464.

#![allow(clippy::unwrap_used)]

mod peers;

use std::path::Path;

use peers::{Plain, Sink, submit};
use sipmta_store::{QueueId, RcptState};

use super::resolve::dnsmasq::Zone;
use crate::config::{Config, Span};
use crate::dsn::{Action, ParsedAction, ParsedDsn};
use crate::testutil::{Running, eventually, start};

const BODY: &str = "Subject: relay test\r\n\r\nHello over there.\r\n";

/// A relaying site: trusts loopback, retries after 1 s.
fn site(c: &mut Config) {
    c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    c.relay.retry = vec![Span(std::time::Duration::from_secs(1))];
    c.relay.nameservers = vec!["127.0.0.1:9".parse().unwrap()];
    c.relay.dns_timeout = Span(std::time::Duration::from_millis(300));
}

fn mailbox(root: &Path, who: &str) -> Vec<String> {
    let dir = root.join("maildir/localhost").join(who).join("new");
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

/// Wait for `n` DSNs in alice's mailbox and parse the last one.
async fn dsn_for_alice(s: &Running, n: usize) -> ParsedDsn {
    let root = s.dir.path().to_path_buf();
    eventually("a DSN in alice's mailbox", || mailbox(&root, "alice").len() >= n).await;
    let mail = mailbox(&root, "alice").pop().unwrap();
    assert!(mail.starts_with("Return-Path: <>\n"), "DSNs have the null sender:\n{mail}");
    crate::dsn::parse(mail.replace('\n', "\r\n").as_bytes()).unwrap_or_else(|| panic!("not a DSN:\n{mail}"))
}

fn queued_id(reply: &str) -> QueueId {
    reply.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn mail_reaches_a_server_found_through_dns_mx() {
    let sink = Sink::start(&[], None).await;
    let dns = Zone::new().mx("remote.example", "mx1.remote.example", 10).host("mx1.remote.example", &["127.0.0.1"]).start();
    let s = start(|c| {
        site(c);
        c.relay.nameservers = vec![dns.addr()];
        c.relay.mx_port = sink.addr.port();
    })
    .await;
    let reply = submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await;
    let id = queued_id(&reply);
    eventually("the sink to get the message", || sink.messages().len() == 1).await;
    let store = s.store.clone();
    eventually("the spool to empty", || store.queue_len() == 0).await;
    let got = &sink.messages()[0];
    assert!(got.contains("Hello over there."), "{got}");
    let history = s.store.history(id).unwrap();
    assert!(history.iter().any(|e| e.text.starts_with("relayed: mx1.remote.example (250")), "{history:?}");
    assert!(mailbox(s.dir.path(), "alice").is_empty(), "smtp-sink offers DSN: no success DSN from us");
    s.stop().await;
}

#[tokio::test]
async fn a_temporary_failure_is_retried_until_it_succeeds() {
    let refusing = Sink::start(&["-r", "rcpt"], None).await;
    let port = refusing.addr.port();
    let s = start(|c| {
        site(c);
        c.relay.transport.insert("remote.example".into(), format!("[127.0.0.1]:{port}"));
    })
    .await;
    let id = queued_id(&submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await);
    let store = s.store.clone();
    let rcpt = move || store.envelope(id).ok().flatten().map(|e| e.recipients[0].clone());
    eventually("a deferral", || rcpt().is_some_and(|r| r.state == RcptState::Deferred)).await;
    let deferred = rcpt().unwrap();
    assert!(deferred.last_reply.as_deref().unwrap_or_default().starts_with("450 4.3.0"), "{deferred:?}");
    refusing.stop();
    let accepting = Sink::start(&[], Some(port)).await;
    eventually("the retry to be accepted", || accepting.messages().len() == 1).await;
    // smtp-sink writes its dump before it answers 250: wait for our record of the answer.
    let store = s.store.clone();
    eventually("the relay to be recorded", || store.history(id).unwrap().iter().any(|e| e.text.starts_with("relayed:"))).await;
    assert!(s.store.history(id).unwrap().iter().any(|e| e.text.starts_with("deferred:")), "the first attempt was deferred");
    s.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_bounces_with_a_correct_dsn() {
    let sink = Sink::start(&["-f", "rcpt"], None).await;
    let s = start(|c| {
        site(c);
        c.relay.transport.insert("remote.example".into(), format!("[127.0.0.1]:{}", sink.addr.port()));
    })
    .await;
    let id = queued_id(&submit(s.smtp, "alice@localhost", &["bob@remote.example"], "ORCPT=rfc822;Bob@Remote.Example", BODY).await);
    let dsn = dsn_for_alice(&s, 1).await;
    assert_eq!(dsn.original_envelope_id.as_deref(), Some("track-me"));
    assert_eq!(dsn.reporting_mta.as_deref(), Some("mx.test"));
    let r = &dsn.recipients[0];
    assert_eq!(r.final_recipient, "bob@remote.example");
    assert_eq!(r.original_recipient.as_deref(), Some("Bob@Remote.Example"));
    assert_eq!(r.action, ParsedAction::Known(Action::Failed));
    assert_eq!(r.status, "5.3.0");
    assert!(r.diagnostic.as_deref().unwrap_or_default().starts_with("500 5.3.0"), "{r:?}");
    let store = s.store.clone();
    eventually("the original to leave the spool", || store.envelope(id).unwrap().is_none()).await;
    s.stop().await;
}

#[tokio::test]
async fn a_null_mx_fails_at_once_with_5_1_10() {
    let dns = Zone::new().null_mx("remote.example").start();
    let s = start(|c| {
        site(c);
        c.relay.nameservers = vec![dns.addr()];
    })
    .await;
    submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await;
    let dsn = dsn_for_alice(&s, 1).await;
    assert_eq!(dsn.recipients[0].status, "5.1.10");
    assert_eq!(dsn.recipients[0].action, ParsedAction::Known(Action::Failed));
    s.stop().await;
}

#[tokio::test]
async fn an_mx_pointing_at_ourselves_is_a_loop_5_4_6() {
    let dns = Zone::new().mx("remote.example", "mx.remote.example", 10).host("mx.remote.example", &["127.0.0.1"]).start();
    let s = start(|c| {
        site(c);
        c.relay.nameservers = vec![dns.addr()];
        // Our own listener on a fixed port, which the MX port then names.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        c.smtp.listen = vec![([127, 0, 0, 1], port).into()];
        c.relay.mx_port = port;
    })
    .await;
    submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await;
    let dsn = dsn_for_alice(&s, 1).await;
    assert_eq!(dsn.recipients[0].status, "5.4.6");
    s.stop().await;
}

/// We are the backup MX (preference 20): mail goes to the better MX (10), never to us.
#[tokio::test]
async fn as_a_backup_mx_we_send_to_the_better_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dns = Zone::new()
        .mx("remote.example", "primary.remote.example", 10)
        .mx("remote.example", "backup.remote.example", 20)
        .host("primary.remote.example", &["127.0.0.2"])
        .host("backup.remote.example", &["127.0.0.1"])
        .start();
    // The primary listens on 127.0.0.2, another loopback address, on the same port as we do.
    let better = Sink::start_on(([127, 0, 0, 2], port).into()).await;
    let s = start(|c| {
        site(c);
        c.relay.nameservers = vec![dns.addr()];
        c.smtp.listen = vec![([127, 0, 0, 1], port).into()];
        c.relay.mx_port = port;
    })
    .await;
    submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await;
    eventually("the better MX to get it", || better.messages().len() == 1).await;
    s.stop().await;
}

#[tokio::test]
async fn mail_that_cannot_leave_expires_with_a_failed_dsn_after_a_delay_warning() {
    let s = start(|c| {
        site(c);
        c.relay.transport.insert("remote.example".into(), "[127.0.0.1]:9".into());
        c.relay.delay_warning = Span(std::time::Duration::from_secs(1));
        c.relay.lifetime = Span(std::time::Duration::from_secs(3));
    })
    .await;
    let id = queued_id(&submit(s.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await);
    let delayed = dsn_for_alice(&s, 1).await;
    assert_eq!(delayed.recipients[0].action, ParsedAction::Known(Action::Delayed));
    assert_eq!(delayed.recipients[0].status, "4.4.1");
    let failed = dsn_for_alice(&s, 2).await;
    assert_eq!(failed.recipients[0].action, ParsedAction::Known(Action::Failed));
    assert_eq!(failed.recipients[0].status, "4.4.7");
    let history = s.store.history(id).unwrap();
    assert!(history.iter().any(|e| e.text.starts_with("gave up after 3s")), "{history:?}");
    assert_eq!(mailbox(s.dir.path(), "alice").len(), 2, "one delayed, one failed: nothing more");
    s.stop().await;
}

#[tokio::test]
async fn a_next_hop_without_dsn_gets_a_relayed_dsn_and_connections_are_reused() {
    let plain = Plain::start().await;
    let s = start(|c| {
        site(c);
        c.relay.transport.insert("remote.example".into(), format!("[127.0.0.1]:{}", plain.addr.port()));
        c.relay.max_connections_per_destination = 1;
    })
    .await;
    for _ in 0..3 {
        submit(s.smtp, "alice@localhost", &["bob@remote.example"], "NOTIFY=SUCCESS", BODY).await;
    }
    let relayed = dsn_for_alice(&s, 3).await;
    assert_eq!(relayed.recipients[0].action, ParsedAction::Known(Action::Relayed));
    assert_eq!(plain.messages.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(plain.connections.load(std::sync::atomic::Ordering::SeqCst) < 3, "one connection carries several messages");
    s.stop().await;
}

#[tokio::test]
async fn smarthosts_are_tried_by_priority_past_failures_and_4xx() {
    let soft = Sink::start(&["-r", "rcpt"], None).await;
    let good = Sink::start(&[], None).await;
    let s = start(|c| {
        site(c);
        let host = |name: &str, port: u16, priority| crate::config::Smarthost {
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            priority,
            starttls: crate::config::TlsPolicy::Opportunistic,
            verify_certificate: false,
            username: None,
            password: None,
            password_file: None,
        };
        c.relay.smarthosts = vec![host("third", good.addr.port(), 30), host("first", 9, 10), host("second", soft.addr.port(), 20)];
    })
    .await;
    let id = queued_id(&submit(s.smtp, "alice@localhost", &["bob@anywhere.example"], "", BODY).await);
    eventually("the third smarthost to take it", || good.messages().len() == 1).await;
    assert!(soft.messages().is_empty());
    // smtp-sink writes its dump before it answers 250: wait for our record of the answer.
    let store = s.store.clone();
    eventually("the relay to be recorded", || store.history(id).unwrap().iter().any(|e| e.text.starts_with("relayed: 127.0.0.1"))).await;
    s.stop().await;
}

/// Two sipmta sites: A relays to B, which delivers and sends a `delivered` DSN back; A's DSN
/// tracking records it against the original message. B offers DSN, so A sends none itself.
#[tokio::test]
async fn a_dsn_from_a_second_sipmta_is_tracked_and_delivered_to_the_sender() {
    let a_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let b = start(|c| {
        site(c);
        c.hostname = "mx-b.test".into();
        c.local_domains = vec!["remote.example".into()];
        c.relay.transport.insert("localhost".into(), format!("[127.0.0.1]:{a_port}"));
    })
    .await;
    let a = start(|c| {
        site(c);
        c.smtp.listen = vec![([127, 0, 0, 1], a_port).into()];
        c.relay.transport.insert("remote.example".into(), format!("[127.0.0.1]:{}", b.smtp.port()));
    })
    .await;
    let id = queued_id(&submit(a.smtp, "alice@localhost", &["bob@remote.example"], "NOTIFY=SUCCESS,FAILURE", BODY).await);
    let b_root = b.dir.path().to_path_buf();
    eventually("delivery at B", || std::fs::read_dir(b_root.join("maildir/remote.example/bob/new")).is_ok_and(|d| d.count() == 1)).await;
    let dsn = dsn_for_alice(&a, 1).await;
    assert_eq!(dsn.reporting_mta.as_deref(), Some("mx-b.test"));
    assert_eq!(dsn.recipients[0].action, ParsedAction::Known(Action::Delivered));
    assert_eq!(dsn.original_envelope_id.as_deref(), Some("track-me"));
    let store = a.store.clone();
    eventually("A to record the DSN", || {
        store.history(id).unwrap().iter().any(|e| e.text.starts_with("DSN from mx-b.test: delivered 2.0.0"))
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// With the return-path rewrite, B's DSN comes to A's bounce address first; A records it and
/// passes it on only because the sender asked (NOTIFY=SUCCESS).
#[tokio::test]
async fn return_path_rewrite_brings_dsns_back_first() {
    let a_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let b = start(|c| {
        site(c);
        c.hostname = "mx-b.test".into();
        c.local_domains = vec!["remote.example".into()];
        c.relay.transport.insert("mx.test".into(), format!("[127.0.0.1]:{a_port}"));
    })
    .await;
    let a = start(|c| {
        site(c);
        c.smtp.listen = vec![([127, 0, 0, 1], a_port).into()];
        c.relay.return_path_rewrite = true;
        c.relay.transport.insert("remote.example".into(), format!("[127.0.0.1]:{}", b.smtp.port()));
    })
    .await;
    // The sender asks for nothing: B still reports success to A (we asked for it), A records
    // it and does not bother the sender.
    let quiet = queued_id(&submit(a.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await);
    let store = a.store.clone();
    eventually("A to learn the outcome", || {
        store.history(quiet).unwrap().iter().any(|e| e.text.starts_with("DSN from mx-b.test: delivered"))
    })
    .await;
    // This sender asks for success reports: it gets B's DSN, passed on by A.
    let asked = queued_id(&submit(a.smtp, "alice@localhost", &["carol@remote.example"], "NOTIFY=SUCCESS", BODY).await);
    let dsn = dsn_for_alice(&a, 1).await;
    assert_eq!(dsn.recipients[0].final_recipient, "carol@remote.example");
    let history = a.store.history(asked).unwrap();
    assert!(history.iter().any(|e| e.text.contains("DSN passed on to alice@localhost")), "{history:?}");
    assert_eq!(mailbox(a.dir.path(), "alice").len(), 1, "the first sender was not bothered");
    a.stop().await;
    b.stop().await;
}

/// A smarthost that wants AUTH: our own sipmta's submission port (plaintext AUTH is allowed
/// because it is on loopback). With the right password the message is relayed; with a wrong
/// one it is deferred, not bounced.
#[tokio::test]
async fn smarthost_auth_good_and_bad_passwords() {
    let smart = start(|c| {
        site(c);
        c.hostname = "smart.test".into();
        c.trusted_networks.clear();
        c.local_domains = vec!["remote.example".into()];
    })
    .await;
    smart.store.add_user("relay@site.test", "s3cret").unwrap();
    let host = |password: &str| crate::config::Smarthost {
        name: "provider".into(),
        host: "127.0.0.1".into(),
        port: smart.submission.port(),
        priority: 0,
        starttls: crate::config::TlsPolicy::Opportunistic,
        verify_certificate: false,
        username: Some("relay@site.test".into()),
        password: Some(password.into()),
        password_file: None,
    };
    let good = start(|c| {
        site(c);
        c.relay.smarthosts = vec![host("s3cret")];
    })
    .await;
    submit(good.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await;
    let root = smart.dir.path().to_path_buf();
    eventually("delivery through the smarthost", || {
        std::fs::read_dir(root.join("maildir/remote.example/bob/new")).is_ok_and(|d| d.count() == 1)
    })
    .await;
    let bad = start(|c| {
        site(c);
        c.relay.smarthosts = vec![host("wrong")];
    })
    .await;
    let id = queued_id(&submit(bad.smtp, "alice@localhost", &["bob@remote.example"], "", BODY).await);
    let store = bad.store.clone();
    let rcpt = move || store.envelope(id).ok().flatten().map(|e| e.recipients[0].clone());
    eventually("a deferral", || rcpt().is_some_and(|r| r.attempts >= 1)).await;
    let r = rcpt().unwrap();
    assert_eq!(r.state, RcptState::Deferred, "{r:?}");
    assert!(r.last_reply.as_deref().unwrap_or_default().contains("AUTH: 535 5.7.8"), "{r:?}");
    assert!(mailbox(bad.dir.path(), "alice").is_empty(), "no bounce for our own wrong password");
    for s in [good, bad, smart] {
        s.stop().await;
    }
}

/// A process killed between recording a message's last result and removing it leaves a
/// spooled message with nothing to do; the queue manager removes it at the next start instead
/// of keeping it in the queue forever (found by the crash test under load).
#[tokio::test]
async fn a_finished_message_left_in_the_spool_by_a_crash_is_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (store, _) = sipmta_store::Store::open(dir.path()).unwrap();
        let mut rcpt = sipmta_store::Recipient::new("bob@remote.example", sipmta_rules::Route::Relay);
        rcpt.state = RcptState::Relayed;
        let env = sipmta_store::Envelope {
            id: QueueId(0),
            received: sipmta_store::now(),
            sender: "alice@localhost".into(),
            env_id: None,
            ret: None,
            body: sipmta_store::Body::SevenBit,
            smtputf8: false,
            size: BODY.len() as u64,
            origin: sipmta_store::Origin::default(),
            recipients: vec![rcpt],
        };
        let id = store.accept(env, BODY.as_bytes().to_vec()).await.unwrap();
        store.commit().await.unwrap();
        id
    };
    let s = crate::testutil::start_in(dir, site).await;
    let store = s.store.clone();
    eventually("the finished message to leave the spool", || store.queue_len() == 0).await;
    assert!(store.envelope(id).unwrap().is_none());
    s.stop().await;
}
