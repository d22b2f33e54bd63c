//! DKIM private keys: reading them from PEM files, making new ones, and the public key record
//! (RFC 6376 §3.6.1) that goes into DNS.
//!
//! Keys are RSA (RFC 6376 §3.3.1, `rsa-sha256`) or Ed25519 (RFC 8463). RSA keys must be 2048 to
//! 4096 bits: ring, which does the signing, refuses smaller ones, and RFC 8301 §3.2 asks for at
//! least 2048 bits anyway. ring cannot generate RSA keys, so [`generate`] asks `openssl` for
//! those; Ed25519 keys are made by ring itself.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::KeyError;

/// A DKIM signing algorithm's key type (RFC 6376 §3.6.1 `k=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSA, signing with `rsa-sha256` (RFC 6376 §3.3.1).
    Rsa,
    /// Ed25519, signing with `ed25519-sha256` (RFC 8463 §3).
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Rsa => "RSA",
            Algorithm::Ed25519 => "Ed25519",
        })
    }
}

/// A private key ready to sign with, and the public key that verifies it.
pub struct PrivateKey {
    pub(super) inner: Inner,
    /// The `p=` bytes: DER SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw 32-octet
    /// key for Ed25519 (RFC 8463 §4.2).
    public: Vec<u8>,
}

/// mail-auth's key types, one per algorithm.
pub(super) enum Inner {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret; the public key identifies it well enough.
        f.debug_struct("PrivateKey").field("algorithm", &self.algorithm()).field("public", &BASE64.encode(&self.public)).finish()
    }
}

impl PrivateKey {
    /// Read a PEM private key from a PEM document: PKCS#8 (RSA or Ed25519) or PKCS#1 RSA.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no PEM private key found ({e})"))?;
        match der {
            PrivateKeyDer::Pkcs1(der) => rsa(PrivateKeyDer::Pkcs1(der)),
            PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                if names_algorithm(bytes, ED25519_OID) {
                    // RFC 8410 keys from `openssl genpkey` are PKCS#8 v1, without the public
                    // key, which ring accepts only through its "maybe unchecked" reader.
                    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(bytes).map_err(|e| format!("bad Ed25519 key: {e}"))?;
                    let public = key.public_key();
                    Ok(PrivateKey { inner: Inner::Ed25519(key), public })
                } else if names_algorithm(bytes, RSA_OID) {
                    rsa(PrivateKeyDer::Pkcs8(der))
                } else {
                    Err("not an RSA or Ed25519 key (DKIM signs with no other kind)".into())
                }
            }
            PrivateKeyDer::Sec1(_) => Err("an EC key; DKIM signs with RSA or Ed25519 only".into()),
            _ => Err("an unknown kind of private key; use PKCS#8 (RSA or Ed25519) or PKCS#1 RSA".into()),
        }
    }

    /// The key type.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Rsa(_) => Algorithm::Rsa,
            Inner::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The TXT record value that publishes the public key (RFC 6376 §3.6.1), e.g.
    /// `v=DKIM1; k=ed25519; p=...`. `k=rsa` is the default but is written anyway, so the
    /// record says what it is.
    pub fn record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm().as_str(), BASE64.encode(&self.public))
    }
}

/// rsaEncryption (RFC 8017 §A.1), as DER: the OID tag, length and value.
const RSA_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519 (RFC 8410 §3), as DER.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Whether a PKCS#8 PrivateKeyInfo (RFC 5208 §5) names this algorithm. Its
/// AlgorithmIdentifier follows the outer header and the version, well within the first 32
/// octets; looking only there keeps key material that happens to hold the same octets from
/// deciding.
fn names_algorithm(pkcs8: &[u8], oid: &[u8]) -> bool {
    memchr::memmem::find(&pkcs8[..pkcs8.len().min(32)], oid).is_some()
}

fn rsa(der: PrivateKeyDer<'_>) -> Result<PrivateKey, String> {
    let key = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| format!("bad RSA key ({e}); RSA keys of 2048 to 4096 bits are supported (RFC 8301 §3.2)"))?;
    let public = spki_rsa(&key.public_key());
    Ok(PrivateKey { inner: Inner::Rsa(key), public })
}

