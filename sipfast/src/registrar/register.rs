//! REGISTER (RFC 3261 §10.3): digest authentication against the configured users, then the
//! bindings of the address of record added, refreshed, removed or listed.
//!
//! The order is the RFC's: authenticate (§10.3 step 3, `401` with a challenge, `stale=true`
//! for an expired nonce), authorise (step 4: the digest user must be the AOR's own, else
//! `403`), check the AOR (step 5: with configured users, anyone else is `404`), then process
//! the Contacts (steps 6-8). The AOR is the To user normalised to E.164 like the reference
//! config's `route[REGISTRAR]`, so `05012345678` and `+815012345678` are one AOR.
//!
//! Lifetimes: a Contact's `expires` parameter, else the `Expires` header, else the default;
//! above the maximum it is lowered, below the minimum (and not 0) the whole request gets
//! `423 Interval Too Brief` with `Min-Expires` (§10.3 step 7). The `200` lists every live
//! binding of the AOR with the seconds it has left (§10.3 step 8).

use rsipstack::sip::headers::auth::{Algorithm, Qop, Scheme};
use rsipstack::sip::prelude::*;
use rsipstack::sip::typed::{Contact, WwwAuthenticate};
use rsipstack::sip::{self as rsip, Header, Method, Request};
use std::time::Duration;
use tracing::{error, info};

use super::core::{Core, Now, ServerKey};
use super::digest::{Credentials, NonceState};
use super::locations::Binding;
use super::message;
use super::number::normalize_number;

/// Why a REGISTER is answered with something other than `200`.
struct Refusal {
    code: u16,
    reason: Option<&'static str>,
    extra: Vec<Header>,
}

impl Refusal {
    fn new(code: u16) -> Self {
        Refusal { code, reason: None, extra: Vec::new() }
    }
}

impl Core {
    /// Answers the REGISTER of server transaction `key`.
    pub(crate) fn register(&mut self, key: &ServerKey, now: Now) {
        let Some(server) = self.servers.get(key) else { return };
        let (req, source) = (server.request.clone(), server.source);
        match self.try_register(&req, source, now) {
            Ok(contacts) => self.respond(key, 200, None, contacts, now),
            Err(refusal) => self.respond(key, refusal.code, refusal.reason, refusal.extra, now),
        }
    }

    fn try_register(&self, req: &Request, source: message::Peer, now: Now) -> Result<Vec<Header>, Refusal> {
        let to_uri = req.to_header().ok().and_then(|to| to.uri().ok()).ok_or_else(|| Refusal::new(400))?;
        let user = to_uri.user().ok_or_else(|| Refusal::new(404))?;
        let aor = normalize_number(user, &self.settings.country_code);

        // Steps 3-5: who may touch this AOR.
        if !self.settings.users.is_empty() {
            let password = self.settings.users.get(&aor).ok_or_else(|| Refusal::new(404))?;
            if let Some(password) = password {
                self.authenticate(req, &aor, password, now)?;
            }
        }

        // Steps 6-7: the Contacts and their lifetimes.
        let mut contacts = Vec::new();
        for header in req.headers.iter() {
            if let Header::Contact(c) = header {
                contacts.extend(Contact::parse_header_list(c.value()).map_err(|_| Refusal::new(400))?);
            }
        }
        let header_expires = req.expires_header().and_then(|e| e.value().trim().parse::<u32>().ok());
        let call_id = message::call_id(&req.headers).ok_or_else(|| Refusal::new(400))?;
        let (cseq, _) = message::cseq(&req.headers).ok_or_else(|| Refusal::new(400))?;
        let existing = self.locations.bindings(&aor).map_err(|e| store_error(&aor, &e))?;

        let wildcard = contacts.iter().any(|c| matches!(&c.uri.scheme, Some(rsip::Scheme::Other(s)) if s == "*"));
        if wildcard {
            // `Contact: *` only with `Expires: 0` and alone (§10.2.2, §10.3 step 6).
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(Refusal { code: 400, reason: Some("Invalid Wildcard"), extra: Vec::new() });
            }
            for binding in &existing {
                if binding.call_id != call_id || binding.cseq < cseq {
                    self.locations.remove(&aor, &binding.contact).map_err(|e| store_error(&aor, &e))?;
                }
            }
            info!(%aor, "all bindings removed");
            return self.binding_list(&aor, now);
        }

