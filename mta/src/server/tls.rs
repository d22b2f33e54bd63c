//! TLS for STARTTLS (RFC 3207) and implicit TLS (RFC 8314), on rustls with the ring provider.
//!
//! With `tls.cert` and `tls.key` set, those PEM files are used. Without them a self-signed
//! certificate for the host name (and `localhost`) is made once and kept in `<data>/tls/`, so
//! STARTTLS works out of the box; clients that verify certificates need a real one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use crate::config::Config;

/// Build the acceptor for this configuration, creating the self-signed pair when needed.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor> {
    let (cert, key) = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => self_signed(config)?,
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match or are unsupported")?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Paths of the self-signed pair in the data directory, made on first use.
fn self_signed(config: &Config) -> Result<(PathBuf, PathBuf)> {
    let dir = config.data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![config.hostname.clone()];
    if config.hostname != "localhost" {
        names.push("localhost".into());
    }
    let pair = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    write_private(&key, pair.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, pair.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
    info!(cert = %cert.display(), "made a self-signed TLS certificate; set tls.cert and tls.key for a real one");
    Ok((cert, key))
}

/// Write a file only its owner can read (a private key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_pair_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), hostname: "mx.test".into(), ..Config::default() };
        acceptor(&config).unwrap();
        let key = dir.path().join("tls/key.pem");
        let first = std::fs::read(&key).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        acceptor(&config).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), first, "the pair is reused, not remade");
    }

    #[test]
    fn configured_files_are_used_and_errors_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        config.tls.cert = Some(dir.path().join("missing.pem"));
        config.tls.key = Some(dir.path().join("missing-key.pem"));
        let err = format!("{:#}", acceptor(&config).err().unwrap());
        assert!(err.contains("missing.pem"), "{err}");
    }
}
