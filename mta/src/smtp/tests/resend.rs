//! A message sent again after a broken connection (`spool.resend_window`): the same sender,
//! recipients and content with a Message-ID gets the first copy's id and is not spooled twice;
//! anything that differs, or lacks a Message-ID, is a new message.

use std::time::Duration;

use super::*;
use crate::config::Span;

const WITH_ID: &str = "From: a@example.org\r\nTo: postmaster@localhost\r\nMessage-ID: <1@example.org>\r\nSubject: once\r\n\r\nHello.\r\n";

fn id_of(reply: &str) -> QueueId {
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply}");
    reply.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_same_message_sent_again_gets_the_first_copys_id() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let first = c.send_mail("a@example.org", &["postmaster@localhost"], WITH_ID).await;
    // The client lost that reply and sends it again, on a new connection.
    let mut again = h.client(Kind::Smtp, REMOTE);
    again.hello().await;
    let second = again.send_mail("a@example.org", &["postmaster@localhost"], WITH_ID).await;
    assert!(second.starts_with("250 2.0.0 Ok: already accepted, the same message was sent again: queued as "), "{second}");
    assert_eq!(id_of(&second), id_of(&first));
    // A copy an earlier hop sent twice carries that hop's new Received line (and perhaps a
    // signature or stamp): the header section apart from the Message-ID is not compared.
    let relayed = format!("Received: from hop.example by hop.example id 2; Sat, 21 Nov 2026 10:00:00 +0000\r\n{WITH_ID}");
    let third = again.send_mail("a@example.org", &["postmaster@localhost"], &relayed).await;
    assert_eq!(id_of(&third), id_of(&first), "{third}");
    assert_eq!(h.store().queue_len(), 1, "spooled once");
    let history = h.store().history(id_of(&first)).unwrap();
    assert!(history.iter().any(|e| e.text.starts_with("sent again by 192.0.2.55:40000")), "{history:?}");
    let mut metrics = String::new();
    crate::metrics::METRICS.render(&mut metrics);
    assert!(metrics.contains("sipmta_resends_recognised_total{listener=\"smtp\"}"), "{metrics}");
}

#[tokio::test]
async fn a_different_or_unnamed_message_is_a_new_one() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let first = id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], WITH_ID).await);
    let mut ids = vec![first];
    // Another recipient, another sender, another body, or no Message-ID at all (twice).
    ids.push(id_of(&c.send_mail("a@example.org", &["postmaster@localhost", "abuse@localhost"], WITH_ID).await));
    ids.push(id_of(&c.send_mail("b@example.org", &["postmaster@localhost"], WITH_ID).await));
    ids.push(id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], &WITH_ID.replace("Hello.", "Hello again.")).await));
    ids.push(id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], &WITH_ID.replace("<1@", "<2@")).await));
    ids.push(id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], MESSAGE).await));
    ids.push(id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], MESSAGE).await));
    ids.dedup();
    assert_eq!(ids.len(), 7, "every one is new: {ids:?}");
    assert_eq!(h.store().queue_len(), 7);
}

#[tokio::test]
async fn a_window_of_zero_turns_it_off() {
    let h = harness_with(|c| c.spool.resend_window = Span(Duration::ZERO));
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let first = id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], WITH_ID).await);
    let second = id_of(&c.send_mail("a@example.org", &["postmaster@localhost"], WITH_ID).await);
    assert_ne!(first, second);
    assert_eq!(h.store().queue_len(), 2);
}
