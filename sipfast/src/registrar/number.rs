//! Normalisation of telephone-number user parts to E.164, so that `050-1234-5678`,
//! `05012345678` and `+815012345678` all name one address of record.
//!
//! This is the `route[E164]` of the reference Kamailio configuration
//! (`tests/kamailio/kamailio-test.cfg`), with the country code configurable:
//! 1. RFC 3966 §5.1.1 visual separators (`-`, `.`, `(`, `)`) are dropped from a user part that
//!    is a telephone number (`+`? digit, then digits and separators);
//! 2. a national number (a trunk prefix `0`, a non-zero digit, then 8 or 9 more digits: the
//!    Japanese 10- and 11-digit forms) gets the trunk prefix replaced by `+<country code>`.
//!
//! Anything else (a name, a short code, an already international number) is returned as it is.

/// The user part `user` in E.164 form when it is a telephone number, else unchanged; see the
/// module docs. `country_code` is the digits without `+` (`81` for Japan).
pub fn normalize_number(user: &str, country_code: &str) -> String {
    let stripped = if looks_like_number(user) {
        user.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')')).collect::<String>()
    } else {
        return user.to_string();
    };
    let bytes = stripped.as_bytes();
    let national = matches!(bytes.len(), 10 | 11)
        && bytes[0] == b'0'
        && bytes[1] != b'0'
        && bytes.iter().all(u8::is_ascii_digit)
        && !country_code.is_empty();
    if national { format!("+{country_code}{}", &stripped[1..]) } else { stripped }
}

/// `^\+?[0-9][-0-9.()]*$`, the reference config's test for "this user part is a number".
fn looks_like_number(user: &str) -> bool {
    let digits = user.strip_prefix('+').unwrap_or(user);
    let mut chars = digits.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_digit()) && chars.all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '(' | ')'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::normalize_number;

    #[test]
    fn national_forms_become_e164() {
        for form in ["05012345678", "050-1234-5678", "050.1234.5678", "050(1234)5678", "+815012345678"] {
            assert_eq!(normalize_number(form, "81"), "+815012345678", "{form}");
        }
        // A 10-digit fixed-line number (03-1234-5678).
        assert_eq!(normalize_number("03-1234-5678", "81"), "+81312345678");
        assert_eq!(normalize_number("0312345678", "44"), "+44312345678");
    }

    #[test]
    fn other_users_are_left_alone() {
        // "(050)..." does not start like a number in the reference config's test either.
        for user in ["(050)1234-5678", "alice", "+1-555-0100", "110", "0012345678901", "00312345678", "050123456", "sip-user", ""] {
            let expected = if user == "+1-555-0100" { "+15550100" } else { user };
            assert_eq!(normalize_number(user, "81"), expected, "{user}");
        }
    }

    #[test]
    fn no_country_code_keeps_national_numbers() {
        assert_eq!(normalize_number("050-1234-5678", ""), "05012345678");
    }
}
