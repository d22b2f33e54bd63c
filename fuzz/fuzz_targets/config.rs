//! The config loader (with its error-recovery rounds) on any text: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match sipmta::config::Config::from_toml(text) {
            Ok(config) => assert!(config.validate().is_empty()),
            Err(errors) => assert!(!errors.errors().is_empty()),
        }
    }
});
