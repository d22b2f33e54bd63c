//! AUTH PLAIN (RFC 4616) and LOGIN on submission listeners (RFC 4954).
//!
//! Offered only over TLS or from loopback (see `auth_offered`). Passwords are checked by the
//! store on its blocking pool and never logged; failures are logged with the user name so an
//! operator can see guessing, and counted per client address by [`super::guard`], which slows
//! and then refuses a guesser.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::conn::Input;
use super::reply::Reply;
use super::session::{Next, Session};

/// Why an exchange produced no credentials.
enum Exchange {
    Credentials(String, String),
    Refused(Reply),
    Closed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// AUTH mechanism [initial-response].
    pub(crate) async fn auth(&mut self, mechanism: u64, initial: String) -> Next {
        if !self.st.kind.is_submission() {
            return self.answer(Reply::new(503, "5.5.1", "AUTH not available on this port; use submission"));
        }
        if !self.auth_offered() {
            // RFC 4954 §6: 538 when the mechanism needs an encrypted connection.
            return self.answer(Reply::new(538, "5.7.11", "Encryption required for requested authentication mechanism"));
        }
        if self.st.helo.is_none() || !self.st.esmtp {
            return self.answer(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.st.auth_user.is_some() {
            return self.answer(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.st.tx.is_some() {
            return self.answer(Reply::new(503, "5.5.1", "AUTH not allowed during a mail transaction"));
        }
        let ip = self.st.peer.ip();
        if self.ctx.auth_guard.refused(ip, std::time::Instant::now()) {
            warn!(client = %ip, "AUTH refused: too many failed attempts from this address");
            self.conn.reply(&Reply::new(421, "4.7.0", "Too many failed authentications from your address, try again later"));
            return Next::Close;
        }
        let exchange = match mechanism {
            AUTH_PLAIN => self.plain(initial).await,
            AUTH_LOGIN => self.login(initial).await,
            _ => return self.answer(Reply::new(504, "5.5.4", "Unrecognized authentication type")),
        };
        let (user, password) = match exchange {
            Exchange::Credentials(u, p) => (u, p),
            Exchange::Refused(reply) => return self.answer(reply),
            Exchange::Closed => return Next::Close,
        };
        match self.ctx.store.authenticate(&user, &password).await {
            Ok(true) => {
                let user = sipmta_store::normalise_name(&user).unwrap_or(user);
                info!(user = %user, "authenticated");
                self.st.auth_user = Some(user);
                self.answer(Reply::new(235, "2.7.0", "Authentication successful"))
            }
            Ok(false) => {
                let hold = self.ctx.auth_guard.failed(ip, std::time::Instant::now());
                warn!(user = %user, client = %ip, delay_ms = hold.as_millis() as u64, "authentication failed");
                tokio::time::sleep(hold).await;
                self.answer(Reply::new(535, "5.7.8", "Authentication credentials invalid"))
            }
            Err(e) => {
                warn!(error = %e, "authentication lookup failed");
                self.answer(Reply::new(454, "4.7.0", "Temporary authentication failure"))
            }
        }
    }

    /// PLAIN: `authzid NUL authcid NUL passwd`, base64 (RFC 4616 §2).
    async fn plain(&mut self, initial: String) -> Exchange {
        let encoded = if initial.is_empty() {
            match self.challenge("").await {
                Ok(line) => line,
                Err(exchange) => return exchange,
            }
        } else {
            initial
        };
        let Some(decoded) = decode(&encoded) else {
            return Exchange::Refused(Reply::new(501, "5.5.2", "Invalid base64 data"));
        };
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authz), Some(authc), Some(pass), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Exchange::Refused(Reply::new(501, "5.5.2", "Malformed PLAIN response"));
        };
        // We only let users act as themselves.
        if !authz.is_empty() && authz != authc {
            return Exchange::Refused(Reply::new(535, "5.7.8", "Authentication credentials invalid"));
        }
        match (String::from_utf8(authc.to_vec()), String::from_utf8(pass.to_vec())) {
            (Ok(user), Ok(pass)) => Exchange::Credentials(user, pass),
            _ => Exchange::Refused(Reply::new(501, "5.5.2", "Credentials must be UTF-8")),
        }
    }

    /// LOGIN: user name and password in two base64 challenges.
    async fn login(&mut self, initial: String) -> Exchange {
        let user = if initial.is_empty() {
            match self.challenge("VXNlcm5hbWU6").await {
                Ok(line) => line,
                Err(exchange) => return exchange,
            }
        } else {
            initial
        };
        let pass = match self.challenge("UGFzc3dvcmQ6").await {
            Ok(line) => line,
            Err(exchange) => return exchange,
        };
        match (decode(&user).map(String::from_utf8), decode(&pass).map(String::from_utf8)) {
            (Some(Ok(user)), Some(Ok(pass))) => Exchange::Credentials(user, pass),
            _ => Exchange::Refused(Reply::new(501, "5.5.2", "Invalid base64 data")),
        }
    }

    /// Send `334 challenge` and read the client's line; `*` cancels (RFC 4954 §4).
    async fn challenge(&mut self, challenge: &'static str) -> Result<String, Exchange> {
        self.conn.reply(&Reply::bare(334, challenge));
        let max = self.ctx.config.limits.max_command_line;
        match self.conn.read_auth_line(max).await {
            Ok(Input::Line(line)) => {
                let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
                if text == "*" { Err(Exchange::Refused(Reply::new(501, "5.0.0", "Authentication cancelled"))) } else { Ok(text) }
            }
            Ok(Input::TooLong) => Err(Exchange::Refused(Reply::new(500, "5.5.6", "Authentication exchange line is too long"))),
            Ok(Input::Timeout) => {
                self.conn.reply(&Reply::new(421, "4.4.2", "Idle timeout, closing connection"));
                Err(Exchange::Closed)
            }
            Ok(Input::Eof | Input::Shutdown) | Err(_) => Err(Exchange::Closed),
        }
    }
}

/// base64 with or without padding; `=` alone is an empty response (RFC 4954 §4).
fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text == "=" {
        return Some(Vec::new());
    }
    B64.decode(text).ok().or_else(|| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text).ok())
}
