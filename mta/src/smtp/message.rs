//! DATA (RFC 5321 §4.1.1.4): read the message, add our Received header (§4.4), spool it
//! durably, and only then answer `250` with the queue id (§6.1).

use std::net::IpAddr;
use std::time::Instant;

use mail_builder::headers::date::Date;
use sipmta_rules::Route;
use sipmta_store::{Envelope, Origin, now};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, error, info};

use super::conn::DataInput;
use super::data::{DataDecoder, DataProblem};
use super::ehlo::sanitise_helo;
use super::reply::Reply;
use super::session::{Next, Session, SessionState, Transaction};

/// The DATA reply when the spool write failed: nothing was accepted.
fn spool_failed(e: &sipmta_store::StoreError) -> Reply {
    error!(error = %e, "spooling failed; message not accepted");
    if e.is_out_of_space() {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    } else {
        // Transient or not, the client must try again: nothing was accepted.
        Reply::new(451, "4.3.0", "Requested action aborted: local error in processing")
    }
}

/// The message's fingerprint for recognising it when it is sent again: SHA-256 over the
/// reverse-path, the recipients and the content, less the fields each hop adds afresh to every
/// copy it sends (Received, RFC 5321 §4.4, and DKIM-Signature with its timestamp), so that the
/// next sipmta on the way also recognises a copy that an earlier hop sent twice. Only a
/// message with a Message-ID (RFC 5322 §3.6.4: it names one message) gets one, so that
/// identical content without one, a cron job's daily "nothing to report" for instance, is never
/// taken for a repeat.
fn fingerprint(tx: &Transaction, message: &[u8]) -> Option<sipmta_store::Fingerprint> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(tx.sender.as_bytes());
    for r in &tx.recipients {
        digest.update(b"\0");
        digest.update(r.address.as_bytes());
    }
    digest.update(b"\0\0");
    let (mut named, mut skipping, mut pos) = (false, false, 0);
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        pos = end;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            break;
        }
        // A continuation line (RFC 5322 §2.2.3) belongs to the field before it.
        if !matches!(text.first(), Some(b' ' | b'\t')) {
            let name = |n: &[u8]| text.get(..n.len()).is_some_and(|t| t.eq_ignore_ascii_case(n));
            skipping = name(b"received:") || name(b"dkim-signature:");
            named |= name(b"message-id:");
        }
        if !skipping {
            digest.update(text);
            digest.update(b"\n");
        }
    }
    digest.update(b"\0");
    digest.update(&message[pos..]);
    named.then(|| digest.finish().as_ref().try_into().ok()).flatten()
}

