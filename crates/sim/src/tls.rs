//! Whom a virtual camera trusts on a `wss://` hub, from the same [`Trust`] the firmware's
//! configuration produces (`espcam_camera::FirmwareConfig`): a SHA-256 fingerprint (the
//! hub's certificate must be exactly that one, compared by the core's
//! [`Fingerprint::matches`]) or a PEM certificate (the hub's must chain to it).
//!
//! This module must never accept a certificate the pin does not name, and never fall back
//! to a system root store.

use std::sync::Arc;

use espcam_camera::{Fingerprint, Trust, pem_certificate};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// A pin that cannot be turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum PinTlsError {
    /// `Trust::Plain` has nothing to pin.
    #[error("a plain ws:// target has no certificate to pin")]
    Plain,
    /// The PEM certificate was not accepted as a trust anchor.
    #[error("the pinned certificate is not usable as a trust anchor: {0}")]
    Anchor(String),
    /// rustls refused the protocol versions.
    #[error("TLS configuration: {0}")]
    Config(#[from] Error),
}

/// The rustls client configuration that trusts what `trust` pins (ring provider, safe
/// default protocol versions, no client certificate).
pub fn pinned_tls(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, PinTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::Plain => return Err(PinTlsError::Plain),
        Trust::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedFingerprint {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Pem(pem) => {
            let der = pem_certificate(pem).map_err(|e| PinTlsError::Anchor(e.to_string()))?;
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| PinTlsError::Anchor(e.to_string()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Accepts exactly the certificate with the pinned SHA-256, as the firmware's mbedtls
/// verify callback does; the handshake signatures are still checked against its key.
#[derive(Debug)]
struct PinnedFingerprint {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedFingerprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.pin.matches(end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
