//! One mail transaction on an open [`Connection`], with an answer per recipient.
//!
//! With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one batch and their replies
//! are read back together; otherwise each command waits for its reply. A recipient's answer is
//! its RCPT reply when that was negative, else the reply to the final dot (or to DATA, when
//! DATA itself was refused). DSN parameters are passed on only when the next hop offers DSN,
//! so `Outcome::dsn_passed` tells the caller whether a success DSN is ours to send.

use sipmta_store::{Body, Envelope, Notify, Ret};

use super::{Answer, Connection, Failure, body_is_8bit, notify_param, read_replies, ret_param, stuff, write_all, xtext};

/// A message to send.
#[derive(Debug, Clone)]
pub struct Txn<'a> {
    /// Reverse-path (empty for `<>`).
    pub sender: &'a str,
    /// RFC 3461 ENVID to pass on.
    pub env_id: Option<&'a str>,
    /// RFC 3461 RET to pass on.
    pub ret: Option<Ret>,
    /// RFC 6152 body type.
    pub body: Body,
    /// The envelope asked for SMTPUTF8.
    pub smtputf8: bool,
    /// The recipients of this attempt.
    pub rcpts: Vec<TxnRcpt<'a>>,
    /// The message as stored (CRLF line endings, not dot-stuffed).
    pub message: &'a [u8],
}

/// One recipient of a transaction.
#[derive(Debug, Clone)]
pub struct TxnRcpt<'a> {
    /// Forward-path.
    pub address: &'a str,
    /// RFC 3461 NOTIFY.
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT, stored as `type;address` (decoded).
    pub orcpt: Option<&'a str>,
}

impl<'a> Txn<'a> {
    /// Recipients `idxs` of `env` from `sender`, with the envelope id `env_id` (see
    /// [`envelope_id`]) and each recipient's NOTIFY as `notify` makes it.
    pub fn of(
        env: &'a Envelope,
        sender: &'a str,
        env_id: &'a str,
        idxs: &[usize],
        message: &'a [u8],
        notify: impl Fn(Option<Notify>) -> Option<Notify>,
    ) -> Txn<'a> {
        Txn {
            sender,
            env_id: Some(env_id),
            ret: env.ret,
            body: env.body,
            smtputf8: env.smtputf8,
            rcpts: idxs
                .iter()
                .map(|&i| &env.recipients[i])
                .map(|r| TxnRcpt { address: &r.address, notify: notify(r.notify), orcpt: r.orcpt.as_deref() })
                .collect(),
            message,
        }
    }
}

/// The envelope id a message leaves with: the sender's, or our queue id, so that DSNs coming
/// back can be matched to it (DESIGN.md "DSN tracking").
pub fn envelope_id(env: &Envelope) -> String {
    env.env_id.clone().unwrap_or_else(|| env.id.to_string())
}

/// What happened to each recipient, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One answer per recipient.
    pub answers: Vec<Answer>,
    /// The next hop took the DSN parameters (it offers DSN), so success reports are its job.
    pub dsn_passed: bool,
}

impl Connection {
    /// Run one transaction. `Err` means the connection failed before recipients got individual
    /// answers (every recipient shares it, and the connection must not be reused); `Ok` carries
    /// an answer per recipient, and the connection is ready for [`Connection::reset`] and
    /// another transaction.
    pub async fn send(&mut self, txn: &Txn<'_>) -> Result<Outcome, Failure> {
        self.transaction(txn, false).await
    }

    /// [`Connection::send`] on a connection that has been idle: RSET first, which proves it
    /// alive before any of the message is sent. With PIPELINING the RSET goes in the same
    /// command group as MAIL, RCPT and DATA (RFC 2920 §3.1 lets RSET appear anywhere in a
    /// group), saving a round trip; a negative answer to it is `Rejected { stage: "RSET" }`
    /// and the connection is not reused (the server may be waiting for data: closing it
    /// without the final dot abandons the transaction, RFC 5321 §4.1.1.4).
    pub async fn send_reset_first(&mut self, txn: &Txn<'_>) -> Result<Outcome, Failure> {
        if self.caps.pipelining {
            return self.transaction(txn, true).await;
        }
        self.reset().await?;
        self.transaction(txn, false).await
    }

