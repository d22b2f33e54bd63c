//! Open fast-path sessions (issue 6, session reuse): a session is a SIP call plus the SMTP
//! connection over its stream. After a transaction it waits up to `fastpath.session_idle`
//! for the next message to the same number, which starts with RSET (RFC 5321 §4.1.1.5);
//! then it is closed with QUIT and BYE. Sessions open at once to one number are bounded by
//! `fastpath.max_sessions_per_number`: more messages wait for a slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipfast::ua::Call;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::relay::outbound::Connection;

/// A call and the SMTP connection on its stream.
#[derive(Debug)]
pub struct Session {
    /// The SIP call (its dialog ends the session when either side hangs up).
    pub call: Call,
    /// SMTP to the destination's final server.
    pub conn: Connection,
}

impl Session {
    /// QUIT, then BYE (DESIGN.md: SMTP, QUIT, TCP close, BYE).
    pub async fn close(self) {
        let Session { call, conn } = self;
        conn.quit().await;
        if let Err(e) = call.hangup().await {
            debug!(error = %e, "BYE failed");
        }
    }
}

/// The sessions: slots per number and the idle ones.
#[derive(Debug)]
pub struct Sessions {
    per_number: usize,
    idle_for: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    idle: Mutex<HashMap<String, Vec<(Session, Instant)>>>,
}

/// Permission to use one session to a number; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Sessions {
    /// At most `per_number` sessions per number, idle ones kept for `idle_for`.
    pub fn new(per_number: usize, idle_for: Duration) -> Sessions {
        Sessions { per_number: per_number.max(1), idle_for, slots: Mutex::default(), idle: Mutex::default() }
    }

    /// Wait for a slot to `tel`.
    pub async fn slot(&self, tel: &str) -> Slot {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(tel.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_number))).clone()
        };
        // The semaphores are never closed.
        Slot { _permit: sem.acquire_owned().await.unwrap_or_else(|_| unreachable!("session semaphore closed")) }
    }

    /// An idle session to `tel` whose call is still up, if there is one.
    pub fn take(&self, tel: &str) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(tel)?;
        while let Some((session, since)) = list.pop() {
            if since.elapsed() < self.idle_for && !session.call.is_ended() {
                return Some(session);
            }
            tokio::spawn(session.close());
        }
        None
    }

    /// Keep a session for the next message to `tel`, or close it when reuse is off.
    pub fn put(&self, tel: &str, session: Session) {
        if self.idle_for.is_zero() || session.call.is_ended() {
            tokio::spawn(session.close());
            return;
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).entry(tel.to_owned()).or_default().push((session, Instant::now()));
    }

    /// Close the sessions idle too long, or all of them (`all`, at shutdown). Returns when
    /// their QUIT and BYE are done.
    pub async fn reap(&self, all: bool) {
        let closing: Vec<(String, Session)> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut closing = Vec::new();
            for (tel, list) in idle.iter_mut() {
                let (keep, close): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|(s, since)| !all && since.elapsed() < self.idle_for && !s.call.is_ended());
                closing.extend(close.into_iter().map(|(s, _)| (tel.clone(), s)));
                *list = keep;
            }
            idle.retain(|_, list| !list.is_empty());
            closing
        };
        for (tel, session) in closing {
            debug!(tel, "closing idle fast-path session");
            session.close().await;
        }
    }

    /// How often [`Sessions::reap`] should run.
    pub fn reap_every(&self) -> Duration {
        (self.idle_for / 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }
}
