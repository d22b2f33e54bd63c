//! Relay policy, local recipients, address abuse forms and smuggling, as transcripts.

use super::*;
use crate::config::IpNet;

#[tokio::test]
async fn relay_is_refused_without_authentication_even_from_loopback() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, LOOPBACK);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert_eq!(c.cmd("RCPT TO:<someone@remote.example>").await, "554 5.7.1 <someone@remote.example>: Relay access denied");
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
}

#[tokio::test]
async fn trusted_networks_may_relay() {
    let h = harness_with(|c| c.trusted_networks = vec!["192.0.2.0/24".parse::<IpNet>().unwrap()]);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.send_mail("a@example.org", &["someone@remote.example", "postmaster@localhost"], MESSAGE).await;
    let env = h.envelope_of(&r);
    assert_eq!(env.recipients[0].route, sipmta_rules::Route::Relay);
    assert_eq!(env.recipients[0].state, sipmta_store::RcptState::Queued);
    assert_eq!(env.recipients[1].route, sipmta_rules::Route::Local);
    let mut other = h.client(Kind::Smtp, "198.51.100.1:1");
    other.hello().await;
    other.cmd("MAIL FROM:<a@example.org>").await;
    assert!(other.cmd("RCPT TO:<someone@remote.example>").await.starts_with("554 5.7.1"));
}

/// The open-relay battery: none of these may be accepted for relaying without AUTH.
#[tokio::test]
async fn no_address_form_relays_without_authentication() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    let cases = [
        ("<user%remote.example@localhost>", "553 5.1.3"),
        ("<remote.example!user@localhost>", "553 5.1.3"),
        ("<\"user@remote.example\"@localhost>", "553 5.1.3"),
        ("<\"user%remote.example\"@localhost>", "553 5.1.3"),
        ("<@localhost:user@remote.example>", "554 5.7.1"),
        ("<@localhost,@mx.test:user@remote.example>", "554 5.7.1"),
        // smtp-proto refuses address literals outright; either way it is not relayed.
        ("<user@[192.0.2.1]>", "501 5.1.3"),
        ("<user@remote.example.>", "554 5.7.1"),
        ("<user>", "501 5.1.3"),
        ("<user@localhost@remote.example>", "501 5.1.3"),
        ("<>", "501 5.1.3"),
        ("<../../etc@localhost>", "501 5.1.3"),
        ("<\"../../etc\"@localhost>", "553 5.1.3"),
    ];
    for (rcpt, expected) in cases {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert!(r.starts_with(expected), "{rcpt}: expected {expected}, got {r}");
    }
    // Mixed-case local domains are local; unqualified Postmaster must be accepted (RFC 5321 §4.1.1.3).
    assert_eq!(c.cmd("RCPT TO:<PostMaster@LocalHost>").await, "250 2.1.5 Ok");
    assert_eq!(c.cmd("RCPT TO:<Postmaster>").await, "250 2.1.5 Ok");
}

#[tokio::test]
async fn known_users_only_domains_refuse_strangers_but_not_postmaster() {
    let h = harness_with(|c| {
        c.local_domains = vec!["example.com".into(), "open.example".into()];
        c.local.known_users_only = vec!["example.com".into()];
    });
    h.user("alice@example.com", "pw");
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: RCPT TO:<bob@example.com>
         S: 550 5.1.1 <bob@example.com>: User unknown
         C: RCPT TO:<Alice@Example.com>
         S: 250 2.1.5 Ok
         C: RCPT TO:<postmaster@example.com>
         S: 250 2.1.5 Ok
         C: RCPT TO:<anyone@open.example>
         S: 250 2.1.5 Ok",
    )
    .await;
}

/// SMTP smuggling: each payload must stay inside one message; the smuggled transaction
/// never happens.
#[tokio::test]
async fn smuggling_payloads_never_split_a_message() {
    let forms: &[&[u8]] = &[b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\r\r\n", b"\r\n\x00.\r\n"];
    for form in forms {
        let mut h = harness();
        let mut c = h.client(Kind::Smtp, REMOTE);
        c.hello().await;
        c.cmd("MAIL FROM:<a@example.org>").await;
        c.cmd("RCPT TO:<postmaster@localhost>").await;
        c.cmd("DATA").await;
        let mut payload = b"Subject: smuggle\r\n\r\nfirst".to_vec();
        payload.extend_from_slice(form);
        payload
            .extend_from_slice(b"MAIL FROM:<admin@localhost>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n");
        c.send(&payload).await;
        c.send(b".\r\nQUIT\r\n").await;
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{form:?}: {r}");
        assert_eq!(c.reply().await, "221 2.0.0 mx.test Bye", "{form:?}: the smuggled commands were not run");
        let env = h.envelope_of(&r);
        assert_eq!(env.recipients.len(), 1);
        assert_eq!(env.recipients[0].address, "postmaster@localhost");
        assert!(h.message_of(&r).contains("MAIL FROM:<admin@localhost>"), "{form:?}: payload is message content");
        assert!(h.accepted.try_recv().is_ok());
        assert!(h.accepted.try_recv().is_err(), "{form:?}: exactly one message");
    }
}

#[tokio::test]
async fn bare_line_endings_can_be_refused() {
    let h = harness_with(|c| c.smtp.bare_line_endings = crate::config::BareEndings::Reject);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: x\r\n\r\nline\nnext\r\n").await;
    assert_eq!(c.cmd(".").await, "550 5.5.2 Message contains a bare CR or LF (RFC 5321 §2.3.8)");
    assert_eq!(h.store().queue_len(), 0);
    // The session stays in step and can send a clean message.
    let r = c.send_mail("a@example.org", &["postmaster@localhost"], MESSAGE).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
}

#[tokio::test]
async fn a_mail_loop_is_refused() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let body = format!("{}Subject: loop\r\n\r\nx\r\n", "Received: from a by b; Sat, 1 Jan 2026 00:00:00 +0000\r\n".repeat(51));
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    c.send(body.as_bytes()).await;
    assert_eq!(c.cmd(".").await, "554 5.4.6 Too many hops (mail loop?)");
}

#[tokio::test]
async fn low_disk_space_refuses_at_mail() {
    let h = harness_with(|c| c.spool.min_free_space = ByteSize(u64::MAX));
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await, "452 4.3.1 Insufficient system storage");
}

#[tokio::test]
async fn a_fast_path_stream_never_relays_even_for_trusted_peers() {
    let h = harness_with(|c| c.trusted_networks = vec!["0.0.0.0/0".parse::<IpNet>().unwrap()]);
    let mut c = h.client(Kind::FastPath, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert!(c.cmd("RCPT TO:<someone@remote.example>").await.starts_with("554 5.7.1"));
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
}
