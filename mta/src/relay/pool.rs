//! Outbound connections: limits in total and per destination, and reuse. A connection that
//! finished a transaction waits up to `connection_idle` for the next message to the same
//! destination (one connection carries several messages), then says QUIT.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::outbound::Connection;

/// The connection pool.
#[derive(Debug)]
pub struct Pool {
    total: Arc<Semaphore>,
    per_destination: usize,
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    idle: Mutex<HashMap<String, Vec<(Connection, Instant)>>>,
    idle_for: Duration,
    max_transactions: usize,
}

/// Permission to use one connection to a destination; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _total: OwnedSemaphorePermit,
    _destination: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool with these limits.
    pub fn new(total: usize, per_destination: usize, idle_for: Duration, max_transactions: usize) -> Pool {
        Pool {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_destination: per_destination.max(1),
            destinations: Mutex::default(),
            idle: Mutex::default(),
            idle_for,
            max_transactions: max_transactions.max(1),
        }
    }

    /// Wait for a connection slot to `key` (per-destination first, so one busy destination
    /// does not hold total slots while it waits).
    pub async fn slot(&self, key: &str) -> Slot {
        let dest = {
            let mut map = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_destination))).clone()
        };
        // The semaphores are never closed, so acquiring cannot fail.
        let destination = dest.acquire_owned().await.unwrap_or_else(|_| unreachable!("pool semaphore closed"));
        let total = self.total.clone().acquire_owned().await.unwrap_or_else(|_| unreachable!("pool semaphore closed"));
        Slot { _total: total, _destination: destination }
    }

    /// A connection to `key` that is still fresh, if one is waiting.
    pub fn take(&self, key: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < self.idle_for {
                return Some(conn);
            }
            tokio::spawn(conn.quit());
        }
        None
    }

    /// Keep a connection for the next message to `key`, unless it has carried enough.
    pub fn put(&self, key: &str, conn: Connection) {
        if conn.transactions >= self.max_transactions {
            tokio::spawn(conn.quit());
            return;
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).entry(key.to_owned()).or_default().push((conn, Instant::now()));
    }

    /// Close connections idle for too long (called periodically) or all of them (`all`).
    pub fn reap(&self, all: bool) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        for (key, list) in idle.iter_mut() {
            let (keep, close): (Vec<_>, Vec<_>) = list.drain(..).partition(|(_, since)| !all && since.elapsed() < self.idle_for);
            for (conn, _) in close {
                debug!(destination = %key, "closing idle connection");
                tokio::spawn(conn.quit());
            }
            *list = keep;
        }
        idle.retain(|_, list| !list.is_empty());
    }

    /// How long idle connections are kept.
    pub fn idle_for(&self) -> Duration {
        self.idle_for
    }
}
