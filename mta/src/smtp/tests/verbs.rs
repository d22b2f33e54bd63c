//! One transcript per verb and its reply paths.

use super::*;

#[tokio::test]
async fn ehlo_announces_the_extensions() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    let ehlo = c.hello().await;
    for ext in ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "STARTTLS"] {
        assert!(ehlo.lines().any(|l| l[4..] == *ext), "{ext} missing in\n{ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "no AUTH on port 25:\n{ehlo}");
}

#[tokio::test]
async fn helo_is_plain_smtp_and_refuses_esmtp_parameters() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.script(
        "S: 220 mx.test ESMTP sipmta
         C: HELO client.example
         S: 250 mx.test
         C: MAIL FROM:<a@example.org> SIZE=100
         S: 555 5.5.4 MAIL parameters need EHLO
         C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: RCPT TO:<postmaster@localhost> NOTIFY=SUCCESS
         S: 555 5.5.4 RCPT parameters need EHLO
         C: QUIT
         S: 221 2.0.0 mx.test Bye
         S: <eof>",
    )
    .await;
}

#[tokio::test]
async fn ehlo_without_a_name_is_a_syntax_error() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.reply().await;
    let r = c.cmd("EHLO").await;
    assert!(r.starts_with("501 5.5.4"), "{r}");
}

#[tokio::test]
async fn bad_sequences_are_503() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.script(
        "S: 220 *
         C: MAIL FROM:<a@example.org>
         S: 503 5.5.1 Send EHLO or HELO first
         C: EHLO client.example
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250-*
         S: 250 HELP
         C: RCPT TO:<postmaster@localhost>
         S: 503 5.5.1 Need MAIL before RCPT
         C: DATA
         S: 503 5.5.1 Need MAIL command
         C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: MAIL FROM:<b@example.org>
         S: 503 5.5.1 Nested MAIL command
         C: DATA
         S: 554 5.5.1 No valid recipients",
    )
    .await;
}

#[tokio::test]
async fn a_local_message_is_spooled_with_a_received_header() {
    let mut h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.send_mail("a@example.org", &["postmaster@localhost"], MESSAGE).await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let env = h.envelope_of(&r);
    assert_eq!(env.sender, "a@example.org");
    assert_eq!(env.recipients.len(), 1);
    assert_eq!(env.recipients[0].route, sipmta_rules::Route::Local);
    assert_eq!(env.origin.helo, "client.example");
    assert_eq!(h.accepted.try_recv().ok(), Some(env.id));
    let msg = h.message_of(&r);
    assert!(msg.starts_with("Received: from client.example ([192.0.2.55])\r\n\tby mx.test (sipmta) with ESMTP id "), "{msg}");
    assert!(msg.contains("\r\n\tfor <postmaster@localhost>;\r\n\t"), "{msg}");
    assert!(msg.ends_with(MESSAGE), "{msg}");
    assert_eq!(env.size as usize, msg.len());
}

#[tokio::test]
async fn rset_noop_vrfy_help_expn_unknown_and_quit() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: RSET
         S: 250 2.0.0 Ok
         C: RCPT TO:<postmaster@localhost>
         S: 503 5.5.1 Need MAIL before RCPT
         C: NOOP
         S: 250 2.0.0 Ok
         C: VRFY postmaster
         S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
         C: EXPN staff
         S: 502 5.5.1 EXPN not available
         C: ETRN example.org
         S: 502 5.5.1 Command not implemented
         C: XYZZY
         S: 500 5.5.1 Command unrecognized
         C: HELP
         S: 214-2.0.0 sipmta supports: *
         S: 214-2.0.0 Extensions: *
         S: 214 2.0.0 See RFC 5321*
         C: QUIT
         S: 221 2.0.0 mx.test Bye
         S: <eof>",
    )
    .await;
}

#[tokio::test]
async fn vrfy_can_be_disabled() {
    let h = harness_with(|c| c.smtp.vrfy = false);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    assert_eq!(c.cmd("VRFY postmaster").await, "502 5.5.1 VRFY disabled");
}