/// More Received headers than this means a mail loop (RFC 5321 §6.3; Postfix uses 50).
const MAX_HOPS: usize = 50;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// DATA: `354`, read to `CRLF.CRLF`, spool, `250 ... queued as ID`.
    pub(crate) async fn data(&mut self) -> Next {
        let Some(tx) = self.st.tx.as_ref() else {
            return self.answer(Reply::new(503, "5.5.1", "Need MAIL command"));
        };
        if tx.recipients.is_empty() {
            return self.answer(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        let limits = &self.ctx.config.limits;
        let bare = self.listener().bare_line_endings;
        let mut decoder = DataDecoder::new(limits.max_message_size.0 as usize, limits.max_line_length, bare);
        self.conn.reply(&Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));
        match self.conn.read_data(&mut decoder).await {
            Ok(DataInput::Done) => {}
            Ok(DataInput::Eof) | Err(_) => {
                info!(received = decoder.len(), "client disconnected during DATA; nothing was accepted");
                return Next::Close;
            }
            Ok(DataInput::Timeout) => {
                info!(received = decoder.len(), "timeout during DATA; nothing was accepted");
                self.conn.reply(&Reply::new(421, "4.4.2", "Timeout during DATA, closing connection"));
                return Next::Close;
            }
        }
        let Some(tx) = self.st.tx.take() else {
            return self.answer(Reply::new(503, "5.5.1", "Need MAIL command"));
        };
        let body = match decoder.finish() {
            Ok(body) => body,
            Err(problem) => {
                info!(?problem, "message refused");
                return self.answer(problem_reply(problem, limits.max_line_length));
            }
        };
        if count_received(&body) > MAX_HOPS {
            info!("message refused: too many Received headers (mail loop)");
            return self.answer(Reply::new(554, "5.4.6", "Too many hops (mail loop?)"));
        }
        let reply = self.spool(tx, body).await;
        self.answer(reply)
    }

    async fn spool(&mut self, tx: Transaction, body: Vec<u8>) -> Reply {
        let received = Instant::now();
        let store = &self.ctx.store;
        let window = self.ctx.config.spool.resend_window.0.as_secs();
        let fingerprint = if window > 0 { fingerprint(&tx, &body) } else { None };
        if let Some(fp) = &fingerprint
            && let Ok(Some(earlier)) = store.accepted_as(fp, now().saturating_sub(window))
        {
            return self.resent(earlier);
        }
        let id = match store.next_id() {
            Ok(id) => id,
            Err(e) => {
                error!(error = %e, "cannot allocate a queue id");
                return Reply::new(451, "4.3.0", "Requested action aborted: local error in processing");
            }
        };
        let header = received_header(&self.st, &tx, &self.ctx.config.hostname, &id.to_string());
        let mut message = Vec::with_capacity(header.len() + body.len());
        message.extend_from_slice(header.as_bytes());
        message.extend_from_slice(&body);
        let rcpt_count = tx.recipients.len();
        let mut tx = tx;
        self.route(&mut tx.recipients, &message);
        // Our own users' mail leaving the site carries our number (issue 7 item 1) and our
        // DKIM signature; whatever X-Fastpath-Tel the client wrote was a destination hint,
        // used by routing just now.
        let own_site =
            self.st.kind != super::Kind::FastPath && (self.st.auth_user.is_some() || super::is_trusted(&self.ctx.config, self.st.peer));
        let learner = self.ctx.relay.as_ref().map(|r| r.learner.clone());
        if own_site
            && tx.recipients.iter().any(|r| r.route != Route::Local)
            && let Some(learner) = learner.as_ref().filter(|l| l.stamps())
        {
            message.truncate(header.len());
            message.extend_from_slice(&learner.stamp(id, body, true));
        }
        // Mail from other sites may announce theirs; it is checked before delivery starts.
        let claim = (!own_site).then(|| learner.as_ref().and_then(|l| l.claim(id, &message).map(|c| (l.clone(), c)))).flatten();
        let learn = claim.map(|(learner, claim)| {
            let arrival = crate::learn::Arrival {
                id,
                ip: self.st.peer.ip(),
                helo: self.st.helo.clone().unwrap_or_default(),
                sender: tx.sender.clone(),
                rcpts: tx.recipients.iter().map(|r| r.address.clone()).collect(),
                sip_caller: self.st.sip_caller.clone(),
            };
            (learner, claim, arrival, message.clone())
        });
        let envelope = Envelope {
            id,
            received: now(),
            sender: tx.sender,
            env_id: tx.env_id,
            ret: tx.ret,
            body: tx.body,
            smtputf8: tx.smtputf8,
            size: message.len() as u64,
            origin: Origin {
                listener: self.st.kind.name().to_owned(),
                peer: self.st.peer.to_string(),
                helo: self.st.helo.clone().unwrap_or_default(),
                auth_user: self.st.auth_user.clone(),
                tls: self.st.tls.is_some(),
            },
            recipients: tx.recipients,
        };
        let from = envelope.sender.clone();
        let size = message.len();
        let has_fast = envelope.recipients.iter().any(|r| matches!(r.route, Route::Fast { .. }));
        // Mail with the null reverse-path may be a DSN about mail we relayed (DSN tracking).
        let dsn_check =
            from.is_empty().then(|| (message.clone(), envelope.recipients.iter().map(|r| r.address.clone()).collect::<Vec<_>>()));
        match store.accept_once(envelope, message, fingerprint).await {
            Ok(id) => {
                self.accepted(id, &from, rcpt_count, size, dsn_check);
                // The lease comes first: the queue must not start the fast path too.
                let inline = self.ctx.relay.as_ref().and_then(|r| crate::fastpath::inline::start(r, id, has_fast).map(|f| (r.clone(), f)));
                match learn {
                    // Delivery waits for the check, so a DSN this message asks for can go back
                    // over the fast path it may teach us (issue 7 item 3).
                    Some((learner, claim, arrival, copy)) if inline.is_none() => {
                        let accepted = self.ctx.accepted.clone();
                        tokio::spawn(async move {
                            // In a task of its own, so that even a panic in the check (it
                            // parses untrusted mail) cannot leave the message undelivered.
                            let check = tokio::spawn(async move { learner.check(&arrival, &copy, &claim).await });
                            if let Err(e) = check.await {
                                error!(queue_id = %id, error = %e, "the check of an announced number failed; delivering anyway");
                            }
                            let _ = accepted.send(id);
                        });
                    }
                    _ => {
                        if self.ctx.accepted.send(id).is_err() {
                            debug!("no delivery worker is listening; the message waits in the spool");
                        }
                    }
                }
                if let Some((relay, fast)) = inline
                    && let Some(reply) = crate::fastpath::inline::verdict(relay, fast, id, received).await
                {
                    // Refused to the client: the same message sent again is a new try, not a
                    // resend of something we took.
                    if reply.code >= 400
                        && let Some(fp) = &fingerprint
                        && let Err(e) = self.ctx.store.forget_fingerprint(fp)
                    {
                        debug!(queue_id = %id, error = %e, "cannot forget the fingerprint of a refused message");
                    }
                    return reply;
                }
                Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
            }
            Err(e) => spool_failed(&e),
        }
    }

    /// The same message again (see `spool.resend_window`): the client lost our first `250`,
    /// so it gets it now, with the first copy's id, and nothing is spooled twice.
    fn resent(&self, earlier: sipmta_store::QueueId) -> Reply {
        info!(queue_id = %earlier, peer = %self.st.peer, listener = self.st.kind.name(), "the same message was sent again; answered with the first copy's id, not accepted twice");
        crate::metrics::METRICS.resend(self.st.kind.name());
        let text = format!("sent again by {}; answered with this id, not accepted twice", self.st.peer);
        if let Err(e) = self.ctx.store.record(earlier, None, text) {
            debug!(queue_id = %earlier, error = %e, "cannot record history");
        }
        Reply::new(250, "2.0.0", format!("Ok: already accepted, the same message was sent again: queued as {earlier}"))
    }

    /// Bookkeeping for a message taken on: the log line, the metric, the first history line,
    /// and, for mail from the null sender, the check whether it is a DSN about mail we relayed.
    fn accepted(
        &mut self,
        id: sipmta_store::QueueId,
        from: &str,
        rcpt_count: usize,
        size: usize,
        dsn_check: Option<(Vec<u8>, Vec<String>)>,
    ) {
        if let Some((copy, rcpts)) = dsn_check {
            let (store, config) = (self.ctx.store.clone(), self.ctx.config.clone());
            tokio::spawn(async move {
                let hint = rcpts.iter().find_map(|r| crate::relay::tracking::parse_bounce_address(&config, r));
                crate::relay::tracking::observe(&store, &copy, &rcpts, hint).await;
            });
        }
        info!(queue_id = %id, from = %from, rcpts = rcpt_count, size, listener = self.st.kind.name(), "message accepted");
        crate::metrics::METRICS.received(self.st.kind.name());
        let origin = format!(
            "received from {} ({}) on {}{}{} for {rcpt_count} recipient(s), {size} octets",
            sanitise_helo(self.st.helo.as_deref().unwrap_or("unknown")),
            self.st.peer,
            self.st.kind.name(),
            if self.st.tls.is_some() { " over TLS" } else { "" },
            self.st.auth_user.as_deref().map(|u| format!(" as {u}")).unwrap_or_default(),
        );
        if let Err(e) = self.ctx.store.record(id, None, origin) {
            debug!(queue_id = %id, error = %e, "cannot record history");
        }
    }

    /// The route decision (DESIGN.md "Routing rules") for recipients that RCPT cleared for
    /// relaying; local recipients and our bounce addresses keep the route RCPT gave them.
    /// Fast-path decisions are stored as such; the relay queue carries them until the fast path
    /// exists.
    fn route(&self, recipients: &mut [sipmta_store::Recipient], message: &[u8]) {
        if recipients.iter().all(|r| r.route == Route::Local) {
            for r in recipients.iter_mut() {
                r.evidence = Some("local domain".into());
            }
            return;
        }
        let addresses: Vec<String> = recipients.iter().map(|r| r.address.clone()).collect();
        let decisions = self.ctx.routing.decide(&self.ctx.config, &addresses, message);
        for (r, d) in recipients.iter_mut().zip(decisions) {
            if r.route == Route::Local {
                r.evidence = Some("local domain".into());
                continue;
            }
            if let Route::Fast { tel } = &d.route {
                info!(rcpt = %r.address, tel = %tel, evidence = %d.evidence, "fast-path route");
            }
            r.evidence = Some(d.evidence.to_string());
            // A decision of Local here would contradict RCPT (which saw a remote domain).
            if d.route != Route::Local {
                r.route = d.route;
            }
        }
    }

    fn listener(&self) -> &crate::config::Listener {
        let c = &self.ctx.config;
        match self.st.kind {
            // A fast-path stream follows port 25's settings: it is mail from another site.
            super::Kind::Smtp | super::Kind::FastPath => &c.smtp,
            super::Kind::Submission => &c.submission,
            super::Kind::Submissions => &c.submissions,
        }
    }
}

