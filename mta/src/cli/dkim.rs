//! `sipmta dkim keygen|record`: make DKIM signing keys and print the DNS records that publish
//! them (RFC 6376 §3.6.1, RFC 8463 §4.2).
//!
//! `keygen` makes RSA-2048 keys by default: every DKIM verifier checks RSA, while Ed25519
//! (RFC 8463) is still not checked by all of them, so an Ed25519 signature alone may count for
//! nothing. RSA keys come from `openssl genpkey` (ring, our crypto library, cannot make them);
//! `--algorithm ed25519` needs no other program. Neither command reads the config: a key is
//! usually made before the config names it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};

use crate::dkim::{self, Algorithm};

/// DKIM key management.
#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Make a new private key and print the DNS record and config lines for it.
    ///
    /// The key is written as PKCS#8 PEM with mode 0600; an existing file is never replaced.
    /// RSA-2048 (the default) needs the openssl program; Ed25519 does not, but not every
    /// receiver checks Ed25519 signatures yet, so use it next to an RSA key.
    Keygen {
        /// The signing domain (d=), e.g. example.com.
        domain: String,
        /// The selector (s=), e.g. s2026; the record goes to SELECTOR._domainkey.DOMAIN.
        selector: String,
        /// Key type.
        #[arg(long, value_enum, default_value_t = KeyType::Rsa)]
        algorithm: KeyType,
        /// Where to write the key. Default: DOMAIN.SELECTOR.pem in the current directory.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the DNS record (zone file syntax) for an existing private key.
    ///
    /// Long values are split into several quoted strings of at most 255 octets, which DNS
    /// joins without spaces (RFC 6376 §3.6.2.2); a web form wants them joined.
    Record {
        /// The PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The signing domain (d=).
        domain: String,
        /// The selector (s=).
        selector: String,
    },
}

/// The key types `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// RSA, 2048 bits (rsa-sha256).
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463).
    Ed25519,
}

