//! The protocol table (DESIGN.md "FP/1 preamble"; seed 004, first embodiment): for each number
//! we called, the protocol the callee agreed to, so the next call skips `PROTOS?` and sends
//! `USE` at once. A failed `USE` records the failure and clears the choice; the next call
//! negotiates again.
//!
//! Writes are not flushed: losing an entry in a crash only costs one `PROTOS?` round trip.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::now;
use crate::{Result, Store};

pub(crate) const PROTOCOLS: &str = "protocols";

/// What we know about a number's fast-path protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolEntry {
    /// The protocol agreed at the last negotiation; `None` after a failure cleared it.
    #[serde(default)]
    pub protocol: Option<String>,
    /// When it was negotiated (Unix seconds).
    #[serde(default)]
    pub negotiated_at: u64,
    /// Calls that used it without asking.
    #[serde(default)]
    pub uses: u64,
    /// When it was last used (Unix seconds).
    #[serde(default)]
    pub used_at: u64,
    /// Failures recorded.
    #[serde(default)]
    pub failures: u64,
    /// The last failure, in words.
    #[serde(default)]
    pub last_failure: Option<String>,
}

impl Store {
    /// The entry for `number` (E.164).
    pub fn protocol(&self, number: &str) -> Result<Option<ProtocolEntry>> {
        match self.inner.protocols.get(number.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt {
                tree: PROTOCOLS,
                key: number.into(),
                reason: e.to_string(),
            }),
            None => Ok(None),
        }
    }

    fn update_protocol(&self, number: &str, change: impl Fn(&mut ProtocolEntry)) -> Result<ProtocolEntry> {
        let mut entry = self.protocol(number)?.unwrap_or_default();
        change(&mut entry);
        self.inner.protocols.insert(number.as_bytes(), serde_json::to_vec(&entry).unwrap_or_default())?;
        Ok(entry)
    }

    /// Record the protocol a negotiation (`PROTOS?` ... `USE`) settled on.
    pub fn protocol_negotiated(&self, number: &str, protocol: &str) -> Result<ProtocolEntry> {
        let at = now();
        self.update_protocol(number, |e| {
            e.protocol = Some(protocol.to_owned());
            e.negotiated_at = at;
            e.used_at = at;
        })
    }

    /// Record a call that used the known protocol without asking.
    pub fn protocol_used(&self, number: &str) -> Result<ProtocolEntry> {
        let at = now();
        self.update_protocol(number, |e| {
            e.uses += 1;
            e.used_at = at;
        })
    }

    /// Record that `USE` of the known protocol failed: the choice is cleared.
    pub fn protocol_failed(&self, number: &str, why: &str) -> Result<ProtocolEntry> {
        self.update_protocol(number, |e| {
            e.protocol = None;
            e.failures += 1;
            e.last_failure = Some(why.to_owned());
        })
    }

    /// Every entry, by number.
    pub fn protocols(&self) -> Result<Vec<(String, ProtocolEntry)>> {
        self.inner
            .protocols
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let number = String::from_utf8_lossy(&k).into_owned();
                let entry = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: PROTOCOLS,
                    key: number.clone(),
                    reason: e.to_string(),
                })?;
                Ok((number, entry))
            })
            .collect()
    }

    /// Remove a number's entry; whether there was one.
    pub fn remove_protocol(&self, number: &str) -> Result<bool> {
        Ok(self.inner.protocols.remove(number.as_bytes())?.is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Store;

    #[test]
    fn negotiate_use_fail_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        assert!(store.protocol("+815012345678").unwrap().is_none());
        store.protocol_negotiated("+815012345678", "smtp").unwrap();
        store.protocol_used("+815012345678").unwrap();
        let e = store.protocol_used("+815012345678").unwrap();
        assert_eq!((e.protocol.as_deref(), e.uses), (Some("smtp"), 2));
        let e = store.protocol_failed("+815012345678", "FP/1 ERR 415 unsupported-protocol").unwrap();
        assert_eq!((e.protocol, e.failures), (None, 1));
        assert_eq!(store.protocols().unwrap().len(), 1);
        assert!(store.remove_protocol("+815012345678").unwrap());
        assert!(!store.remove_protocol("+815012345678").unwrap());
    }
}