fn problem_reply(problem: DataProblem, max_line: usize) -> Reply {
    match problem {
        DataProblem::TooBig => Reply::new(552, "5.3.4", "Message size exceeds fixed maximum message size"),
        // RFC 5321 §4.5.3.1.10 names "500 Line too long" for this.
        DataProblem::LineTooLong => Reply::new(500, "5.5.2", format!("Line too long: message lines are limited to {max_line} octets")),
        DataProblem::BareLineEnding => Reply::new(550, "5.5.2", "Message contains a bare CR or LF (RFC 5321 §2.3.8)"),
    }
}

/// Received headers in the header section (they are all at the top, RFC 5321 §4.4).
fn count_received(message: &[u8]) -> usize {
    let headers = match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    };
    headers.split(|&b| b == b'\n').filter(|line| line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:")).count()
}

/// Our trace header (RFC 5321 §4.4), with the protocol keyword of RFC 3848 / RFC 6531.
pub fn received_header(st: &SessionState, tx: &Transaction, hostname: &str, id: &str) -> String {
    let helo = sanitise_helo(st.helo.as_deref().unwrap_or("unknown"));
    let literal = match st.peer.ip() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    };
    let mut with = String::from(match (tx.smtputf8, st.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    });
    if st.tls.is_some() {
        with.push('S');
    }
    if st.auth_user.is_some() {
        with.push('A');
    }
    let mut header = format!("Received: from {helo} ({literal})\r\n\tby {hostname} (sipmta) with {with} id {id}");
    if let Some(tls) = &st.tls {
        header.push_str(&format!("\r\n\t(using {tls})"));
    }
    if let [only] = tx.recipients.as_slice() {
        header.push_str(&format!("\r\n\tfor <{}>", only.address));
    }
    header.push_str(&format!(";\r\n\t{}\r\n", Date::new(now() as i64).to_rfc822()));
    header
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn received_headers_are_counted_only_in_the_header_section() {
        let m = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: in body\r\n";
        assert_eq!(count_received(m), 2);
    }

    #[test]
    fn the_fingerprint_needs_a_message_id_and_ignores_what_each_hop_adds() {
        let tx = Transaction {
            sender: "a@example.org".into(),
            body: sipmta_store::Body::SevenBit,
            smtputf8: false,
            ret: None,
            env_id: None,
            declared_size: 0,
            recipients: vec![sipmta_store::Recipient::new("b@example.net", Route::Relay)],
        };
        let base = b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nbody\r\n";
        let fp = fingerprint(&tx, base).unwrap();
        let hop = b"Received: from h by h\r\n\tid 1; Sat, 21 Nov 2026 10:00:00 +0000\r\nDKIM-Signature: v=1; t=1;\r\n b=x\r\nSubject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nbody\r\n";
        assert_eq!(fingerprint(&tx, hop), Some(fp), "trace fields and signatures are left out");
        for other in [
            &b"Subject: y\r\nMessage-ID:\r\n <a@b>\r\n\r\nbody\r\n"[..],
            b"Subject: x\r\nMessage-ID:\r\n <c@d>\r\n\r\nbody\r\n",
            b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nbody2\r\n",
        ] {
            assert_ne!(fingerprint(&tx, other), Some(fp), "{}", String::from_utf8_lossy(other));
        }
        assert_eq!(fingerprint(&tx, b"Subject: x\r\n\r\nMessage-ID: <in@body>\r\n"), None, "only the header section counts");
        assert_eq!(fingerprint(&tx, b"X-Message-ID: <g@h>\r\n\r\n"), None);
    }
}
