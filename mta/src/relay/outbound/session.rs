//! Opening an outbound session: greeting, EHLO (HELO fallback), STARTTLS by policy, AUTH.

use rustls::pki_types::ServerName;
use smtp_proto::EhloResponse;
use tokio::io::AsyncWriteExt;

use super::{Answer, BoxIo, Caps, Connection, Failure, OpenOptions, TlsPolicy, credentials, read_replies, write_all};
use mail_send::SmtpClient;

impl Connection {
    /// Run greeting, EHLO, STARTTLS (per `opts.tls`) and AUTH (if credentials) on `stream`.
    /// `remote` names the peer in errors, logs and DSNs.
    pub async fn open(stream: BoxIo, remote: &str, opts: &OpenOptions<'_>) -> Result<Connection, Failure> {
        let t = opts.timeouts;
        let mut client = SmtpClient { stream, timeout: t.command };
        let greeting = read_replies(&mut client, 1, t.greeting, "greeting").await?.remove(0);
        if !greeting.is_positive() {
            return Err(Failure::Rejected { stage: "greeting", answer: greeting });
        }
        let (mut client, mut ehlo) = hello(client, opts).await?;
        let mut tls = false;
        let offered = ehlo.as_ref().map(Caps::from_ehlo).unwrap_or_default().starttls;
        match (opts.tls, offered, opts.connector) {
            (TlsPolicy::None, _, _) | (TlsPolicy::Opportunistic, false, _) | (TlsPolicy::Opportunistic, true, None) => {}
            (TlsPolicy::Required, false, _) => return Err(Failure::Tls(format!("{remote} does not offer STARTTLS"))),
            (TlsPolicy::Required, true, None) => return Err(Failure::Tls("no TLS connector configured".into())),
            (_, true, Some(connector)) => {
                client = starttls(client, connector, opts.tls_name, t.command).await?;
                tls = true;
                // RFC 3207 §4.2: forget what we knew and ask again.
                let (c, e) = hello(client, opts).await?;
                client = c;
                ehlo = e;
            }
        }
        if let Some((user, pass)) = opts.credentials {
            if !tls && !opts.plain_auth_ok {
                return Err(Failure::Tls(format!("refusing to send credentials to {remote} without TLS")));
            }
            let Some(caps) = ehlo.as_ref() else {
                return Err(Failure::Rejected { stage: "AUTH", answer: Answer::local(530, "5.7.0", "server spoke HELO only; no AUTH") });
            };
            let creds = credentials(user, pass);
            let result = tokio::time::timeout(t.command, client.authenticate(&creds, caps)).await;
            match result {
                Err(_) => return Err(Failure::Broken { stage: "AUTH", reason: "timed out".into() }),
                Ok(Ok(_)) => {}
                Ok(Err(mail_send::Error::AuthenticationFailed(r) | mail_send::Error::UnexpectedReply(r))) => {
                    return Err(Failure::Rejected { stage: "AUTH", answer: Answer::from_response(&r) });
                }
                Ok(Err(mail_send::Error::UnsupportedAuthMechanism)) => {
                    return Err(Failure::Rejected {
                        stage: "AUTH",
                        answer: Answer::local(504, "5.7.4", "no common AUTH mechanism (we speak PLAIN and LOGIN)"),
                    });
                }
                Ok(Err(e)) => return Err(Failure::Broken { stage: "AUTH", reason: e.to_string() }),
            }
        }
        let caps = ehlo.as_ref().map(Caps::from_ehlo).unwrap_or_default();
        Ok(Connection { client, caps, remote: remote.to_owned(), tls, transactions: 0, open_transaction: false, timeouts: t })
    }

    /// End the session politely; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(self.timeouts.command, async {
            let _ = self.client.stream.write_all(b"QUIT\r\n").await;
            let _ = self.client.stream.flush().await;
            let _ = self.client.read().await;
        })
        .await;
    }
}

/// EHLO, or HELO when the server refuses EHLO (RFC 5321 §3.2); `None` means HELO (no
/// extensions).
async fn hello(
    mut client: SmtpClient<BoxIo>,
    opts: &OpenOptions<'_>,
) -> Result<(SmtpClient<BoxIo>, Option<EhloResponse<String>>), Failure> {
    match client.ehlo(opts.helo).await {
        Ok(ehlo) => Ok((client, Some(ehlo))),
        Err(mail_send::Error::UnexpectedReply(r)) if r.code >= 500 => {
            write_all(&mut client, format!("HELO {}\r\n", opts.helo).as_bytes(), opts.timeouts.command, "HELO").await?;
            let answer = read_replies(&mut client, 1, opts.timeouts.command, "HELO").await?.remove(0);
            if answer.is_positive() { Ok((client, None)) } else { Err(Failure::Rejected { stage: "HELO", answer }) }
        }
        Err(mail_send::Error::UnexpectedReply(r)) => Err(Failure::Rejected { stage: "EHLO", answer: Answer::from_response(&r) }),
        Err(mail_send::Error::Timeout) => Err(Failure::Broken { stage: "EHLO", reason: "timed out".into() }),
        Err(e) => Err(Failure::Broken { stage: "EHLO", reason: super::broken(&e) }),
    }
}

async fn starttls(
    mut client: SmtpClient<BoxIo>,
    connector: &tokio_rustls::TlsConnector,
    name: &str,
    limit: std::time::Duration,
) -> Result<SmtpClient<BoxIo>, Failure> {
    write_all(&mut client, b"STARTTLS\r\n", limit, "STARTTLS").await?;
    let answer = read_replies(&mut client, 1, limit, "STARTTLS").await?.remove(0);
    if answer.code != 220 {
        return Err(Failure::Tls(format!("STARTTLS refused: {answer}")));
    }
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|_| Failure::Tls(format!("{name:?} is not a valid TLS server name")))?;
    let timeout = client.timeout;
    let tls = tokio::time::timeout(limit, connector.connect(server_name, client.stream))
        .await
        .map_err(|_| Failure::Tls("handshake timed out".into()))?
        .map_err(|e| Failure::Tls(format!("handshake failed: {e}")))?;
    Ok(SmtpClient { stream: Box::new(tls), timeout })
}
