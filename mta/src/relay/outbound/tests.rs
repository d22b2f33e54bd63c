//! Outbound transactions against our own SMTP server (a real peer with PIPELINING, DSN, SIZE,
//! STARTTLS) over in-memory streams, and against a scripted server for the awkward cases.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sipmta_store::{Body, Notify, RcptState, Ret};

use super::*;
use crate::smtp::{Kind, SessionState, serve_connection};
use crate::testutil::{SessionCtx, session_ctx};

fn opts(tls: TlsPolicy, connector: Option<&tokio_rustls::TlsConnector>) -> OpenOptions<'_> {
    OpenOptions {
        helo: "client.test",
        tls,
        connector,
        tls_name: "mx.test",
        credentials: None,
        plain_auth_ok: false,
        timeouts: Timeouts::default(),
    }
}

/// A connector that encrypts without verifying, as opportunistic TLS to MX hosts does.
fn unverified() -> tokio_rustls::TlsConnector {
    #[derive(Debug)]
    struct Any(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Our own server on the other end of a duplex stream.
fn peer(s: &SessionCtx) -> BoxIo {
    let (client, server) = tokio::io::duplex(1 << 20);
    let st = SessionState::new(Kind::Smtp, "192.0.2.9:2000".parse().unwrap(), "127.0.0.1:25".parse().unwrap());
    tokio::spawn(serve_connection(server, s.ctx.clone(), st));
    Box::new(client)
}

const MSG: &[u8] = b"Subject: out\r\n\r\n.starts with a dot\r\nlast line\r\n";

fn txn<'a>(rcpts: &'a [&'a str], notify: Option<Notify>) -> Txn<'a> {
    Txn {
        sender: "alice@example.org",
        env_id: Some("ENV 42"),
        ret: Some(Ret::Hdrs),
        body: Body::EightBitMime,
        smtputf8: false,
        rcpts: rcpts.iter().map(|a| TxnRcpt { address: a, notify, orcpt: Some("rfc822;Orig+inal@example.org") }).collect(),
        message: MSG,
    }
}

#[tokio::test]
async fn mixed_answers_exact_content_and_dsn_parameters() {
    let mut s = session_ctx(|_| {});
    let mut c = Connection::open(peer(&s), "mx.test", &opts(TlsPolicy::None, None)).await.unwrap();
    assert!(c.caps.pipelining && c.caps.dsn && c.caps.size > 0 && c.caps.starttls && !c.tls);
    let notify = Notify { success: true, failure: true, ..Notify::default() };
    let out = c.send(&txn(&["postmaster@localhost", "far@remote.example"], Some(notify))).await.unwrap();
    assert!(out.answers[0].is_positive(), "{:?}", out.answers);
    assert_eq!(out.answers[1].code, 554);
    assert_eq!(out.answers[1].status, "5.7.1");
    assert!(out.dsn_passed);
    let id = s.accepted.try_recv().unwrap();
    let env = s.ctx.store.envelope(id).unwrap().unwrap();
    assert_eq!(env.env_id.as_deref(), Some("ENV 42"));
    assert_eq!(env.ret, Some(Ret::Hdrs));
    assert_eq!(env.body, Body::EightBitMime);
    assert_eq!(env.recipients[0].orcpt.as_deref(), Some("rfc822;Orig+inal@example.org"));
    assert!(env.recipients[0].notify.unwrap().success);
    assert_eq!(env.recipients[0].state, RcptState::Queued);
    let stored = s.ctx.store.message(id).unwrap().unwrap();
    assert!(stored.ends_with(MSG), "the content arrives byte for byte (no extra line):\n{}", String::from_utf8_lossy(&stored));
    // The connection carries another transaction after RSET.
    c.reset().await.unwrap();
    let out = c.send(&txn(&["abuse@localhost"], None)).await.unwrap();
    assert!(out.answers[0].is_positive());
    assert_eq!(c.transactions, 2);
    c.quit().await;
}

#[tokio::test]
async fn starttls_when_offered_and_required_fails_without_it() {
    let s = session_ctx(|_| {});
    let connector = unverified();
    let c = Connection::open(peer(&s), "mx.test", &opts(TlsPolicy::Opportunistic, Some(&connector))).await.unwrap();
    assert!(c.tls && !c.caps.starttls, "upgraded, and the second EHLO no longer offers STARTTLS");
    c.quit().await;
    let plain = session_ctx(|c| c.smtp.listen.clear());
    // A server without a TLS acceptor does not offer STARTTLS.
    let ctx = Arc::new(crate::smtp::Ctx { tls: None, ..clone_ctx(&plain) });
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve_connection(
        server,
        ctx,
        SessionState::new(Kind::Smtp, "192.0.2.9:1".parse().unwrap(), "127.0.0.1:25".parse().unwrap()),
    ));
    let err = Connection::open(Box::new(client), "plain.test", &opts(TlsPolicy::Required, Some(&connector))).await.unwrap_err();
    assert!(matches!(err, Failure::Tls(ref m) if m.contains("does not offer STARTTLS")), "{err:?}");
}

fn clone_ctx(s: &SessionCtx) -> crate::smtp::Ctx {
    crate::smtp::Ctx {
        config: s.ctx.config.clone(),
        store: s.ctx.store.clone(),
        tls: s.ctx.tls.clone(),
        accepted: s.ctx.accepted.clone(),
        shutdown: s.ctx.shutdown.clone(),
        routing: s.ctx.routing.clone(),
        relay: s.ctx.relay.clone(),
        auth_guard: s.ctx.auth_guard.clone(),
    }
}

#[tokio::test]
async fn size_and_smtputf8_are_checked_before_sending() {
    let s = session_ctx(|c| c.limits.max_message_size = crate::config::ByteSize(2048));
    let mut c = Connection::open(peer(&s), "mx.test", &opts(TlsPolicy::None, None)).await.unwrap();
    let big = vec![b'x'; 4096];
    let mut t = txn(&["postmaster@localhost"], None);
    t.message = &big;
    let out = c.send(&t).await.unwrap();
    assert_eq!((out.answers[0].code, out.answers[0].status.as_str()), (552, "5.3.4"));
    let mut scripted = Scripted::start(&["220 old.test ESMTP", "250-old.test\r\n250 PIPELINING"]);
    let mut c = Connection::open(scripted.io(), "old.test", &opts(TlsPolicy::None, None)).await.unwrap();
    let mut t = txn(&["用户@example.net"], None);
    t.smtputf8 = true;
    let out = c.send(&t).await.unwrap();
    assert_eq!((out.answers[0].code, out.answers[0].status.as_str()), (553, "5.6.7"));
    drop(c);
    scripted.finish().await;
}

#[test]
fn dot_stuffing_and_terminator() {
    assert_eq!(stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
    assert_eq!(stuff(b".first\r\n"), b"..first\r\n.\r\n");
    assert_eq!(stuff(b"no final crlf"), b"no final crlf\r\n.\r\n");
    assert_eq!(stuff(b""), b".\r\n");
    assert_eq!(stuff(b"x.\r\n"), b"x.\r\n.\r\n");
}

#[test]
fn xtext_encoding() {
    assert_eq!(xtext("ENV 42"), "ENV+2042");
    assert_eq!(xtext("a+b=c"), "a+2Bb+3Dc");
    assert_eq!(xtext("plain@example.org"), "plain@example.org");
}

use super::scripted::Scripted;

#[tokio::test]
async fn without_pipelining_commands_go_one_by_one() {
    let mut s = Scripted::start(&[
        "220 seq.test ESMTP",
        "250-seq.test\r\n250 DSN",
        "250 2.1.0 ok",
        "250 2.1.5 ok",
        "550 5.1.1 no such user",
        "354 go",
        "250 2.0.0 queued",
    ]);
    let mut c = Connection::open(s.io(), "seq.test", &opts(TlsPolicy::None, None)).await.unwrap();
    let out = c.send(&txn(&["a@x.test", "b@x.test"], Some(Notify { success: true, ..Notify::default() }))).await.unwrap();
    assert_eq!(out.answers[0].code, 250);
    assert_eq!(out.answers[0].text, "queued");
    assert_eq!((out.answers[1].code, out.answers[1].status.as_str()), (550, "5.1.1"));
    assert!(out.dsn_passed);
    drop(c);
    let seen = s.finish().await;
    assert!(seen[0].starts_with("EHLO client.test"));
    assert_eq!(seen[1], "MAIL FROM:<alice@example.org> RET=HDRS ENVID=ENV+2042");
    assert_eq!(seen[2], "RCPT TO:<a@x.test> NOTIFY=SUCCESS ORCPT=rfc822;Orig+2Binal@example.org");
    assert_eq!(seen[4], "DATA");
    assert_eq!(&seen[5..], ["Subject: out", "", "..starts with a dot", "last line", "."]);
}

#[tokio::test]
async fn temporary_and_permanent_answers_to_data_apply_to_accepted_recipients() {
    for (final_reply, code) in [("451 4.3.0 try later", 451), ("554 5.6.0 content rejected", 554)] {
        let mut s =
            Scripted::start(&["220 x ESMTP", "250-x\r\n250 PIPELINING", "250 ok", "250 ok", "550 5.1.1 unknown", "354 go", final_reply]);
        let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
        let out = c.send(&txn(&["a@x.test", "b@x.test"], None)).await.unwrap();
        assert_eq!(out.answers[0].code, code);
        assert_eq!(out.answers[1].code, 550);
        assert!(!out.dsn_passed, "no DSN extension, no DSN passed");
        drop(c);
        s.finish().await;
    }
}

#[tokio::test]
async fn everything_refused_and_a_server_that_still_says_354() {
    let mut s =
        Scripted::start(&["220 x ESMTP", "250-x\r\n250 PIPELINING", "250 ok", "550 5.1.1 unknown", "354 go on anyway", "250 ok empty"]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    let out = c.send(&txn(&["a@x.test"], None)).await.unwrap();
    assert_eq!(out.answers[0].code, 550);
    drop(c);
    let seen = s.finish().await;
    assert_eq!(seen.last().map(String::as_str), Some("."), "an empty message ends the forced DATA");
}

#[tokio::test]
async fn mail_refused_applies_to_all() {
    let mut s = Scripted::start(&[
        "220 x ESMTP",
        "250-x\r\n250 PIPELINING",
        "553 5.7.1 sender refused",
        "503 5.5.1 no",
        "503 5.5.1 no",
        "503 5.5.1 no",
    ]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    let out = c.send(&txn(&["a@x.test", "b@x.test"], None)).await.unwrap();
    assert!(out.answers.iter().all(|a| a.code == 553 && a.status == "5.7.1"), "{:?}", out.answers);
    drop(c);
    s.finish().await;
}

#[tokio::test]
async fn a_421_greeting_and_a_dropped_connection_are_failures() {
    let mut s = Scripted::start(&["421 4.3.2 busy"]);
    let err = Connection::open(s.io(), "busy.test", &opts(TlsPolicy::None, None)).await.unwrap_err();
    assert!(matches!(err, Failure::Rejected { stage: "greeting", ref answer } if answer.code == 421), "{err:?}");
    assert!(!err.is_permanent());
    s.finish().await;
    let mut s = Scripted::start(&["220 x ESMTP", "250-x\r\n250 PIPELINING", "250 ok", "250 ok", "354 go"]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    s.hang_up_after_data();
    let err = c.send(&txn(&["a@x.test"], None)).await.unwrap_err();
    assert!(matches!(err, Failure::Broken { .. }), "{err:?}");
    drop(c);
    s.finish().await;
}

#[tokio::test]
async fn helo_fallback_when_ehlo_is_refused() {
    let mut s = Scripted::start(&["220 old ESMTP", "502 5.5.1 what", "250 old", "250 ok", "250 ok", "354 go", "250 done"]);
    let mut c = Connection::open(s.io(), "old", &opts(TlsPolicy::Opportunistic, None)).await.unwrap();
    assert_eq!(c.caps, Caps::default());
    let out = c.send(&txn(&["a@x.test"], None)).await.unwrap();
    assert!(out.answers[0].is_positive());
    drop(c);
    let seen = s.finish().await;
    assert_eq!(seen[1], "HELO client.test");
    assert_eq!(seen[2], "MAIL FROM:<alice@example.org>", "no ESMTP parameters after HELO");
}

/// Regression: after a transaction whose recipients were all refused, the next one on the same
/// connection starts with RSET (smtp-sink answered `503 nested MAIL` and we bounced the mail).
#[tokio::test]
async fn an_unfinished_transaction_is_reset_before_the_next() {
    let mut s = Scripted::start(&[
        "220 x ESMTP",
        "250 x",
        "250 2.1.0 ok",
        "450 4.3.0 busy",
        "250 2.0.0 reset",
        "250 2.1.0 ok",
        "250 2.1.5 ok",
        "354 go",
        "250 2.0.0 done",
    ]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    let first = c.send(&txn(&["a@x.test"], None)).await.unwrap();
    assert_eq!(first.answers[0].code, 450);
    let second = c.send(&txn(&["a@x.test"], None)).await.unwrap();
    assert_eq!(second.answers[0].code, 250);
    drop(c);
    let seen = s.finish().await;
    assert_eq!(seen[3], "RSET", "{seen:?}");
    assert!(seen[4].starts_with("MAIL FROM:"), "{seen:?}");
}

/// RSET-first against our own server, which offers PIPELINING (so RSET goes in the group with
/// MAIL, RCPT and DATA): it answers every reply in order and the transaction goes through.
/// That the RSET shares the group is by construction (one write); the scripted server below
/// answers line by line and could not tell.
#[tokio::test]
async fn rset_first_with_pipelining_runs_the_transaction() {
    let s = session_ctx(|_| {});
    let mut c = Connection::open(peer(&s), "mx.test", &opts(TlsPolicy::None, None)).await.unwrap();
    assert!(c.caps.pipelining);
    assert!(c.send(&txn(&["postmaster@localhost"], None)).await.unwrap().answers[0].is_positive());
    let out = c.send_reset_first(&txn(&["abuse@localhost"], None)).await.unwrap();
    assert!(out.answers[0].is_positive(), "{:?}", out.answers);
    assert_eq!(c.transactions, 2);
    c.quit().await;
}

/// A refused RSET (a server shutting down says 421) fails the attempt before the message is
/// sent, so the caller can open a new connection; without PIPELINING RSET goes on its own.
#[tokio::test]
async fn a_refused_rset_fails_before_the_message() {
    let pipelining = "250-x\r\n250 PIPELINING";
    let mut s = Scripted::start(&["220 x ESMTP", pipelining, "421 4.3.2 shutting down", "250 ok", "250 ok", "354 go"]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    let err = c.send_reset_first(&txn(&["a@x.test"], None)).await.unwrap_err();
    assert!(matches!(&err, Failure::Rejected { stage: "RSET", answer } if answer.code == 421), "{err}");
    drop(c);
    let seen = s.finish().await;
    assert_eq!(seen[1], "RSET", "{seen:?}");
    assert!(seen[2].starts_with("MAIL FROM:<alice@example.org>") && seen[3].starts_with("RCPT TO:<a@x.test>"), "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with("Subject:")), "no message content: {seen:?}");

    let mut s = Scripted::start(&["220 x ESMTP", "250 x", "250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok", "354 go", "250 2.0.0 done"]);
    let mut c = Connection::open(s.io(), "x", &opts(TlsPolicy::None, None)).await.unwrap();
    assert_eq!(c.send_reset_first(&txn(&["a@x.test"], None)).await.unwrap().answers[0].code, 250);
    drop(c);
    let seen = s.finish().await;
    assert_eq!(seen[1], "RSET", "{seen:?}");
    assert!(seen[2].starts_with("MAIL FROM:"), "{seen:?}");
}
