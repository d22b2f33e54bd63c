//! The `[registrar]` section: the built-in SIP registrar and proxy (issue 6), so that sipmta
//! sites and their registrar run on one machine with no other software. Kamailio takes its
//! place in production (`enabled = false`, and `fastpath.proxy` names Kamailio).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Files, Span};

/// Registrar settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registrar {
    /// Run the built-in registrar/proxy. Default: true.
    pub enabled: bool,
    /// UDP and TCP address. Default `"127.0.0.1:5060"`.
    pub listen: SocketAddr,
    /// The SIP domain served (and digest realm). Default: `fastpath.domain`.
    pub domain: Option<String>,
    /// Who may register which number, with digest authentication (RFC 3261 §22). Empty means
    /// anyone may register any number, which is only allowed on a loopback address.
    pub users: Vec<RegistrarUser>,
    /// Shortest registration accepted (shorter ones get `423`). Default `"1m"`.
    pub min_expires: Span,
    /// Longest registration granted. Default `"1h"`.
    pub max_expires: Span,
    /// Granted when a REGISTER names none. Default `"10m"`.
    pub default_expires: Span,
}

/// A number that may register, and its digest password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarUser {
    /// National (`050-1234-5678`) or E.164.
    pub number: String,
    /// The password (prefer `password_file`).
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl RegistrarUser {
    /// The password, read from its file when configured so.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(file)) => Ok(Some(std::fs::read_to_string(file)?.lines().next().unwrap_or_default().to_owned())),
            (None, None) => Ok(None),
        }
    }
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            domain: None,
            users: Vec::new(),
            min_expires: Span(Duration::from_secs(60)),
            max_expires: Span(Duration::from_secs(3600)),
            default_expires: Span(Duration::from_secs(600)),
        }
    }
}

impl Registrar {
    /// Add this section's problems to `errors`.
    pub fn validate(&self, errors: &mut Vec<String>, files: Files) {
        if !self.enabled {
            return;
        }
        if self.listen.ip().is_unspecified() {
            errors.push(format!(
                "registrar.listen: {} is a wildcard; give the address peers reach (it goes into Via and Record-Route)",
                self.listen
            ));
        }
        if self.users.is_empty() && !self.listen.ip().to_canonical().is_loopback() {
            errors.push(format!(
                "registrar.users: required when registrar.listen ({}) is not a loopback address; otherwise anyone could register a number and receive its mail",
                self.listen
            ));
        }
        if let Some(d) = &self.domain
            && !super::is_domain(d)
        {
            errors.push(format!("registrar.domain: {d:?} is not a domain name"));
        }
        for u in &self.users {
            if u.password.is_some() && u.password_file.is_some() {
                errors.push(format!("registrar.users {:?}: set password or password_file, not both", u.number));
            }
            if u.password.is_none() && u.password_file.is_none() {
                errors.push(format!("registrar.users {:?}: set password or password_file", u.number));
            }
            if let Some(file) = &u.password_file
                && files == Files::Read
                && let Err(e) = std::fs::metadata(file)
            {
                errors.push(format!("registrar.users {:?}: cannot read password_file {}: {e}", u.number, file.display()));
            }
        }
        let (min, max, default) = (self.min_expires.0, self.max_expires.0, self.default_expires.0);
        if min < Duration::from_secs(1) || min > max || default < min || default > max {
            errors.push("registrar: need 1s <= min_expires <= default_expires <= max_expires".into());
        }
    }
}