    async fn transaction(&mut self, txn: &Txn<'_>, reset_first: bool) -> Result<Outcome, Failure> {
        if self.open_transaction && !reset_first {
            self.reset().await?;
        }
        self.transactions += 1;
        let n = txn.rcpts.len();
        let all = |a: Answer| Ok(Outcome { answers: vec![a; n], dsn_passed: false });
        let needs_utf8 = txn.smtputf8 && (!txn.sender.is_ascii() || txn.rcpts.iter().any(|r| !r.address.is_ascii()));
        if needs_utf8 && !self.caps.smtputf8 {
            // RFC 6531 §3.7.4.1: we may not downgrade addresses.
            return all(Answer::local(553, "5.6.7", format!("{} does not support SMTPUTF8, which this message needs", self.remote)));
        }
        if self.caps.size > 0 && txn.message.len() as u64 > self.caps.size {
            return all(Answer::local(
                552,
                "5.3.4",
                format!("message of {} octets exceeds {}'s limit of {}", txn.message.len(), self.remote, self.caps.size),
            ));
        }
        let mut commands = vec![self.mail_command(txn, needs_utf8)];
        commands.extend(txn.rcpts.iter().map(|r| self.rcpt_command(r)));
        let t = self.timeouts;
        let (mail, rcpts, data) = if self.caps.pipelining {
            let (mut batch, stage) =
                if reset_first { ("RSET\r\n".to_owned(), "RSET/MAIL/RCPT/DATA") } else { (String::new(), "MAIL/RCPT/DATA") };
            batch.push_str(&commands.concat());
            batch.push_str("DATA\r\n");
            write_all(&mut self.client, batch.as_bytes(), t.command, stage).await?;
            let mut replies = read_replies(&mut self.client, n + 2 + usize::from(reset_first), t.command.max(t.data_init), stage).await?;
            if reset_first {
                let rset = replies.remove(0);
                if !rset.is_positive() {
                    return Err(Failure::Rejected { stage: "RSET", answer: rset });
                }
                self.open_transaction = false;
            }
            let data = replies.pop().ok_or_else(|| short("DATA"))?;
            let mail = replies.remove(0);
            (mail, replies, Some(data))
        } else {
            let mail = self.command(&commands[0], "MAIL").await?;
            let mut rcpts = Vec::with_capacity(n);
            if mail.is_positive() {
                for cmd in &commands[1..] {
                    rcpts.push(self.command(cmd, "RCPT").await?);
                }
            }
            (mail, rcpts, None)
        };
        if !mail.is_positive() {
            self.finish_refused_data(data.as_ref()).await?;
            return all(mail);
        }
        self.open_transaction = true;
        let accepted = rcpts.iter().filter(|a| a.is_positive()).count();
        let data = match data {
            Some(d) => d,
            None if accepted == 0 => return Ok(Outcome { answers: rcpts, dsn_passed: false }),
            None => {
                write_all(&mut self.client, b"DATA\r\n", t.data_init, "DATA").await?;
                read_replies(&mut self.client, 1, t.data_init, "DATA").await?.remove(0)
            }
        };
        if accepted == 0 {
            self.finish_refused_data(Some(&data)).await?;
            return Ok(Outcome { answers: rcpts, dsn_passed: false });
        }
        let final_answer = if data.code == 354 {
            write_all(&mut self.client, &stuff(txn.message), t.data_block, "message").await?;
            let answer = read_replies(&mut self.client, 1, t.data_end, "end of data").await?.remove(0);
            // The reply to the final dot ends the transaction, whatever it says.
            self.open_transaction = false;
            answer
        } else {
            data
        };
        let answers = rcpts.into_iter().map(|a| if a.is_positive() { final_answer.clone() } else { a }).collect();
        Ok(Outcome { answers, dsn_passed: self.caps.dsn })
    }

    /// RSET between transactions; a failure means the connection is not reusable.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        let answer = self.command("RSET\r\n", "RSET").await?;
        if answer.is_positive() {
            self.open_transaction = false;
            Ok(())
        } else {
            Err(Failure::Rejected { stage: "RSET", answer })
        }
    }

    async fn command(&mut self, line: &str, stage: &'static str) -> Result<Answer, Failure> {
        let limit = self.timeouts.command;
        write_all(&mut self.client, line.as_bytes(), limit, stage).await?;
        Ok(read_replies(&mut self.client, 1, limit, stage).await?.remove(0))
    }

    /// A pipelined DATA that got 354 although nothing is to be sent: end it empty (RFC 2920
    /// §3.1 says servers should not do this; some do).
    async fn finish_refused_data(&mut self, data: Option<&Answer>) -> Result<(), Failure> {
        if data.is_some_and(|d| d.code == 354) {
            write_all(&mut self.client, b".\r\n", self.timeouts.data_block, "empty data").await?;
            read_replies(&mut self.client, 1, self.timeouts.data_end, "empty data").await?;
            self.open_transaction = false;
        }
        Ok(())
    }

    fn mail_command(&self, txn: &Txn<'_>, utf8: bool) -> String {
        let mut line = format!("MAIL FROM:<{}>", txn.sender);
        if self.caps.size > 0 {
            line.push_str(&format!(" SIZE={}", txn.message.len()));
        }
        if body_is_8bit(txn.body) && self.caps.eight_bit {
            line.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            line.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            if let Some(ret) = txn.ret {
                line.push_str(&format!(" RET={}", ret_param(ret)));
            }
            if let Some(env_id) = txn.env_id {
                line.push_str(&format!(" ENVID={}", xtext(env_id)));
            }
        }
        line.push_str("\r\n");
        line
    }

    fn rcpt_command(&self, r: &TxnRcpt<'_>) -> String {
        let mut line = format!("RCPT TO:<{}>", r.address);
        if self.caps.dsn {
            if let Some(n) = &r.notify {
                line.push_str(&format!(" NOTIFY={}", notify_param(n)));
            }
            if let Some((kind, addr)) = r.orcpt.and_then(|o| o.split_once(';')) {
                line.push_str(&format!(" ORCPT={kind};{}", xtext(addr)));
            }
        }
        line.push_str("\r\n");
        line
    }
}

fn short(stage: &'static str) -> Failure {
    Failure::Broken { stage, reason: "fewer replies than commands".into() }
}
