//! TLS to the MQTT broker (`mqtts://`, or `tls = true`): the rustls client configuration
//! the connection uses, built once at start-up from `ca_file` (or the system's trusted
//! roots) and an optional client certificate and key.
//!
//! Why it exists: a broker reached over a network the owner does not trust (a cloud broker,
//! another building) must see neither the broker password nor the images in clear. It
//! uses the ring provider the hub's own TLS uses, so no second crypto library comes in.
//!
//! It must never fall back to plain text when TLS was asked for, never skip verifying the
//! broker's certificate, and never log or return the client key: a file that cannot be
//! used is a start-up error naming the file and what was expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The files TLS is set up from; every one is optional.
#[derive(Debug, Default, Clone)]
pub struct TlsFiles {
    /// PEM certificates of the authorities that sign the broker's certificate (a broker with
    /// a self-made CA); without it, the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for a broker that asks for one (`require_certificate`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (PKCS#8, RSA or EC).
    pub client_key: Option<PathBuf>,
}

/// Why TLS to the broker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttTlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("mqtt.{key} {}: {message}", path.display())]
    File {
        /// The configuration key (`ca_file`, `client_cert`, `client_key`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong, and what was expected.
        message: String,
    },
    /// A client certificate without its key, or the other way round.
    #[error("mqtt.client_cert and mqtt.client_key go together: give both PEM files")]
    HalfPair,
    /// No `ca_file` and no usable system root.
    #[error(
        "no trusted root certificates found on this system: give the broker's CA as mqtt.ca_file"
    )]
    NoRoots,
    /// rustls refused the configuration (a key that does not match the certificate).
    #[error("mqtt TLS: client certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttTlsError> {
    let bad = |message: String| MqttTlsError::File {
        key,
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("{e}: expected PEM (-----BEGIN CERTIFICATE-----)")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in it: expected PEM (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, MqttTlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in certs("ca_file", path)? {
                store.add(c).map_err(|e| MqttTlsError::File {
                    key: "ca_file",
                    path: path.to_path_buf(),
                    message: format!("{e}: expected a CA certificate"),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(MqttTlsError::NoRoots);
            }
        }
    }
    Ok(store)
}

/// The client configuration for `files` (ring provider, TLS 1.2 and 1.3, the broker's
/// certificate verified against the roots, its name checked against the URL's host).
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, MqttTlsError> {
    let roots = roots(files.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&files.client_cert, &files.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs("client_cert", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| MqttTlsError::File {
                key: "client_key",
                path: key.clone(),
                message: format!("{e}: expected a PEM private key (PKCS#8, RSA or EC)"),
            })?;
            builder.with_client_auth_cert(chain, key_der)?
        }
        _ => return Err(MqttTlsError::HalfPair),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pair.cert.pem()).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();

        let ok = TlsFiles {
            ca_file: Some(ca.clone()),
            ..TlsFiles::default()
        };
        assert!(client_config(&ok).is_ok());
        let with_client = TlsFiles {
            client_cert: Some(ca.clone()),
            client_key: Some(key.clone()),
            ..ok.clone()
        };
        assert!(client_config(&with_client).is_ok());

        let e = client_config(&TlsFiles {
            ca_file: Some(junk.clone()),
            ..TlsFiles::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("mqtt.ca_file") && e.contains("junk.pem"), "{e}");
        assert!(e.contains("expected PEM"), "{e}");
        let e = client_config(&TlsFiles {
            ca_file: Some(dir.path().join("missing.pem")),
            ..TlsFiles::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = client_config(&TlsFiles {
            client_key: None,
            ..with_client.clone()
        })
        .unwrap_err();
        assert!(matches!(e, MqttTlsError::HalfPair), "{e}");
        let e = client_config(&TlsFiles {
            client_key: Some(junk),
            ..with_client
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mqtt.client_key") && e.contains("private key"),
            "{e}"
        );
        assert!(!e.contains("BEGIN PRIVATE KEY"), "{e}");
    }
}