pub fn run(cmd: DkimCommand) -> Result<()> {
    execute(cmd, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, printing to `out`.
pub(super) fn execute(cmd: DkimCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        DkimCommand::Keygen { domain, selector, algorithm, out: file } => {
            check(&domain, &selector)?;
            let path = file.unwrap_or_else(|| PathBuf::from(format!("{domain}.{selector}.pem")));
            let algorithm = match algorithm {
                KeyType::Rsa => Algorithm::Rsa,
                KeyType::Ed25519 => Algorithm::Ed25519,
            };
            // Refuse early, before openssl spends a second on a key that cannot be written.
            if path.exists() {
                bail!("{} already exists; a key in use must not be replaced (choose another --out)", path.display());
            }
            let pem = dkim::generate(algorithm)?;
            dkim::write_new(&path, &pem).with_context(|| format!("writing {}", path.display()))?;
            let key = dkim::load_key(&path)?;
            let shown = std::path::absolute(&path).unwrap_or(path);
            writeln!(out, "wrote a new {algorithm} key to {} (mode 0600)", shown.display())?;
            writeln!(out)?;
            writeln!(out, "1. Publish this DNS record:")?;
            writeln!(out)?;
            writeln!(out, "{}", dkim::zone_line(&domain, &selector, &key.record()))?;
            writeln!(out)?;
            writeln!(out, "2. Then add the key to the config (sipmta.toml) and restart:")?;
            writeln!(out)?;
            writeln!(out, "[[dkim.keys]]")?;
            writeln!(out, "domain = {}", toml::Value::from(domain.as_str()))?;
            writeln!(out, "selector = {}", toml::Value::from(selector.as_str()))?;
            writeln!(out, "key = {}", toml::Value::from(shown.display().to_string()))?;
            if algorithm == Algorithm::Ed25519 {
                writeln!(out)?;
                writeln!(out, "Not every receiver checks Ed25519 signatures yet: give {domain} an RSA key as well (RFC 8463 §3).")?;
            }
        }
        DkimCommand::Record { key, domain, selector } => {
            check(&domain, &selector)?;
            let record = dkim::load_key(&key)?.record();
            writeln!(out, "{}", dkim::zone_line(&domain, &selector, &record))?;
        }
    }
    Ok(())
}

fn check(domain: &str, selector: &str) -> Result<()> {
    dkim::check_domain(domain).map_err(|why| anyhow::anyhow!("bad domain: {why}"))?;
    dkim::check_selector(selector).map_err(|why| anyhow::anyhow!("bad selector: {why}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::dkim::Signers;
    use crate::dkim::tests::{txts, verify};

    fn keygen(dir: &Path, algorithm: KeyType, file: &str) -> Result<String> {
        let cmd = DkimCommand::Keygen { domain: "a.example".into(), selector: "s2026".into(), algorithm, out: Some(dir.join(file)) };
        let mut out = Vec::new();
        execute(cmd, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// The `(name, value)` of the zone line in `text`, strings joined as DNS joins them.
    fn record(text: &str) -> (String, String) {
        let line = text.lines().find(|l| l.contains(" IN TXT ")).unwrap();
        let (name, strings) = line.split_once(" IN TXT ").unwrap();
        (name.to_owned(), strings.trim_matches('"').split("\" \"").collect())
    }

    /// What `keygen` printed, followed as its reader would: publish the record, paste the
    /// config lines, start signing. The receiver's verifier must accept the signature.
    fn follow(text: &str) {
        let snippet = &text[text.find("[[dkim.keys]]").unwrap()..];
        let snippet = snippet.split("\n\n").next().unwrap();
        let config = Config::from_toml(snippet).unwrap();
        let signers = Signers::new(&config.dkim).unwrap();
        let message = "From: taro@a.example\r\nTo: b@b.example\r\nSubject: hi\r\nX-Fastpath-Tel: 050-1234-5678\r\n\r\nhello\r\n";
        let signed = format!("{}{message}", signers.sign(message.as_bytes()).unwrap().unwrap());
        assert_eq!(verify(signed.as_bytes(), &txts(&[record(text)])), vec![mail_auth::DkimResult::Pass], "{text}");
    }

    #[test]
    fn an_ed25519_key_from_keygen_signs_mail_that_verifies_against_the_printed_record() {
        let dir = tempfile::tempdir().unwrap();
        let text = keygen(dir.path(), KeyType::Ed25519, "ed.pem").unwrap();
        let (name, value) = record(&text);
        assert_eq!(name, "s2026._domainkey.a.example.");
        assert!(value.starts_with("v=DKIM1; k=ed25519; p="), "{value}");
        assert!(text.contains("give a.example an RSA key as well"), "{text}");
        follow(&text);
    }

    #[test]
    fn an_rsa_key_from_keygen_signs_mail_that_verifies_against_the_printed_record() {
        let dir = tempfile::tempdir().unwrap();
        let text = keygen(dir.path(), KeyType::Rsa, "rsa.pem").unwrap();
        assert!(record(&text).1.starts_with("v=DKIM1; k=rsa; p=MIIB"), "{text}");
        follow(&text);
        // `record` prints the same line for the file keygen wrote.
        let mut out = Vec::new();
        let cmd = DkimCommand::Record { key: dir.path().join("rsa.pem"), domain: "a.example".into(), selector: "s2026".into() };
        execute(cmd, &mut out).unwrap();
        assert_eq!(record(&String::from_utf8(out).unwrap()), record(&text));
    }

    #[test]
    fn keygen_never_replaces_a_file_and_checks_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pem"), "in use").unwrap();
        let err = keygen(dir.path(), KeyType::Ed25519, "k.pem").unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("k.pem")).unwrap(), "in use");

        let mut out = Vec::new();
        let bad = |domain: &str, selector: &str| DkimCommand::Keygen {
            domain: domain.into(),
            selector: selector.into(),
            algorithm: KeyType::Ed25519,
            out: Some(dir.path().join("new.pem")),
        };
        assert!(execute(bad("a.example", "s 1"), &mut out).unwrap_err().to_string().contains("bad selector"));
        assert!(execute(bad("a..example", "s"), &mut out).unwrap_err().to_string().contains("bad domain"));
        assert!(!dir.path().join("new.pem").exists());
    }

    #[test]
    fn record_names_a_bad_key_file() {
        let cmd = DkimCommand::Record { key: "/no/such.pem".into(), domain: "a.example".into(), selector: "s".into() };
        let err = format!("{:#}", execute(cmd, &mut Vec::new()).unwrap_err());
        assert!(err.contains("cannot read key file /no/such.pem"), "{err}");
    }
}
