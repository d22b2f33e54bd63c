//! The `[routing]` section: how the routing rules read numbers and messages
//! (DESIGN.md "Routing rules"). The tables themselves are data, kept in the store and edited
//! with `sipmta route|keyword|prefix`; only what is site policy lives here.

use serde::{Deserialize, Serialize};

use super::ByteSize;

/// Routing rule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// The country calling code (without `+`) that national numbers such as `050-1234-5678`
    /// belong to; they are stored and dialled in E.164 (`+815012345678`). Default `"81"`.
    pub country_code: String,
    /// How much of a message (headers and decoded text parts) the rules scan for numbers and
    /// keywords when the envelope alone does not decide. Default `"256KiB"`.
    pub scan_limit: ByteSize,
}

impl Default for Routing {
    fn default() -> Self {
        Routing { country_code: "81".into(), scan_limit: ByteSize(256 << 10) }
    }
}

impl Routing {
    /// Add this section's problems to `errors`.
    pub fn validate(&self, errors: &mut Vec<String>) {
        let cc = &self.country_code;
        // E.164 country codes have one to three digits and never start with 0 (ITU-T E.164 §6).
        if !(1..=3).contains(&cc.len()) || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0') {
            errors.push(format!("routing.country_code: {cc:?} is not a country calling code (1 to 3 digits without +, e.g. \"81\")"));
        }
    }
}