/// Wrap a PKCS#1 RSAPublicKey (what ring gives) in the SubjectPublicKeyInfo that `p=` carries
/// for RSA (RFC 6376 §3.6.1; RFC 5280 §4.1.2.7; algorithm rsaEncryption with NULL parameters,
/// RFC 8017 §A.1).
fn spki_rsa(pkcs1: &[u8]) -> Vec<u8> {
    let mut algorithm = RSA_OID.to_vec();
    algorithm.extend_from_slice(&[0x05, 0x00]);
    let mut bits = vec![0x00]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut body = der(0x30, &algorithm);
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// One DER TLV (X.690 §8.1), with a definite length in short or long form.
fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// A PEM key file is a few KiB (RSA-4096 in PKCS#8 is 3.3 KiB); anything much larger is not one.
const MAX_KEY_FILE: u64 = 64 << 10;

/// Read a key file. Only a regular file of plausible size is read, so a mistyped path such as
/// `/dev/zero` or a FIFO cannot hang `check-config` or the daemon's start.
pub fn load_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let read_error = |source| KeyError::Read { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        let reason = if meta.is_file() { "is larger than 64KiB; not a PEM key".into() } else { "is not a regular file".into() };
        return Err(KeyError::Parse { path: path.to_owned(), reason });
    }
    let pem = std::fs::read(path).map_err(read_error)?;
    PrivateKey::from_pem(&pem).map_err(|reason| KeyError::Parse { path: path.to_owned(), reason })
}

/// Make a new private key and return it as a PKCS#8 PEM document.
///
/// Ed25519 keys come from ring. RSA-2048 keys come from `openssl genpkey` (ring cannot make
/// RSA keys); the result is read back here before it is returned, so a broken or missing
/// openssl is an error, never a bad key file.
pub fn generate(algorithm: Algorithm) -> Result<String, KeyError> {
    let pem = match algorithm {
        Algorithm::Ed25519 => return ed25519(),
        Algorithm::Rsa => openssl_rsa("openssl")?,
    };
    PrivateKey::from_pem(pem.as_bytes()).map_err(|e| KeyError::Generate(format!("the new key does not load: {e}")))?;
    Ok(pem)
}

/// ring writes PKCS#8 v2 (RFC 5958, with the public key), which OpenSSL 3.0 and other tools
/// cannot read; the key file is written in the RFC 8410 §7 v1 form that `openssl genpkey`
/// writes: version 0, the algorithm, and the 32-octet seed.
fn ed25519() -> Result<String, KeyError> {
    const V2_HEAD: [u8; 16] = [0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    const V1_HEAD: [u8; 16] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| KeyError::Generate(e.to_string()))?;
    let v2 = v2.as_ref();
    let seed = v2
        .strip_prefix(&V2_HEAD[..])
        .and_then(|rest| rest.get(..32))
        .ok_or_else(|| KeyError::Generate("ring's PKCS#8 layout changed".into()))?;
    let pem = pem_encode("PRIVATE KEY", &[&V1_HEAD[..], seed].concat());
    // The v1 file must be the same key as the pair ring made.
    let pair = Ed25519KeyPair::from_pkcs8(v2).map_err(|e| KeyError::Generate(e.to_string()))?;
    let key = PrivateKey::from_pem(pem.as_bytes()).map_err(|e| KeyError::Generate(format!("the new key does not load: {e}")))?;
    if key.public != ring::signature::KeyPair::public_key(&pair).as_ref() {
        return Err(KeyError::Generate("the written Ed25519 key does not match the generated one".into()));
    }
    Ok(pem)
}

