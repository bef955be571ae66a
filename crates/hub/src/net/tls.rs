//! TLS for both ports (`--tls-cert FILE --tls-key FILE`, or `--tls-self-signed`): the rustls
//! server configuration the accept loop wraps every connection in ([`super::serve`]), and
//! the self-signed certificate kept in the data directory.
//!
//! Why self-signed is a first-class choice: a hub on a home network has no public name a
//! certificate authority would sign, and cameras pin the certificate anyway (its SHA-256
//! fingerprint is logged at every start, and the PEM is what the firmware embeds). The
//! certificate is generated once and kept (`tls/cert.pem`, `tls/key.pem`, the key mode
//! 0600), so pinned cameras and browsers that accepted it keep working across restarts.
//!
//! This module must never log or return the private key, and never fall back to plain
//! text when TLS was asked for and cannot be set up: the hub refuses to start instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSource;

/// Where a self-signed certificate is kept, under the data directory.
pub const SELF_SIGNED_DIR: &str = "tls";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {message}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong, and what was expected.
        message: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be generated.
    #[error("could not generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The self-signed certificate could not be written.
    #[error("could not write {path}: {io}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        io: std::io::Error,
    },
}

/// What the hub serves TLS with.
#[derive(Clone)]
pub struct Tls {
    /// Wraps each accepted connection.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the certificate (DER), `AB:CD:…`, for pinning and for the log.
    pub fingerprint: String,
    /// The certificate file served (PEM).
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// The TLS setup for `source`, or `None` when TLS is off. `names` go into a new self-signed
/// certificate's subject alternative names (`localhost` and the loopback addresses always).
pub fn setup(
    source: &TlsSource,
    data_dir: &Path,
    names: &[String],
) -> Result<Option<Tls>, TlsError> {
    let (cert, key) = match source {
        TlsSource::Off => return Ok(None),
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => self_signed(data_dir, names)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File {
            what: "certificate",
            path: cert.clone(),
            message: format!("{e}: expected PEM (-----BEGIN CERTIFICATE-----)"),
        })?;
    let Some(first) = certs.first() else {
        return Err(TlsError::File {
            what: "certificate",
            path: cert,
            message: "no certificate in it: expected PEM (-----BEGIN CERTIFICATE-----)".into(),
        });
    };
    let fingerprint = fingerprint(first);
    let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::File {
        what: "private key",
        path: key.clone(),
        message: format!("{e}: expected a PEM private key (PKCS#8, RSA or EC)"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        cert_path: cert,
    }))
}

/// `AB:CD:…` of the SHA-256 of `cert`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The kept self-signed pair in `data_dir/tls/`, generated on first use.
fn self_signed(data_dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join(SELF_SIGNED_DIR);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |io| TlsError::Write { path, io }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let pair = rcgen::generate_simple_self_signed(sans)?;
    write_private(&key, pair.signing_key.serialize_pem().as_bytes()).map_err(write_err(&key))?;
    std::fs::write(&cert, pair.cert.pem()).map_err(write_err(&cert))?;
    Ok((cert, key))
}

/// Writes `bytes` to a new file only the owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = setup(&TlsSource::SelfSigned, dir.path(), &["espcam.lan".into()])
            .unwrap()
            .unwrap();
        let again = setup(&TlsSource::SelfSigned, dir.path(), &[])
            .unwrap()
            .unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn unusable_files_are_refused_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let source = TlsSource::Files { cert, key };
        let e = setup(&source, dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("no certificate in it"), "{e}");
    }
}
