//! SMTP AUTH users and their salted password hashes.
//!
//! Hashes are PBKDF2-HMAC-SHA256 from ring (already in the tree for TLS), stored in the
//! self-describing form `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>` (base64, no padding), so
//! the iteration count can be raised later without breaking existing users. Verification is
//! constant-time (ring's `pbkdf2::verify`). Plain passwords never reach the store or the log.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, pbkdf2};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::now;

/// Iterations for new hashes. Each AUTH costs one derivation, so this trades brute-force cost
/// against CPU per login; it is recorded in every hash.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;
/// A well-formed hash of no password anyone knows, checked for unknown users so a failed login
/// costs the same whether the user exists or not.
pub(crate) const DUMMY_HASH: &str = "$pbkdf2-sha256$i=100000$c2lwbXRhLWR1bW15LXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const HASH_LEN: usize = digest::SHA256_OUTPUT_LEN;

/// A stored user record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user name as added (compared case-insensitively).
    pub name: String,
    /// The self-describing password hash.
    pub hash: String,
    /// When the user was created (Unix seconds).
    pub created: u64,
}

/// Normalise and check a user name: user names are usually addresses, compared without regard
/// to case, and must be printable so they can appear in logs and Received headers.
pub fn normalise_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(StoreError::InvalidUser(name.into(), "empty"));
    }
    if trimmed.len() > 256 {
        return Err(StoreError::InvalidUser(name.into(), "longer than 256 octets"));
    }
    if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::InvalidUser(name.into(), "contains spaces or control characters"));
    }
    Ok(trimmed.to_lowercase())
}

/// Hash a password with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new().fill(&mut salt).map_err(|_| StoreError::Task("the system random source failed".into()))?;
    Ok(hash_with(password, &salt, DEFAULT_ITERATIONS))
}

fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut out);
    format!("$pbkdf2-sha256$i={iterations}${}${}", B64.encode(salt), B64.encode(out))
}

/// Check a password against a stored hash. A malformed hash never matches.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Some((iterations, salt, expected)) = parse_hash(stored) else {
        return false;
    };
    pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &expected).is_ok()
}

fn parse_hash(stored: &str) -> Option<(NonZeroU32, Vec<u8>, Vec<u8>)> {
    let mut parts = stored.strip_prefix("$pbkdf2-sha256$")?.split('$');
    let iterations: u32 = parts.next()?.strip_prefix("i=")?.parse().ok()?;
    let salt = B64.decode(parts.next()?).ok()?;
    let hash = B64.decode(parts.next()?).ok()?;
    if parts.next().is_some() || hash.len() != HASH_LEN {
        return None;
    }
    Some((NonZeroU32::new(iterations)?, salt, hash))
}

impl UserRecord {
    /// A new record with a freshly hashed password.
    pub fn new(name: &str, password: &str) -> Result<UserRecord, StoreError> {
        Ok(UserRecord { name: normalise_name(name)?, hash: hash_password(password)?, created: now() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("s3cret").unwrap_or_default();
        let b = hash_password("s3cret").unwrap_or_default();
        assert_ne!(a, b, "two hashes of one password must differ by salt");
        assert!(a.starts_with("$pbkdf2-sha256$i=100000$"));
        assert!(verify_password(&a, "s3cret"));
        assert!(!verify_password(&a, "s3cret "));
        assert!(!verify_password(&a, ""));
    }

    #[test]
    fn known_vector_with_low_iterations() {
        let h = hash_with("password", b"salt", 1);
        assert!(verify_password(&h, "password"));
        // RFC 7914 §11 style check: PBKDF2-HMAC-SHA256("password", "salt", 1) starts 120fb6cf.
        let raw = B64.decode(h.rsplit('$').next().unwrap_or_default()).unwrap_or_default();
        assert_eq!(&raw[..4], &[0x12, 0x0f, 0xb6, 0xcf]);
    }

    #[test]
    fn malformed_hashes_never_match() {
        for bad in ["", "plain", "$pbkdf2-sha256$i=0$AA$AA", "$pbkdf2-sha256$i=x$AA$AA", "$md5$x"] {
            assert!(!verify_password(bad, "anything"), "{bad}");
        }
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalise_name(" Alice@Example.COM ").ok().as_deref(), Some("alice@example.com"));
        assert!(normalise_name("").is_err());
        assert!(normalise_name("a b").is_err());
        assert!(normalise_name("a\u{7}b").is_err());
    }
}
