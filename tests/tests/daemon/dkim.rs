//! `sipmta dkim keygen` as an operator runs it: a key file only its owner can read, a DNS
//! record, config lines that `check-config` accepts as printed, and a refusal to replace a key
//! in use. (Signing and verifying with such a key is proven in the mta crate's unit tests.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

fn sipmta(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(dir).env_remove("SIPMTA_CONFIG").env_remove("SIPMTA_LOG").output().unwrap()
}

/// The zone-file line in keygen's or record's output.
fn zone_line(out: &str) -> &str {
    out.lines().find(|l| l.contains("._domainkey.") && l.contains(" IN TXT ")).unwrap_or_else(|| panic!("{out}"))
}

/// The `[[dkim.keys]]` lines keygen printed.
fn snippet(out: &str) -> String {
    let start = out.find("[[dkim.keys]]").unwrap_or_else(|| panic!("{out}"));
    out[start..].split("\n\n").next().unwrap().to_owned() + "\n"
}

#[test]
fn keygen_output_is_a_record_and_config_that_check_config_accepts() {
    require("openssl");
    let dir = tempfile::tempdir().unwrap();
    let rsa = sipmta(dir.path(), &["dkim", "keygen", "example.com", "s2026"]);
    let ed = sipmta(dir.path(), &["dkim", "keygen", "example.com", "e2026", "--algorithm", "ed25519", "--out", "ed.pem"]);
    let (rsa_out, ed_out) = (transcript(&rsa), transcript(&ed));
    assert!(rsa.status.success(), "{rsa_out}");
    assert!(ed.status.success(), "{ed_out}");
    assert!(zone_line(&rsa_out).starts_with("s2026._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p=MIIB"), "{rsa_out}");
    assert!(zone_line(&ed_out).starts_with("e2026._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; p="), "{ed_out}");
    for file in ["example.com.s2026.pem", "ed.pem"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // Pasted as printed, both keys load; one domain may have an RSA and an Ed25519 key.
    let config = dir.path().join("sipmta.toml");
    std::fs::write(&config, snippet(&rsa_out) + &snippet(&ed_out)).unwrap();
    let check = sipmta(dir.path(), &["check-config", config.to_str().unwrap()]);
    let check_out = transcript(&check);
    assert!(check.status.success(), "{check_out}");
    assert!(check_out.contains("DKIM signing for example.com with selector s2026"), "{check_out}");
    assert!(check_out.contains("DKIM signing for example.com with selector e2026"), "{check_out}");

    // `record` prints the same line again from the key file.
    let record = sipmta(dir.path(), &["dkim", "record", "--key", "ed.pem", "example.com", "e2026"]);
    assert!(record.status.success(), "{}", transcript(&record));
    assert_eq!(zone_line(&transcript(&record)), zone_line(&ed_out));
}

#[test]
fn keygen_never_replaces_a_key_and_check_config_names_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = sipmta(dir.path(), &["dkim", "keygen", "example.com", "e2026", "--algorithm", "ed25519"]);
    assert!(first.status.success(), "{}", transcript(&first));
    let key = dir.path().join("example.com.e2026.pem");
    let before = std::fs::read(&key).unwrap();
    let again = sipmta(dir.path(), &["dkim", "keygen", "example.com", "e2026", "--algorithm", "ed25519"]);
    assert!(!again.status.success());
    assert!(transcript(&again).contains("already exists"), "{}", transcript(&again));
    assert_eq!(std::fs::read(&key).unwrap(), before);

    std::fs::write(&key, "damaged").unwrap();
    let config = dir.path().join("sipmta.toml");
    std::fs::write(&config, snippet(&transcript(&first))).unwrap();
    let check = sipmta(dir.path(), &["check-config", config.to_str().unwrap()]);
    let out = transcript(&check);
    assert!(!check.status.success(), "{out}");
    assert!(out.contains("dkim.keys \"example.com\" (selector \"e2026\"): key file"), "{out}");
}
