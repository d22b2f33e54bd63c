//! DKIM signing of outgoing mail (RFC 6376), with RSA and Ed25519 keys (RFC 8463).
//!
//! [`Signers`] is built once from the `[dkim]` section (every key read and checked then) and
//! shared. [`Signers::sign`] picks the keys by the domain of the message's RFC 5322 From
//! address and returns the `DKIM-Signature` header field(s) to put on top of the message.
//! Signing is done by mail-auth's `DkimSigner` with relaxed/relaxed canonicalisation (RFC 6376
//! §3.4.2, §3.4.4), which survives the whitespace and folding changes that relays make.
//!
//! Which header fields are covered, and how (mail-auth's behaviour, which we rely on):
//! - every instance present of each configured field is signed;
//! - a configured field the message lacks is still listed in `h=` (RFC 6376 §5.4.2, "signing
//!   a nonexistent field"), so adding it later breaks the signature. This is what lets
//!   another feature trust `X-Fastpath-Tel` only when a signature covers it: a forger can
//!   neither change nor add it;
//! - `From` is listed once more than it occurs (RFC 6376 §8.15), so a second From cannot be
//!   slipped in above the signed one.
//!
//! The caller signs the final bytes: after any header it adds that should be covered and
//! before the message leaves; trace fields (Received) added later are not covered and do not
//! matter. It should sign only mail it vouches for (authenticated submission, trusted
//! networks), never mail relayed for others.

mod key;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_parser::{HeaderName, MessageParser};

use crate::config;

pub use key::{Algorithm, PrivateKey, generate, load_key, write_new, zone_line};

use key::Inner;

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no usable key.
    #[error("key file {}: {reason}", path.display())]
    Parse {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A new key could not be made.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// Signing failed. It does not happen with a key that loaded and a message with a header
/// section; the caller sends the message unsigned and logs this.
#[derive(Debug, thiserror::Error)]
#[error("DKIM signing for {domain} (selector {selector}) failed: {source}")]
pub struct SignError {
    /// The signing domain.
    pub domain: String,
    /// The selector of the key that failed.
    pub selector: String,
    /// mail-auth's reason.
    pub source: mail_auth::Error,
}

/// The signing keys, by domain.
pub struct Signers {
    /// Lower-cased domain -> its signers (one, or an RSA and an Ed25519 one).
    by_domain: HashMap<String, Vec<Signer>>,
}

/// One configured key, ready to sign.
struct Signer {
    domain: String,
    selector: String,
    kind: Kind,
}

/// mail-auth's signer is generic over the key type.
enum Kind {
    Rsa(DkimSigner<mail_auth::common::crypto::RsaKey<mail_auth::common::crypto::Sha256>, Done>),
    Ed25519(DkimSigner<mail_auth::common::crypto::Ed25519Key, Done>),
}

impl fmt::Debug for Signers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<String> =
            self.by_domain.values().flatten().map(|s| format!("{} {} {}", s.domain, s.selector, s.algorithm())).collect();
        keys.sort();
        f.debug_struct("Signers").field("keys", &keys).finish()
    }
}

impl Signers {
    /// Read every configured key. [`config::Dkim::validate`] has reported the same problems
    /// when the config was loaded; this fails on the first.
    pub fn new(config: &config::Dkim) -> Result<Signers, KeyError> {
        let mut headers = config.headers.clone();
        // RFC 6376 §8.15: one more From than the message has (mail-auth lists a configured
        // field it did not find again as absent, so a second entry over-signs the first).
        if headers.iter().filter(|h| h.eq_ignore_ascii_case("From")).count() == 1 {
            headers.push("From".into());
        }
        let mut by_domain: HashMap<String, Vec<Signer>> = HashMap::new();
        for k in &config.keys {
            let key = load_key(&k.key)?;
            let kind = match key.inner {
                Inner::Rsa(rsa) => Kind::Rsa(relaxed(DkimSigner::from_key(rsa).domain(&k.domain).selector(&k.selector).headers(&headers))),
                Inner::Ed25519(ed) => {
                    Kind::Ed25519(relaxed(DkimSigner::from_key(ed).domain(&k.domain).selector(&k.selector).headers(&headers)))
                }
            };
            let signer = Signer { domain: k.domain.clone(), selector: k.selector.clone(), kind };
            by_domain.entry(k.domain.to_lowercase()).or_default().push(signer);
        }
        // RSA first: a verifier that stops at the first signature it can check should find
        // the one every verifier understands (RFC 8463 §3 expects both kinds side by side).
        for signers in by_domain.values_mut() {
            signers.sort_by_key(|s| s.algorithm() != Algorithm::Rsa);
        }
        Ok(Signers { by_domain })
    }

