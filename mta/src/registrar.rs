//! The built-in SIP registrar/proxy in the daemon (issue 6; sipfast's [`sipfast::registrar`]):
//! started from `[registrar]`, with its location table in the store so registrations outlive
//! a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use sipfast::registrar::{Binding, Locations, LocationsError, Registrar, RegistrarConfig, RegistrarHandle, RegistrarUser};
use sipfast::ua::Transport;
use sipmta_store::{LocationEntry, Store};
use tracing::info;

use crate::config::Config;

/// [`Locations`] on the store's `locations` tree.
#[derive(Debug)]
pub struct StoreLocations(pub Store);

fn to_entry(b: &Binding) -> LocationEntry {
    LocationEntry {
        contact: b.contact.clone(),
        expires_at: b.expires_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        transport: match b.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
        .into(),
        source: b.source.to_string(),
    }
}

fn from_entry(e: LocationEntry) -> Option<Binding> {
    Some(Binding {
        contact: e.contact,
        expires_at: UNIX_EPOCH + Duration::from_secs(e.expires_at),
        call_id: e.call_id,
        cseq: e.cseq,
        transport: if e.transport == "tcp" { Transport::Tcp } else { Transport::Udp },
        source: e.source.parse::<SocketAddr>().ok()?,
    })
}

impl Locations for StoreLocations {
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>, LocationsError> {
        let entries = self.0.location_bindings(aor).map_err(|e| LocationsError(e.to_string()))?;
        Ok(entries.into_iter().filter_map(from_entry).collect())
    }

    fn put(&self, aor: &str, binding: Binding) -> Result<(), LocationsError> {
        self.0.location_put(aor, &to_entry(&binding)).map_err(|e| LocationsError(e.to_string()))
    }

    fn remove(&self, aor: &str, contact: &str) -> Result<(), LocationsError> {
        self.0.location_remove(aor, contact).map(|_| ()).map_err(|e| LocationsError(e.to_string()))
    }
}

/// Start the registrar when `[registrar]` enables it.
pub async fn start(config: &Config, store: &Store) -> Result<Option<RegistrarHandle>> {
    let r = &config.registrar;
    if !r.enabled {
        return Ok(None);
    }
    let domain = r.domain.clone().unwrap_or_else(|| config.fastpath.domain.clone());
    let mut rc = RegistrarConfig::new(r.listen, domain.clone());
    rc.country_code = config.routing.country_code.clone();
    rc.min_expires = secs(r.min_expires.0);
    rc.max_expires = secs(r.max_expires.0);
    rc.default_expires = secs(r.default_expires.0);
    rc.server = format!("sipmta/{}", env!("CARGO_PKG_VERSION"));
    for u in &r.users {
        let password = u.password().with_context(|| format!("registrar.users {}: reading password_file", u.number))?;
        rc.users.push(match password {
            Some(p) => RegistrarUser::new(u.number.clone(), p),
            None => RegistrarUser::without_auth(u.number.clone()),
        });
    }
    let handle = Registrar::start(rc, Arc::new(StoreLocations(store.clone()))).await.with_context(|| {
        format!("starting the SIP registrar on registrar.listen {} (set registrar.enabled = false when Kamailio serves SIP here)", r.listen)
    })?;
    let local = handle.local_addr();
    info!(addr = %local, %domain, users = r.users.len(), "registrar listener on {local}");
    Ok(Some(handle))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn bindings_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let locations = StoreLocations(store);
        let binding = Binding {
            contact: "sip:+815012345678@127.0.0.1:5062;transport=TCP".into(),
            expires_at: UNIX_EPOCH + Duration::from_secs(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600),
            call_id: "abc@127.0.0.1".into(),
            cseq: 7,
            transport: Transport::Tcp,
            source: "127.0.0.1:40000".parse().unwrap(),
        };
        locations.put("+815012345678", binding.clone()).unwrap();
        assert_eq!(locations.bindings("+815012345678").unwrap(), vec![binding.clone()]);
        locations.remove("+815012345678", &binding.contact).unwrap();
        assert!(locations.bindings("+815012345678").unwrap().is_empty());
    }
}
