//! Password guessing: failed AUTH attempts counted per client address over a window. From the
//! third failure each `535` is held back a little longer (up to 5 s), which slows a guesser
//! without hurting someone who mistyped; after `limits.max_auth_failures` the address gets
//! `421 4.7.0` for AUTH until its window ends (RFC 4954 §6 leaves the policy to the server;
//! Postfix's anvil and Dovecot's auth_failure_delay do the same kind of thing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures after which replies start being delayed.
const DELAY_AFTER: u32 = 2;
/// The longest delay of one reply.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses tracked before expired entries are swept (a flood of addresses stays bounded).
const SWEEP_AT: usize = 10_000;

/// Failures per client address.
#[derive(Debug)]
pub struct AuthGuard {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthGuard {
    /// `max` failures per address within `window` (counted from its first failure).
    pub fn new(max: u32, window: Duration) -> AuthGuard {
        AuthGuard { max, window, failures: Mutex::new(HashMap::new()) }
    }

    /// Has `ip` used up its failures for this window?
    pub fn refused(&self, ip: IpAddr, now: Instant) -> bool {
        self.count(ip, now) >= self.max
    }

    /// Record a failure of `ip`; returns how long to hold back the `535`.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        delay(entry.0)
    }

    fn count(&self, ip: IpAddr, now: Instant) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).filter(|(_, since)| now.duration_since(*since) < self.window).map_or(0, |(n, _)| *n)
    }
}

/// The hold-back for the `n`th failure: none for the first two, then 1 s more each time.
fn delay(n: u32) -> Duration {
    Duration::from_secs(u64::from(n.saturating_sub(DELAY_AFTER))).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failures_are_slowed_then_refused_per_address_until_the_window_ends() {
        let guard = AuthGuard::new(4, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        let t = Instant::now();
        assert!(!guard.refused(a, t));
        assert_eq!(guard.failed(a, t), Duration::ZERO);
        assert_eq!(guard.failed(a, t), Duration::ZERO);
        assert_eq!(guard.failed(a, t), Duration::from_secs(1));
        assert!(!guard.refused(a, t));
        assert_eq!(guard.failed(a, t), Duration::from_secs(2));
        assert!(guard.refused(a, t));
        // Another address is not affected.
        assert!(!guard.refused(b, t));
        // The window ends: a fresh start.
        let later = t + Duration::from_secs(61);
        assert!(!guard.refused(a, later));
        assert_eq!(guard.failed(a, later), Duration::ZERO);
    }

    #[test]
    fn the_delay_is_capped() {
        assert_eq!(delay(1), Duration::ZERO);
        assert_eq!(delay(3), Duration::from_secs(1));
        assert_eq!(delay(1000), MAX_DELAY);
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded() {
        let guard = AuthGuard::new(3, Duration::from_secs(1));
        let t = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            guard.failed(IpAddr::from(i.to_be_bytes()), t);
        }
        guard.failed([10, 0, 0, 1].into(), t + Duration::from_secs(2));
        assert_eq!(guard.failures.lock().unwrap().len(), 1);
    }
}
