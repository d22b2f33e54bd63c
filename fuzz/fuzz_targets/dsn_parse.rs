//! The DSN parser (RFC 3464 reports coming back from other servers): any message in, `None`
//! or a report out, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|message: &[u8]| {
    if let Some(report) = sipmta::dsn::parse(message) {
        assert!(!report.recipients.is_empty());
    }
});