fn openssl_rsa(program: &str) -> Result<String, KeyError> {
    let out = Command::new(program)
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            KeyError::Generate(format!(
                "cannot run openssl ({e}); RSA keys are made with `openssl genpkey` (install openssl), or use --algorithm ed25519"
            ))
        })?;
    if !out.status.success() {
        return Err(KeyError::Generate(format!(
            "openssl genpkey failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| KeyError::Generate("openssl wrote something that is not PEM".into()))
}

/// RFC 7468 §2 textual encoding: base64 in lines of 64 characters.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Write a new private key file, readable by its owner only; an existing file is never
/// replaced (`O_EXCL`), so a key in use cannot be lost by a repeated command.
pub fn write_new(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()
}

/// The record in zone-file syntax: `<selector>._domainkey.<domain>. IN TXT "..."`. A TXT
/// character-string holds at most 255 octets (RFC 1035 §3.3.14), which an RSA-2048 key
/// exceeds, so the value is split into several strings; RFC 6376 §3.6.2.2 joins them again
/// without spaces.
pub fn zone_line(domain: &str, selector: &str, record: &str) -> String {
    let strings: Vec<String> = record.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    format!("{selector}._domainkey.{}. IN TXT {}", domain.trim_end_matches('.'), strings.join(" "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const RSA_PKCS8: &str = include_str!("testdata/rsa2048.pkcs8.pem");
    const RSA_PKCS1: &str = include_str!("testdata/rsa2048.pkcs1.pem");
    const RSA_SPKI: &str = include_str!("testdata/rsa2048.spki.b64");
    const ED25519: &str = include_str!("testdata/ed25519.openssl.pem");
    const ED25519_PUB: &str = include_str!("testdata/ed25519.openssl.pub.b64");

    #[test]
    fn rsa_keys_in_both_encodings_publish_the_spki_openssl_prints() {
        for pem in [RSA_PKCS8, RSA_PKCS1] {
            let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.algorithm(), Algorithm::Rsa);
            assert_eq!(key.record(), format!("v=DKIM1; k=rsa; p={}", RSA_SPKI.trim()));
        }
    }

    #[test]
    fn an_openssl_ed25519_key_publishes_its_raw_public_key() {
        let key = PrivateKey::from_pem(ED25519.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_eq!(key.record(), format!("v=DKIM1; k=ed25519; p={}", ED25519_PUB.trim()));
    }

    #[test]
    fn unusable_keys_say_why() {
        let err = |pem: &str| PrivateKey::from_pem(pem.as_bytes()).unwrap_err();
        assert!(err(include_str!("testdata/rsa1024.pem")).contains("2048 to 4096 bits"));
        assert!(err(include_str!("testdata/p256.sec1.pem")).contains("an EC key"));
        assert!(err("not a key").contains("no PEM private key"));
        // A certificate is PEM, but not a private key.
        assert!(err("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n").contains("no PEM private key"));
    }

    #[test]
    fn a_generated_ed25519_key_is_pkcs8_pem_and_loads() {
        let pem = generate(Algorithm::Ed25519).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        // The RFC 8410 v1 form, as `openssl genpkey` writes it, so other tools read it too.
        let der = BASE64.decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
        assert_eq!((der.len(), &der[..5]), (48, &[0x30, 0x2e, 0x02, 0x01, 0x00][..]));
        let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        // RFC 8463 §4.2: p= is the bare 32-octet key.
        let p = key.record().rsplit_once("p=").unwrap().1.to_owned();
        assert_eq!(BASE64.decode(p).unwrap().len(), 32);
    }

    #[test]
    fn without_openssl_rsa_keygen_says_what_to_do() {
        let err = openssl_rsa("/nonexistent/openssl").unwrap_err().to_string();
        assert!(err.contains("cannot run openssl") && err.contains("--algorithm ed25519"), "{err}");
        let err = openssl_rsa("false").unwrap_err().to_string();
        assert!(err.contains("openssl genpkey failed"), "{err}");
    }

    #[test]
    fn long_records_are_split_into_255_octet_strings() {
        let key = PrivateKey::from_pem(RSA_PKCS8.as_bytes()).unwrap();
        let line = zone_line("a.example", "s2026", &key.record());
        let (name, rest) = line.split_once(" IN TXT ").unwrap();
        assert_eq!(name, "s2026._domainkey.a.example.");
        assert!(rest.starts_with('"') && rest.ends_with('"'), "{line}");
        let strings: Vec<&str> = rest[1..rest.len() - 1].split("\" \"").collect();
        assert_eq!(strings.len(), 2, "{line}");
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(strings.concat(), key.record());
        assert_eq!(zone_line("b.example.", "s", "v=DKIM1; k=ed25519; p=AA"), "s._domainkey.b.example. IN TXT \"v=DKIM1; k=ed25519; p=AA\"");
    }

    #[test]
    fn der_lengths_use_the_long_form_from_128_octets() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        assert_eq!(&der(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&der(0x04, &[0; 270])[..4], &[0x04, 0x82, 0x01, 0x0e]);
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let err = load_key(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(err.contains("/dev/zero: is not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; 70 << 10]).unwrap();
        assert!(load_key(&big).unwrap_err().to_string().contains("larger than 64KiB"));
    }

    #[test]
    fn new_key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_new(&path, "one").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(write_new(&path, "two").unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
    }
}
