//! AUTH PLAIN/LOGIN on submission and STARTTLS / implicit TLS, as transcripts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::*;

fn plain(authz: &str, user: &str, pass: &str) -> String {
    B64.encode(format!("{authz}\0{user}\0{pass}"))
}

/// A client that trusts exactly the certificate the harness made for `mx.test`.
async fn upgrade<S>(h: &Harness, stream: S) -> Client<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cert = CertificateDer::from_pem_file(h.ctx.config.data_dir.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect(ServerName::try_from("mx.test").unwrap(), stream).await.unwrap();
    Client { io: BufReader::new(tls) }
}

#[tokio::test]
async fn submission_requires_auth_and_offers_it_on_loopback() {
    let h = harness();
    h.user("alice@localhost", "secret");
    let mut c = h.client(Kind::Submission, LOOPBACK);
    let ehlo = c.hello().await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(c.cmd("MAIL FROM:<alice@localhost>").await, "530 5.7.0 Authentication required");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("", "alice@localhost", "wrong"))).await,
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("", "nobody@localhost", "secret"))).await,
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain("", "Alice@Localhost", "secret"))).await, "235 2.7.0 Authentication successful");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain("", "alice@localhost", "secret"))).await, "503 5.5.1 Already authenticated");
    let r = c.send_mail("alice@localhost", &["friend@remote.example"], MESSAGE).await;
    let env = h.envelope_of(&r);
    assert_eq!(env.origin.auth_user.as_deref(), Some("alice@localhost"));
    assert_eq!(env.recipients[0].route, sipmta_rules::Route::Relay);
    assert!(h.message_of(&r).contains("with ESMTPA id"), "{}", h.message_of(&r));
}

#[tokio::test]
async fn auth_plain_and_login_exchanges() {
    let h = harness();
    h.user("bob@localhost", "pa ss");
    let mut c = h.client(Kind::Submission, LOOPBACK);
    c.hello().await;
    c.script(&format!(
        "C: AUTH PLAIN
         S: 334 *
         C: *
         S: 501 5.0.0 Authentication cancelled
         C: AUTH PLAIN !!!notbase64
         S: 501 5.5.2 Invalid base64 data
         C: AUTH CRAM-MD5
         S: 504 5.5.4 Unrecognized authentication type
         C: AUTH PLAIN {}
         S: 535 5.7.8 Authentication credentials invalid
         C: AUTH LOGIN
         S: 334 VXNlcm5hbWU6
         C: {}
         S: 334 UGFzc3dvcmQ6
         C: {}
         S: 235 2.7.0 Authentication successful",
        plain("mallory@localhost", "bob@localhost", "pa ss"),
        B64.encode("bob@localhost"),
        B64.encode("pa ss"),
    ))
    .await;
}

#[tokio::test]
async fn auth_plain_with_a_separate_response() {
    let h = harness();
    h.user("carol@localhost", "pw");
    let mut c = h.client(Kind::Submission, LOOPBACK);
    c.hello().await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 ");
    assert_eq!(c.cmd(&plain("", "carol@localhost", "pw")).await, "235 2.7.0 Authentication successful");
}

#[tokio::test]
async fn no_plaintext_auth_across_a_network_and_none_on_port_25() {
    let h = harness();
    h.user("alice@localhost", "secret");
    let mut c = h.client(Kind::Submission, REMOTE);
    let ehlo = c.hello().await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("", "alice@localhost", "secret"))).await.starts_with("538 5.7.11"));
    let mut mx = h.client(Kind::Smtp, LOOPBACK);
    mx.hello().await;
    assert!(mx.cmd(&format!("AUTH PLAIN {}", plain("", "alice@localhost", "secret"))).await.starts_with("503 5.5.1"));
}

#[tokio::test]
async fn starttls_then_auth_over_the_network() {
    let h = harness();
    h.user("alice@localhost", "secret");
    let mut c = h.client(Kind::Submission, REMOTE);
    c.hello().await;
    // Pipelined after STARTTLS in plaintext: must be thrown away, not run inside TLS.
    c.send(b"STARTTLS\r\nRSET\r\n").await;
    assert_eq!(c.reply().await, "220 2.0.0 Ready to start TLS");
    let mut t = upgrade(&h, c.io.into_inner()).await;
    let ehlo = t.cmd("EHLO client.example").await;
    assert!(ehlo.starts_with("250-mx.test greets client.example"), "the injected RSET was answered: {ehlo}");
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(t.cmd("STARTTLS").await, "554 5.5.1 TLS already active");
    assert_eq!(t.cmd(&format!("AUTH PLAIN {}", plain("", "alice@localhost", "secret"))).await, "235 2.7.0 Authentication successful");
    let r = t.send_mail("alice@localhost", &["friend@remote.example"], MESSAGE).await;
    let msg = h.message_of(&r);
    assert!(msg.contains("with ESMTPSA id") && msg.contains("(using TLSv1_3"), "{msg}");
    assert!(h.envelope_of(&r).origin.tls);
}

#[tokio::test]
async fn starttls_is_refused_inside_a_transaction() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert!(c.cmd("STARTTLS").await.starts_with("503 5.5.1"));
}

#[tokio::test]
async fn implicit_tls_greets_after_the_handshake() {
    let h = harness();
    let (client, server) = tokio::io::duplex(1 << 16);
    let st = SessionState::new(Kind::Submissions, REMOTE.parse().unwrap(), "127.0.0.1:465".parse().unwrap());
    tokio::spawn(serve_connection(server, h.ctx.clone(), st));
    let mut t = upgrade(&h, client).await;
    assert_eq!(t.reply().await, "220 mx.test ESMTP sipmta");
    let ehlo = t.cmd("EHLO client.example").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"), "{ehlo}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_tls_handshake_times_out() {
    let h = harness_with(|c| c.limits.idle_timeout = crate::config::Span(Duration::from_secs(5)));
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS");
    // The client never starts the handshake; the server gives up and closes.
    assert_eq!(c.line().await, "<eof>");
}
