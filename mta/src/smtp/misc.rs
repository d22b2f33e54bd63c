//! The small verbs with policy: VRFY (RFC 5321 §3.5.3), HELP (§4.1.1.8) and STARTTLS
//! (RFC 3207). RSET, NOOP and QUIT are answered inline by the session loop.

use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::Reply;
use super::session::{Next, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// VRFY never confirms or denies a user (that would help address harvesting);
    /// `252` says we will try (RFC 5321 §3.5.3).
    pub(crate) fn vrfy(&self) -> Reply {
        let listener = match self.st.kind {
            super::Kind::Smtp | super::Kind::FastPath => &self.ctx.config.smtp,
            super::Kind::Submission => &self.ctx.config.submission,
            super::Kind::Submissions => &self.ctx.config.submissions,
        };
        if listener.vrfy {
            Reply::new(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
        } else {
            Reply::new(502, "5.5.1", "VRFY disabled")
        }
    }

    /// HELP lists what this server understands.
    pub(crate) fn help(&self) -> Reply {
        Reply::new(
            214,
            "2.0.0",
            "sipmta supports: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH\n\
             Extensions: PIPELINING SIZE 8BITMIME ENHANCEDSTATUSCODES SMTPUTF8 DSN\n\
             See RFC 5321; operators: `sipmta --help`",
        )
    }

    /// STARTTLS: `220` and hand the stream to the handshake (RFC 3207 §4).
    pub(crate) fn starttls(&mut self) -> Next {
        if self.st.tls.is_some() {
            return self.answer(Reply::new(554, "5.5.1", "TLS already active"));
        }
        if !self.starttls_offered() {
            return self.answer(Reply::new(502, "5.5.1", "STARTTLS not available"));
        }
        if self.st.tx.is_some() {
            return self.answer(Reply::new(503, "5.5.1", "STARTTLS not allowed during a mail transaction"));
        }
        self.conn.reply(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        Next::StartTls
    }
}
