//! Pinning the hub's certificate for `wss://` and `https://` (firmware images): what
//! esp-tls is handed for each kind of [`Trust`] the core's configuration decided.
//!
//! A PEM certificate goes to esp-tls as the only CA (`server_cert`). A fingerprint has no
//! esp-tls field, so it uses the hook esp-idf's own certificate bundle uses
//! (`crt_bundle_attach`): an empty CA list and an mbedtls verify callback that accepts the
//! hub's certificate only when its SHA-256 is the pinned one (compared by
//! `Fingerprint::matches`, tested on the host). Must never accept a certificate otherwise.

use core::ffi::{c_int, c_void};
use std::sync::OnceLock;

use esp_idf_svc::sys;
use esp_idf_svc::tls::X509;
use espcam_camera::{Fingerprint, Trust};

type Attach = unsafe extern "C" fn(*mut c_void) -> sys::esp_err_t;

/// The TLS fields of esp-idf-svc's WebSocket and HTTP client configurations.
#[derive(Clone, Copy)]
pub struct Pin {
    pub cert: Option<X509<'static>>,
    pub attach: Option<Attach>,
}

static PINNED: OnceLock<Fingerprint> = OnceLock::new();
/// mbedtls verifies only with a CA list set; the callback is what decides.
static mut NO_CA: sys::mbedtls_x509_crt = unsafe { core::mem::zeroed() };

/// What esp-tls is handed for `trust`: nothing (plain), the PEM as the only CA, or the
/// verify hook with `trust`'s fingerprint.
pub fn pin(trust: &Trust) -> Pin {
    if let Trust::Fingerprint(f) = trust {
        let _ = PINNED.set(*f);
    }
    let pem = || X509::pem_until_nul(crate::config::HUB_CERT_PEM);
    Pin {
        cert: matches!(trust, Trust::Pem(_)).then(pem),
        attach: matches!(trust, Trust::Fingerprint(_)).then_some(attach as Attach),
    }
}

/// Called by esp-tls with the connection's `mbedtls_ssl_config` (verification is required).
unsafe extern "C" fn attach(conf: *mut c_void) -> sys::esp_err_t {
    let conf = conf.cast::<sys::mbedtls_ssl_config>();
    sys::mbedtls_ssl_conf_ca_chain(conf, &raw mut NO_CA, core::ptr::null_mut());
    sys::mbedtls_ssl_conf_verify(conf, Some(verify), core::ptr::null_mut());
    sys::ESP_OK
}

/// Called for each certificate of the hub's chain; the hub's own (depth 0) must be pinned
/// (the core's `Fingerprint::verify_flags`).
unsafe extern "C" fn verify(
    _: *mut c_void,
    crt: *mut sys::mbedtls_x509_crt,
    depth: c_int,
    flags: *mut u32,
) -> c_int {
    let raw = &(*crt).raw;
    let der = core::slice::from_raw_parts(raw.p, raw.len);
    let not_trusted = sys::MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    *flags = Fingerprint::verify_flags(PINNED.get(), depth, der, not_trusted);
    0
}
