//! The fast-path token (`a=fp-token:` in the SDP offer, `FP/1 HELLO <token>` on the stream).
//!
//! DESIGN.md "Fast path": 128 random bits from the system CSPRNG, written as base64url without
//! padding (RFC 4648 §5), so always 22 characters. The offerer generates it; the SDP answer echoes
//! it; the active side of the TCP stream presents it and the passive side checks it, so a stranger
//! who connects to an advertised port cannot take over the session.
//!
//! Invariants: a [`Token`] always holds exactly 16 octets; parsing accepts only the canonical
//! 22-character form (no padding, no non-zero trailing bits), so `parse(t.to_string()) == t`;
//! equality is constant time; `Debug` shows only a prefix so tokens do not end up in logs whole.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 128 bits, base64url without padding: 22 characters.
pub const TOKEN_CHARS: usize = 22;

/// A fast-path token: 128 random bits.
#[derive(Clone, Copy, Eq)]
pub struct Token([u8; 16]);

/// The text is not a token: not exactly 22 base64url characters encoding 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a fast-path token (128 bits as base64url without padding, RFC 4648 §5)")]
pub struct BadToken;

/// The system random number generator failed; no token can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngError;

impl Token {
    /// A fresh token from the operating system's CSPRNG (`ring::rand::SystemRandom`).
    pub fn generate() -> Result<Token, RngError> {
        let rng = ring::rand::SystemRandom::new();
        let bytes: [u8; 16] = ring::rand::generate(&rng).map_err(|_| RngError)?.expose();
        Ok(Token(bytes))
    }

    /// A token with the given bits (tests, and peers that stored one).
    pub const fn from_bytes(bytes: [u8; 16]) -> Token {
        Token(bytes)
    }

    /// The 16 octets.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the canonical 22-character base64url form.
    pub fn parse(text: &str) -> Result<Token, BadToken> {
        // Check the length first: it bounds the work and rejects padded forms ("...==").
        if text.len() != TOKEN_CHARS {
            return Err(BadToken);
        }
        let mut out = [0u8; 16];
        // The engine rejects non-zero trailing bits, so only one spelling decodes to a value.
        match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(16) => Ok(Token(out)),
            _ => Err(BadToken),
        }
    }

    /// Constant-time comparison: the time taken does not depend on where the tokens differ.
    pub fn ct_eq(&self, other: &Token) -> bool {
        let diff = self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box keeps the optimiser from turning the fold into an early-exit comparison.
        std::hint::black_box(diff) == 0
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.ct_eq(other)
    }
}

impl FromStr for Token {
    type Err = BadToken;
    fn from_str(text: &str) -> Result<Token, BadToken> {
        Token::parse(text)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; TOKEN_CHARS];
        match URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf) {
            Ok(TOKEN_CHARS) => f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?),
            _ => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Token {
    /// Only the first four characters: enough to tell tokens apart in a log, useless to a reader.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        write!(f, "Token({}…)", text.get(..4).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_22_chars_and_parse_back() {
        let a = Token::generate().expect("rng");
        let b = Token::generate().expect("rng");
        assert_ne!(a, b, "two draws of 128 bits collided");
        let text = a.to_string();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{text}");
        assert_eq!(Token::parse(&text), Ok(a));
    }

    #[test]
    fn known_value() {
        let t = Token::from_bytes([0xff; 16]);
        assert_eq!(t.to_string(), "_____________________w");
        assert_eq!(Token::parse("AAAAAAAAAAAAAAAAAAAAAA"), Ok(Token::from_bytes([0; 16])));
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in [
            "",
            "AAAAAAAAAAAAAAAAAAAAA",    // 21
            "AAAAAAAAAAAAAAAAAAAAAAA",  // 23
            "AAAAAAAAAAAAAAAAAAAAAA==", // padded
            "AAAAAAAAAAAAAAAAAAAAA+",   // standard alphabet
            "AAAAAAAAAAAAAAAAAAAAA/",
            "AAAAAAAAAAAAAAAAAAAAAB", // non-zero trailing bits
            "AAAAAAAAAAAAAAAAAAAA A",
            "ÄAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(Token::parse(bad), Err(BadToken), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_a_prefix_only() {
        let t = Token::from_bytes([0xff; 16]);
        assert_eq!(format!("{t:?}"), "Token(____…)");
    }

    #[test]
    fn ct_eq_compares_every_octet() {
        let a = Token::from_bytes([7; 16]);
        for i in 0..16 {
            let mut bytes = [7; 16];
            bytes[i] ^= 1;
            assert!(!a.ct_eq(&Token::from_bytes(bytes)));
        }
        assert!(a.ct_eq(&Token::from_bytes([7; 16])));
    }
}