    /// Whether no key is configured (signing is off).
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Sign `message` (the complete message, CRLF line ends) if we hold a key for its From
    /// domain. `None`: no key for it, or no single From domain to choose by (no From field,
    /// several, or addresses in different domains; RFC 5322 §3.6 allows one From field).
    /// `Some(Ok(fields))`: the `DKIM-Signature` field(s), each ending in CRLF, to prepend.
    pub fn sign(&self, message: &[u8]) -> Option<Result<String, SignError>> {
        if self.is_empty() {
            return None;
        }
        let domain = from_domain(message)?;
        // A subdomain without a key of its own (our `MAILER-DAEMON@mx.example.jp`) is signed
        // by its closest parent's: `d=` may be a parent of the From domain (RFC 7489 §3.1.1
        // relaxed alignment).
        let signers = std::iter::successors(Some(domain.as_str()), |d| d.split_once('.').map(|(_, parent)| parent))
            .take_while(|d| d.contains('.'))
            .find_map(|d| self.by_domain.get(d))?;
        let mut fields = String::new();
        for s in signers {
            let signed = match &s.kind {
                Kind::Rsa(signer) => signer.sign(message),
                Kind::Ed25519(signer) => signer.sign(message),
            };
            match signed {
                Ok(signature) => fields.push_str(&signature.to_header()),
                Err(source) => return Some(Err(SignError { domain: s.domain.clone(), selector: s.selector.clone(), source })),
            }
        }
        Some(Ok(fields))
    }
}

impl Signer {
    fn algorithm(&self) -> Algorithm {
        match self.kind {
            Kind::Rsa(_) => Algorithm::Rsa,
            Kind::Ed25519(_) => Algorithm::Ed25519,
        }
    }
}

fn relaxed<T: mail_auth::common::crypto::SigningKey>(signer: DkimSigner<T, Done>) -> DkimSigner<T, Done> {
    signer.header_canonicalization(Canonicalization::Relaxed).body_canonicalization(Canonicalization::Relaxed)
}

/// The lower-cased domain of the message's From address(es), when there is exactly one From
/// field and all its addresses share one domain.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let mut froms = parsed.header_values(HeaderName::From);
    let from = froms.next()?;
    if froms.next().is_some() {
        return None;
    }
    let mut domain: Option<String> = None;
    for addr in from.as_address()?.iter() {
        let (_, d) = addr.address.as_deref()?.rsplit_once('@')?;
        let d = d.trim().to_lowercase();
        if d.is_empty() || domain.as_ref().is_some_and(|seen| *seen != d) {
            return None;
        }
        domain = Some(d);
    }
    domain
}

/// Check a selector: dot-separated labels of letters, digits and hyphens, not starting or
/// ending with a hyphen (RFC 6376 §3.1: `sub-domain *("." sub-domain)`, RFC 5321 §4.1.2).
pub fn check_selector(selector: &str) -> Result<(), String> {
    if selector.is_empty() {
        return Err("is empty".into());
    }
    for label in selector.split('.') {
        if label.is_empty() {
            return Err(format!("{selector:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{selector:?} has a label longer than 63 octets"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("{selector:?} may hold only letters, digits, hyphens and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{selector:?} has a label that starts or ends with a hyphen"));
        }
    }
    Ok(())
}

/// Check a signing domain: a domain name (`d=`, RFC 6376 §3.5), without the root dot.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.ends_with('.') {
        return Err(format!("{domain:?}: write it without the final dot"));
    }
    sipmta_store::routing::check_domain(domain).map_err(|why| format!("{domain:?} {why}"))
}

/// A header field name: printable US-ASCII other than `:` (RFC 5322 §3.6.8 `ftext`).
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}
