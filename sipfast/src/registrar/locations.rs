//! The location service (RFC 3261 §10.3): which contacts each address of record is bound to,
//! behind the small [`Locations`] trait so the daemon can keep them in its store.
//!
//! Invariants every implementation keeps:
//! - an address of record is the normalised user part alone (`+815012345678`): the registrar
//!   serves one domain, so the domain is not part of the key (usrloc `use_domain=0`);
//! - a binding is identified within its AOR by its contact URI ([`Binding::contact`]): `put`
//!   replaces the binding with the same contact;
//! - callers never use an expired binding: [`Binding::is_live`] is checked on every read, so
//!   an implementation may purge expired bindings lazily.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::ua::Transport;

/// One contact an address of record is reachable at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as the user agent registered it, e.g.
    /// `sip:+815012345678@127.0.0.1:5062;transport=TCP`.
    pub contact: String,
    /// When the binding lapses (RFC 3261 §10.2.1.1).
    pub expires_at: SystemTime,
    /// Call-ID of the REGISTER that made or last refreshed it (§10.3 step 7).
    pub call_id: String,
    /// CSeq number of that REGISTER; a REGISTER with the same Call-ID must go higher.
    pub cseq: u32,
    /// Transport the REGISTER came over.
    pub transport: Transport,
    /// Network address the REGISTER came from. Over TCP this is the flow the user agent keeps
    /// open (RFC 5626 style), and requests for the AOR are sent over it while it is open; over
    /// UDP it is where requests go when the contact's address differs (NAT, `fix_nated_register`).
    pub source: SocketAddr,
}

impl Binding {
    /// Whether the binding is still valid at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }

    /// Seconds left at `now`, rounded down (0 once expired).
    pub fn remaining_secs(&self, now: SystemTime) -> u64 {
        self.expires_at.duration_since(now).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A failure of the location store; the registrar answers the request with `500`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location store: {0}")]
pub struct LocationsError(pub String);

/// Where the registrar keeps bindings. Calls are made from the registrar's single protocol
/// task and must be quick (memory, or a local store such as sled); a call returns once the
/// change is visible to the next read.
pub trait Locations: Send + Sync + std::fmt::Debug {
    /// The bindings stored for `aor`, possibly including expired ones.
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>, LocationsError>;
    /// Adds `binding` to `aor`, replacing the one with the same contact.
    fn put(&self, aor: &str, binding: Binding) -> Result<(), LocationsError>;
    /// Removes the binding of `aor` with contact `contact`, if any.
    fn remove(&self, aor: &str, contact: &str) -> Result<(), LocationsError>;
}

/// [`Locations`] in memory: what the registrar uses on its own and in tests. Expired bindings
/// are purged from an AOR whenever it is written.
#[derive(Debug, Default)]
pub struct MemoryLocations {
    table: Mutex<HashMap<String, Vec<Binding>>>,
}

impl MemoryLocations {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Binding>>> {
        // A panic while holding the lock cannot leave a half-written Vec behind: keep going.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Locations for MemoryLocations {
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>, LocationsError> {
        Ok(self.table().get(aor).cloned().unwrap_or_default())
    }

    fn put(&self, aor: &str, binding: Binding) -> Result<(), LocationsError> {
        let now = SystemTime::now();
        let mut table = self.table();
        let list = table.entry(aor.to_string()).or_default();
        list.retain(|b| b.contact != binding.contact && b.is_live(now));
        list.push(binding);
        Ok(())
    }

    fn remove(&self, aor: &str, contact: &str) -> Result<(), LocationsError> {
        let now = SystemTime::now();
        let mut table = self.table();
        if let Some(list) = table.get_mut(aor) {
            list.retain(|b| b.contact != contact && b.is_live(now));
            if list.is_empty() {
                table.remove(aor);
            }
        }
        Ok(())
    }
}
