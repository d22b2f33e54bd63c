//! The `[dkim]` section: which domains we sign outgoing mail for, with which keys, and which
//! header fields the signatures cover (RFC 6376 DKIM; RFC 8463 Ed25519 keys).
//!
//! This file holds the settings only. Keys are read and checked by [`crate::dkim`], which
//! [`Dkim::validate`] calls so that `sipmta check-config` reports an unreadable or unusable key
//! file together with every other error.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Files;
use crate::dkim::{self, Algorithm};

/// DKIM signing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    /// Header fields the signatures cover, in any case. `From` is required (RFC 6376 §5.4) and
    /// is always signed once more than it occurs, so a second From cannot be added later
    /// (RFC 6376 §8.15). A listed field that a message lacks is signed as absent, so it cannot
    /// be added later either: `X-Fastpath-Tel` is trusted only when a signature covers it.
    pub headers: Vec<String>,
    /// The signing keys. A domain has one key, or one RSA and one Ed25519 key: RFC 8463 §3
    /// expects Ed25519 signatures to travel next to RSA ones while verifiers catch up.
    pub keys: Vec<DkimKey>,
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    /// The signing domain (`d=`). Mail whose From address is in this domain (in any case) is
    /// signed with this key, and so is mail from a subdomain that has no key of its own
    /// (`MAILER-DAEMON@mx.example.jp` for the DSNs of host `mx.example.jp`).
    pub domain: String,
    /// The selector (`s=`): the public key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 RSA. `sipmta dkim keygen` makes one.
    pub key: PathBuf,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim { headers: DEFAULT_HEADERS.iter().map(|&h| h.to_owned()).collect(), keys: Vec::new() }
    }
}

/// The fields RFC 6376 §5.4.1 recommends signing that mail passing through here carries, plus
/// the ones whose meaning a forger could change: `X-Fastpath-Tel` (a number that routing and
/// learning trust) and `Disposition-Notification-To` (where receipts go).
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "X-Fastpath-Tel",
    "Disposition-Notification-To",
];

impl Dkim {
    /// Add this section's problems to `errors`; each names the key it is about. With
    /// [`Files::Read`] it reads every key file, so an unusable key is found by `check-config`
    /// rather than by the first message.
    pub fn validate(&self, errors: &mut Vec<String>, files: Files) {
        if !self.headers.iter().any(|h| h.eq_ignore_ascii_case("From")) {
            errors.push("dkim.headers: must include From (RFC 6376 §5.4)".into());
        }
        for h in &self.headers {
            if !dkim::is_field_name(h) {
                errors.push(format!("dkim.headers: {h:?} is not a header field name"));
            }
        }
        let mut seen: Vec<(String, Algorithm, &DkimKey)> = Vec::new();
        for k in &self.keys {
            let name = format!("dkim.keys {:?} (selector {:?})", k.domain, k.selector);
            if let Err(why) = dkim::check_domain(&k.domain) {
                errors.push(format!("{name}: bad domain: {why}"));
            }
            if let Err(why) = dkim::check_selector(&k.selector) {
                errors.push(format!("{name}: bad selector: {why}"));
            }
            if files == Files::Skip {
                continue;
            }
            let algorithm = match dkim::load_key(&k.key) {
                Ok(key) => key.algorithm(),
                Err(e) => {
                    errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let domain = k.domain.to_lowercase();
            if let Some((_, _, other)) = seen.iter().find(|(d, a, _)| *d == domain && *a == algorithm) {
                errors.push(format!(
                    "{name}: duplicate domain: selector {:?} already has an {algorithm} key for it (a domain takes at most one RSA and one Ed25519 key)",
                    other.selector
                ));
            }
            seen.push((domain, algorithm, k));
        }
    }
}