        let mut changes = Vec::new();
        for contact in &contacts {
            let asked = contact.expires().or(header_expires).unwrap_or(self.settings.default_expires);
            if asked != 0 && asked < self.settings.min_expires {
                let min = Header::MinExpires(rsip::MinExpires::new(self.settings.min_expires.to_string()));
                return Err(Refusal { code: 423, reason: None, extra: vec![min] });
            }
            let uri = contact.uri.to_string();
            // rsip accepts a URI with unescaped spaces in its user part; as the Request-URI of
            // a forwarded request it would break the request line. SP and CTLs are not in the
            // SIP-URI grammar (RFC 3261 §25.1; they are sent %-escaped).
            if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Refusal { code: 400, reason: Some("Invalid Contact"), extra: Vec::new() });
            }
            // Step 7: a REGISTER older than the one that made the binding changes nothing.
            if existing.iter().any(|b| b.contact == uri && b.call_id == call_id && b.cseq >= cseq) {
                return Err(Refusal { code: 500, reason: Some("Out Of Order REGISTER"), extra: Vec::new() });
            }
            changes.push((uri, asked.min(self.settings.max_expires)));
        }
        for (contact, expires) in changes {
            if expires == 0 {
                self.locations.remove(&aor, &contact).map_err(|e| store_error(&aor, &e))?;
                info!(%aor, %contact, "binding removed");
            } else {
                let binding = Binding {
                    contact: contact.clone(),
                    expires_at: now.wall + Duration::from_secs(expires.into()),
                    call_id: call_id.clone(),
                    cseq,
                    transport: source.transport,
                    source: source.addr,
                };
                self.locations.put(&aor, binding).map_err(|e| store_error(&aor, &e))?;
                info!(%aor, %contact, expires, source = %source, "binding saved");
            }
        }
        self.binding_list(&aor, now)
    }

    /// Step 3 for a user with a password: credentials for our realm that check, or a
    /// challenge.
    fn authenticate(&self, req: &Request, aor: &str, password: &str, now: Now) -> Result<(), Refusal> {
        let realm = &self.settings.domain;
        let credentials = req.headers.iter().find_map(|h| match h {
            Header::Authorization(a) => Credentials::parse(a.value()).filter(|c| c.realm == *realm),
            _ => None,
        });
        let Some(credentials) = credentials else { return Err(self.challenge(false, now)) };
        match self.nonces.check(&credentials.nonce, now.wall) {
            NonceState::Unknown => return Err(self.challenge(false, now)),
            NonceState::Stale => return Err(self.challenge(true, now)),
            NonceState::Fresh => {}
        }
        // Step 4: the credentials must be the AOR's own.
        if normalize_number(&credentials.username, &self.settings.country_code) != aor {
            return Err(Refusal::new(403));
        }
        if !credentials.verify(password, &Method::Register) {
            info!(%aor, "REGISTER with a wrong password");
            return Err(self.challenge(false, now));
        }
        Ok(())
    }

    /// `401` with a fresh Digest challenge (RFC 2617 §3.2.1): MD5, `qop="auth"`.
    fn challenge(&self, stale: bool, now: Now) -> Refusal {
        let challenge = WwwAuthenticate {
            scheme: Scheme::Digest,
            realm: self.settings.domain.clone(),
            domain: None,
            nonce: self.nonces.issue(now.wall),
            opaque: None,
            stale: stale.then(|| "true".to_string()),
            algorithm: Some(Algorithm::Md5),
            qop: Some(Qop::Auth),
            charset: None,
        };
        Refusal { code: 401, reason: None, extra: vec![challenge.into()] }
    }

    /// The Contact headers of a `200`: every live binding with the seconds it has left.
    fn binding_list(&self, aor: &str, now: Now) -> Result<Vec<Header>, Refusal> {
        let bindings = self.locations.bindings(aor).map_err(|e| store_error(aor, &e))?;
        Ok(bindings
            .iter()
            .filter(|b| b.is_live(now.wall))
            .map(|b| Header::Contact(rsip::Contact::new(format!("<{}>;expires={}", b.contact, b.remaining_secs(now.wall)))))
            .collect())
    }
}

fn store_error(aor: &str, e: &super::locations::LocationsError) -> Refusal {
    error!(%aor, error = %e, "location store failed");
    Refusal::new(500)
}
