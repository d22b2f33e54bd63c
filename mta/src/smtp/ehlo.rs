//! EHLO and HELO (RFC 5321 §4.1.1.1) and the capability list they announce.

use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::Reply;
use super::session::{Next, Session};
use super::{Kind, is_loopback};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// EHLO (`esmtp`) or HELO. Either resets the transaction (RFC 5321 §4.1.4).
    pub(crate) fn ehlo(&mut self, host: String, esmtp: bool) -> Next {
        let host = host.trim();
        if host.is_empty() {
            let verb = if esmtp { "EHLO" } else { "HELO" };
            return self.answer(Reply::new(501, "5.5.4", format!("Syntax: {verb} hostname")));
        }
        self.st.helo = Some(host.to_owned());
        self.st.esmtp = esmtp;
        self.st.tx = None;
        let hostname = &self.ctx.config.hostname;
        if !esmtp {
            return self.answer(Reply::bare(250, hostname.clone()));
        }
        let mut lines = vec![
            format!("{hostname} greets {}", sanitise_helo(host)),
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.ctx.config.limits.max_message_size.0),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "SMTPUTF8".to_owned(),
            "DSN".to_owned(),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        lines.push("HELP".to_owned());
        self.answer(Reply::bare(250, lines.join("\n")))
    }

    /// STARTTLS is offered on plain connections when TLS is configured.
    pub(crate) fn starttls_offered(&self) -> bool {
        self.st.tls.is_none() && self.ctx.tls.is_some() && self.st.kind != Kind::Submissions
    }

    /// AUTH is offered on submission listeners, over TLS or from loopback (RFC 4954 §4 leaves
    /// the policy to us; plaintext passwords must not cross a network).
    pub(crate) fn auth_offered(&self) -> bool {
        self.st.kind.is_submission() && (self.st.tls.is_some() || is_loopback(self.st.peer.ip()))
    }
}

/// A client-supplied name made safe to print in replies and headers: printable ASCII without
/// characters that would end a comment or a header, at most 255 octets.
pub fn sanitise_helo(host: &str) -> String {
    host.chars().take(255).map(|c| if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) { c } else { '?' }).collect()
}
