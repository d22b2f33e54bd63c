//! MAIL FROM (RFC 5321 §4.1.1.2) with the ESMTP parameters we announce: SIZE (RFC 1870),
//! BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461), AUTH (RFC 4954 §5).

use sipmta_store::{Body, Ret};
use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE, MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL,
    MAIL_RET_HDRS, MAIL_SMTPUTF8, MailFrom,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

use super::is_trusted;
use super::reply::Reply;
use super::session::{Session, Transaction};

/// Parameters of extensions we do not announce; a client must not use them (RFC 5321 §4.1.1.11).
const UNANNOUNCED: u64 = MAIL_BODY_BINARYMIME | MAIL_REQUIRETLS | MAIL_CONPERM | MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// MAIL: start a transaction.
    pub(crate) fn mail(&mut self, from: MailFrom<String>) -> Reply {
        if self.st.helo.is_none() {
            return Reply::new(503, "5.5.1", "Send EHLO or HELO first");
        }
        if self.st.tx.is_some() {
            return Reply::new(503, "5.5.1", "Nested MAIL command");
        }
        // RFC 6409 §4.3: a submission server requires authentication.
        if self.st.kind.is_submission() && self.st.auth_user.is_none() && !is_trusted(&self.ctx.config, self.st.peer) {
            return Reply::new(530, "5.7.0", "Authentication required");
        }
        if let Some(reply) = self.check_mail_params(&from) {
            return reply;
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let sender = from.address;
        if !sender.is_empty() {
            if !sender.is_ascii() && !smtputf8 {
                return Reply::new(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8 (RFC 6531)");
            }
            if sipmta_rules::domain_of(&sender).is_none() {
                return Reply::new(553, "5.1.7", "Sender address must be fully qualified");
            }
        }
        let max = self.ctx.config.limits.max_message_size.0;
        if from.size as u64 > max {
            return Reply::new(552, "5.3.4", format!("Message size exceeds fixed maximum message size ({max} octets)"));
        }
        if let Some(reply) = self.check_disk() {
            return reply;
        }
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        debug!(from = %sender, "MAIL accepted");
        self.st.tx = Some(Transaction {
            sender,
            body: if from.flags & MAIL_BODY_8BITMIME != 0 { Body::EightBitMime } else { Body::SevenBit },
            smtputf8,
            ret,
            env_id: from.env_id,
            declared_size: from.size,
            recipients: Vec::new(),
        });
        Reply::new(250, "2.1.0", "Ok")
    }

    fn check_mail_params(&self, from: &MailFrom<String>) -> Option<Reply> {
        let has_params = from.flags != 0 || from.size != 0 || from.env_id.is_some() || from.auth.is_some() || has_unannounced(from);
        if has_params && !self.st.esmtp {
            return Some(Reply::new(555, "5.5.4", "MAIL parameters need EHLO"));
        }
        if from.flags & UNANNOUNCED != 0 || has_unannounced(from) {
            return Some(Reply::new(555, "5.5.4", "Unsupported MAIL parameter"));
        }
        if let Some(env_id) = &from.env_id {
            // RFC 3461 §4.4: at most 100 characters, printable US-ASCII once decoded.
            if env_id.len() > 100 || !env_id.bytes().all(|b| (32..127).contains(&b)) {
                return Some(Reply::new(501, "5.5.4", "Invalid ENVID parameter"));
            }
        }
        None
    }

    /// Refuse before DATA when the spool's disk is nearly full (RFC 3463 X.3.1).
    fn check_disk(&self) -> Option<Reply> {
        match self.ctx.store.free_space() {
            Ok(free) if free < self.ctx.config.spool.min_free_space.0 => {
                warn!(free, min = self.ctx.config.spool.min_free_space.0, "spool disk nearly full, refusing mail");
                Some(Reply::new(452, "4.3.1", "Insufficient system storage"))
            }
            Ok(_) => None,
            Err(e) => {
                // Do not refuse mail because the check itself failed; the write will tell.
                warn!(error = %e, "cannot check free disk space");
                None
            }
        }
    }
}

/// Parameters smtp-proto parses for extensions we do not offer.
fn has_unannounced(from: &MailFrom<String>) -> bool {
    from.trans_id.is_some()
        || from.by != 0
        || from.solicit.is_some()
        || from.mtrk.is_some()
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mt_priority != 0
}
