//! The SIP location table of the built-in registrar (RFC 3261 §10.3; DESIGN.md "Fast path"):
//! for each address of record (an E.164 number), the contacts its user agents registered,
//! until they expire. Kept here so registrations survive a restart of the daemon the way they
//! survive one of Kamailio with a database.
//!
//! Keys are `aor \0 contact`, so one prefix scan reads an AOR's bindings. Expired bindings are
//! purged whenever their AOR is written. Writes are not flushed: a crash may lose the last
//! registrations, which user agents refresh on their own schedule.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::now;
use crate::{Result, Store};

pub(crate) const LOCATIONS: &str = "locations";

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationEntry {
    /// The contact URI as registered.
    pub contact: String,
    /// When it lapses (Unix seconds).
    pub expires_at: u64,
    /// Call-ID of the REGISTER that made or refreshed it.
    pub call_id: String,
    /// That REGISTER's CSeq number.
    pub cseq: u32,
    /// `udp` or `tcp`: how the REGISTER came.
    pub transport: String,
    /// Where it came from (`ip:port`).
    pub source: String,
}

fn key(aor: &str, contact: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(aor.len() + contact.len() + 1);
    k.extend_from_slice(aor.as_bytes());
    k.push(0);
    k.extend_from_slice(contact.as_bytes());
    k
}

impl Store {
    /// Every binding stored for `aor`, expired ones included (callers check expiry).
    pub fn location_bindings(&self, aor: &str) -> Result<Vec<LocationEntry>> {
        let mut prefix = aor.as_bytes().to_vec();
        prefix.push(0);
        self.inner.locations.scan_prefix(prefix).map(|item| self.decode_location(item)).map(|r| r.map(|(_, e)| e)).collect()
    }

    /// Add or replace `aor`'s binding for `entry.contact`, and drop its expired ones.
    pub fn location_put(&self, aor: &str, entry: &LocationEntry) -> Result<()> {
        let now = now();
        for old in self.location_bindings(aor)? {
            if old.expires_at <= now {
                self.inner.locations.remove(key(aor, &old.contact))?;
            }
        }
        self.inner.locations.insert(key(aor, &entry.contact), serde_json::to_vec(entry).unwrap_or_default())?;
        Ok(())
    }

    /// Remove `aor`'s binding for `contact`; whether there was one.
    pub fn location_remove(&self, aor: &str, contact: &str) -> Result<bool> {
        Ok(self.inner.locations.remove(key(aor, contact))?.is_some())
    }

    /// Every live binding, by AOR, for `sipmta registrar list`.
    pub fn locations(&self) -> Result<Vec<(String, LocationEntry)>> {
        let now = now();
        let all: Result<Vec<(String, LocationEntry)>> = self.inner.locations.iter().map(|item| self.decode_location(item)).collect();
        Ok(all?.into_iter().filter(|(_, e)| e.expires_at > now).collect())
    }

    fn decode_location(&self, item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(String, LocationEntry)> {
        let (k, v) = item?;
        let aor = k.split(|&b| b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
        let entry = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            tree: LOCATIONS,
            key: String::from_utf8_lossy(&k).replace('\0', " "),
            reason: e.to_string(),
        })?;
        Ok((aor, entry))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::LocationEntry;
    use crate::Store;
    use crate::types::now;

    fn entry(contact: &str, expires_at: u64) -> LocationEntry {
        LocationEntry {
            contact: contact.into(),
            expires_at,
            call_id: "c1@host".into(),
            cseq: 1,
            transport: "udp".into(),
            source: "127.0.0.1:5062".into(),
        }
    }

    #[test]
    fn bindings_are_kept_per_aor_and_contact_and_expired_ones_purged() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let later = now() + 600;
        store.location_put("+815012345678", &entry("sip:a@127.0.0.1:5062", later)).unwrap();
        store.location_put("+815012345678", &entry("sip:b@127.0.0.1:5064", now() - 1)).unwrap();
        // A prefix of another AOR is not that AOR.
        store.location_put("+8150123456789", &entry("sip:c@127.0.0.1:5066", later)).unwrap();
        assert_eq!(store.location_bindings("+815012345678").unwrap().len(), 2);
        // Replacing a contact keeps one binding for it; the expired one is purged on write.
        store.location_put("+815012345678", &entry("sip:a@127.0.0.1:5062", later + 60)).unwrap();
        let bindings = store.location_bindings("+815012345678").unwrap();
        assert_eq!(bindings, vec![entry("sip:a@127.0.0.1:5062", later + 60)]);
        assert_eq!(store.locations().unwrap().len(), 2);
        assert!(store.location_remove("+815012345678", "sip:a@127.0.0.1:5062").unwrap());
        assert!(store.location_bindings("+815012345678").unwrap().is_empty());
        assert_eq!(store.location_bindings("+8150123456789").unwrap().len(), 1);
    }
}