#[tokio::test]
async fn dsn_parameters_are_validated_and_stored() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: MAIL FROM:<a@example.org> RET=HDRS ENVID=QQ314159+2Bx BODY=8BITMIME SMTPUTF8
         S: 250 2.1.0 Ok
         C: RCPT TO:<postmaster@localhost> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Post+2Bmaster@localhost
         S: 250 2.1.5 Ok
         C: RCPT TO:<other@localhost> NOTIFY=NEVER,SUCCESS
         S: 501 5.5.4 *
         C: RCPT TO:<other@localhost> NOTIFY=BOGUS
         S: 501 5.5.4 Invalid NOTIFY parameter
         C: RCPT TO:<other@localhost> ORCPT=x400;foo
         S: 501 5.5.4 Invalid ORCPT parameter
         C: RCPT TO:<third@localhost> NOTIFY=NEVER
         S: 250 2.1.5 Ok
         C: DATA
         S: 354 *",
    )
    .await;
    c.send(MESSAGE.as_bytes()).await;
    let r = c.cmd(".").await;
    let env = h.envelope_of(&r);
    assert_eq!(env.ret, Some(sipmta_store::Ret::Hdrs));
    assert_eq!(env.env_id.as_deref(), Some("QQ314159+x"));
    assert_eq!(env.body, sipmta_store::Body::EightBitMime);
    assert!(env.smtputf8);
    let first = &env.recipients[0];
    assert_eq!(first.orcpt.as_deref(), Some("rfc822;Post+master@localhost"));
    let n = first.notify.unwrap();
    assert!(n.success && n.delay && !n.failure && !n.never);
    assert!(env.recipients[1].notify.unwrap().never);
}

#[tokio::test]
async fn envid_longer_than_100_characters_is_refused() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.cmd(&format!("MAIL FROM:<a@example.org> ENVID={}", "x".repeat(101))).await;
    assert_eq!(r, "501 5.5.4 Invalid ENVID parameter");
}

#[tokio::test]
async fn unannounced_extensions_are_555() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    for params in ["BODY=BINARYMIME", "REQUIRETLS", "HOLDFOR=10", "FOO=bar"] {
        let r = c.cmd(&format!("MAIL FROM:<a@example.org> {params}")).await;
        assert!(r.starts_with("555 5.5.4"), "{params}: {r}");
    }
}

#[tokio::test]
async fn utf8_addresses_need_smtputf8() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: MAIL FROM:<δοκιμή@example.org>
         S: 553 5.6.7 *
         C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: RCPT TO:<孫子@localhost>
         S: 553 5.6.7 *
         C: RSET
         S: 250 2.0.0 Ok
         C: MAIL FROM:<δοκιμή@example.org> SMTPUTF8
         S: 250 2.1.0 Ok
         C: RCPT TO:<孫子@localhost>
         S: 250 2.1.5 Ok",
    )
    .await;
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<abuse@localhost>\r\nDATA\r\n")
        .await;
    c.script(
        "S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 554 5.7.1 <x@remote.example>: Relay access denied
         S: 250 2.1.5 Ok
         S: 354 End data with <CR><LF>.<CR><LF>",
    )
    .await;
    c.send(format!("{MESSAGE}.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nQUIT\r\n").as_bytes()).await;
    c.script(
        "S: 250 2.0.0 Ok: queued as *
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 221 2.0.0 mx.test Bye",
    )
    .await;
}

#[tokio::test]
async fn repeated_recipients_are_kept_once() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.send_mail("a@example.org", &["postmaster@localhost", "Postmaster@LOCALHOST"], MESSAGE).await;
    assert_eq!(h.envelope_of(&r).recipients.len(), 1);
}

#[tokio::test]
async fn client_gone_during_data_leaves_nothing() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: half\r\n\r\nand then").await;
    c.io.get_mut().shutdown().await.unwrap();
    // The server closes its side once it sees the end of input mid-message ...
    assert_eq!(c.line().await, "<eof>");
    // ... and nothing reached the store.
    assert_eq!(h.store().queue_len(), 0);
}
