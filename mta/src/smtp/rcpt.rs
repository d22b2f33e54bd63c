//! RCPT TO (RFC 5321 §4.1.1.3) and the relay policy.
//!
//! Mail for a local domain is accepted from anyone; mail for any other domain only from an
//! authenticated session or a trusted network, else `554 5.7.1` (DESIGN.md "Message flow").
//! The domain after the last `@` decides: source routes are already stripped by the parser
//! (RFC 5321 Appendix C), and local parts that other MTAs read as routes (`%`, `!`, a quoted
//! `@`) are refused for local domains, so no address form turns us into an open relay.

use sipmta_rules::Route;
use sipmta_store::{Notify, Recipient};
use smtp_proto::{
    RCPT_CONNEG, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RCPT_RRVS_CONTINUE, RCPT_RRVS_REJECT,
    RcptTo,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::is_trusted;
use super::reply::Reply;
use super::session::Session;
use crate::config::is_domain;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// RCPT: add a recipient to the transaction.
    pub(crate) fn rcpt(&mut self, to: RcptTo<String>) -> Reply {
        let Some(tx) = self.st.tx.as_ref() else {
            return Reply::new(503, "5.5.1", "Need MAIL before RCPT");
        };
        if tx.recipients.len() >= self.ctx.config.limits.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452, and the client retries the rest later.
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        if (to.flags != 0 || to.orcpt.is_some()) && !self.st.esmtp {
            return Reply::new(555, "5.5.4", "RCPT parameters need EHLO");
        }
        if to.flags & (RCPT_CONNEG | RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 {
            return Reply::new(555, "5.5.4", "Unsupported RCPT parameter");
        }
        let notify = match notify_of(to.flags) {
            Ok(n) => n,
            Err(reply) => return reply,
        };
        let address = match self.qualify(&to.address, tx.smtputf8) {
            Ok(a) => a,
            Err(reply) => return reply,
        };
        let Some((local_part, domain)) = address.rsplit_once('@') else {
            return Reply::new(553, "5.1.3", "Recipient address must be fully qualified");
        };
        let bounce = crate::relay::tracking::parse_bounce_address(&self.ctx.config, &address);
        let route = if let Some(id) = bounce {
            // A DSN coming back for mail we relayed with the return-path rewrite.
            if !crate::relay::tracking::is_tracked(&self.ctx.store, id) {
                return Reply::new(550, "5.1.1", format!("<{address}>: no such bounce address"));
            }
            Route::Local
        } else if self.ctx.config.is_local_domain(domain) {
            if let Err(reply) = self.check_local(local_part, domain, &address) {
                return reply;
            }
            Route::Local
        } else {
            if !is_domain(domain) && !is_address_literal(domain) {
                return Reply::new(553, "5.1.2", "Bad destination domain");
            }
            // A fast-path stream only ever delivers here (DESIGN.md "Receiver (UAS)"): an
            // INVITE from anyone must not make us send mail anywhere.
            if self.st.kind == super::Kind::FastPath {
                info!(rcpt = %address, "relay over a fast-path stream refused");
                return Reply::new(554, "5.7.1", format!("<{address}>: Relay access denied (fast path delivers locally only)"));
            }
            if self.st.auth_user.is_none() && !is_trusted(&self.ctx.config, self.st.peer) {
                info!(rcpt = %address, "relay denied");
                return Reply::new(554, "5.7.1", format!("<{address}>: Relay access denied"));
            }
            Route::Relay
        };
        let Some(tx) = self.st.tx.as_mut() else {
            return Reply::new(503, "5.5.1", "Need MAIL before RCPT");
        };
        // A repeated recipient is accepted once (RFC 5321 §3.3 lets us; Postfix does the same).
        if !tx.recipients.iter().any(|r| r.address.eq_ignore_ascii_case(&address)) {
            tx.recipients.push(Recipient { orcpt: to.orcpt.map(|o| format!("rfc822;{o}")), notify, ..Recipient::new(address, route) });
        }
        Reply::new(250, "2.1.5", "Ok")
    }

    /// Syntax checks shared by every recipient.
    fn qualify(&self, address: &str, smtputf8: bool) -> Result<String, Reply> {
        if address.is_empty() {
            return Err(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        }
        if !address.is_ascii() && !smtputf8 {
            return Err(Reply::new(553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8 (RFC 6531)"));
        }
        Ok(address.to_owned())
    }

    /// A local recipient: a safe mailbox name, and a known user where the domain asks for one.
    fn check_local(&self, local_part: &str, domain: &str, address: &str) -> Result<(), Reply> {
        if !is_safe_local_part(local_part) {
            return Err(Reply::new(553, "5.1.3", "Mailbox name not allowed"));
        }
        let postmaster = local_part.eq_ignore_ascii_case("postmaster");
        if postmaster || !self.ctx.config.known_users_only(domain) {
            return Ok(());
        }
        match self.ctx.store.user_exists(address) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reply::new(550, "5.1.1", format!("<{address}>: User unknown"))),
            Err(e) => {
                warn!(error = %e, "user lookup failed");
                Err(Reply::new(451, "4.3.0", "Temporary lookup failure"))
            }
        }
    }
}

/// `RCPT TO:<Postmaster>` without a domain MUST be accepted (RFC 5321 §4.1.1.3), but
/// smtp-proto refuses unqualified addresses; rewrite that one form to `postmaster@domain`
/// before parsing. Any other line is returned as `None` and parsed as sent.
pub fn qualify_postmaster(line: &[u8], domain: &str) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"RCPT TO:";
    let head = line.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &line[PREFIX.len()..];
    let start = rest.iter().position(|b| *b != b' ')?;
    let target = b"<postmaster>";
    let found = rest.get(start..start + target.len())?;
    if !found.eq_ignore_ascii_case(target) {
        return None;
    }
    let mut out = line[..PREFIX.len() + start].to_vec();
    out.extend_from_slice(format!("<postmaster@{domain}>").as_bytes());
    out.extend_from_slice(&rest[start + target.len()..]);
    Some(out)
}

/// RFC 3461 §4.1: NEVER excludes the others; absent means "MTA default".
fn notify_of(flags: u64) -> Result<Option<Notify>, Reply> {
    let any = RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY;
    if flags & any == 0 {
        return Ok(None);
    }
    let n = Notify {
        never: flags & RCPT_NOTIFY_NEVER != 0,
        success: flags & RCPT_NOTIFY_SUCCESS != 0,
        failure: flags & RCPT_NOTIFY_FAILURE != 0,
        delay: flags & RCPT_NOTIFY_DELAY != 0,
    };
    if n.never && (n.success || n.failure || n.delay) {
        return Err(Reply::new(501, "5.5.4", "NOTIFY=NEVER cannot be combined with other values"));
    }
    Ok(Some(n))
}

/// A local part that is safe as a Maildir directory name and carries no routing syntax:
/// letters and digits (any script, for SMTPUTF8) and `. - _ + =`, at most 64 octets
/// (RFC 5321 §4.5.3.1.1), no leading, trailing or doubled dot.
pub fn is_safe_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || ".-_+=".contains(c))
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
fn is_address_literal(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    match inner.strip_prefix("IPv6:").or_else(|| inner.strip_prefix("ipv6:")) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_parts() {
        for ok in ["alice", "a.b", "a+tag", "x_y-z=1", "孫子"] {
            assert!(is_safe_local_part(ok), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a%b", "a!b", "a@b", "a/b", "..", "a b", "a\"b", &"x".repeat(65)] {
            assert!(!is_safe_local_part(bad), "{bad}");
        }
    }

    #[test]
    fn unqualified_postmaster_is_qualified() {
        assert_eq!(
            qualify_postmaster(b"RCPT TO:<Postmaster>\r\n", "localhost").as_deref(),
            Some(&b"RCPT TO:<postmaster@localhost>\r\n"[..])
        );
        assert_eq!(
            qualify_postmaster(b"rcpt to: <POSTMASTER> NOTIFY=NEVER\r\n", "x.test").as_deref(),
            Some(&b"rcpt to: <postmaster@x.test> NOTIFY=NEVER\r\n"[..])
        );
        assert_eq!(qualify_postmaster(b"RCPT TO:<postmaster@other>\r\n", "x"), None);
        assert_eq!(qualify_postmaster(b"RCPT TO:<postmasterx>\r\n", "x"), None);
        assert_eq!(qualify_postmaster(b"MAIL FROM:<postmaster>\r\n", "x"), None);
    }

    #[test]
    fn address_literals() {
        assert!(is_address_literal("[192.0.2.1]"));
        assert!(is_address_literal("[IPv6:2001:db8::1]"));
        assert!(!is_address_literal("[999.0.0.1]"));
        assert!(!is_address_literal("192.0.2.1"));
    }

    #[test]
    fn notify_never_is_exclusive() {
        assert!(notify_of(RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS).is_err());
        assert_eq!(notify_of(0).ok(), Some(None));
        let n = notify_of(RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_DELAY).ok().flatten();
        assert_eq!(n.map(|n| (n.success, n.failure, n.delay)), Some((true, false, true)));
    }
}
