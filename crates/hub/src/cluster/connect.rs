//! Connecting to NATS: the client options from the `[cluster]` credentials and TLS files,
//! and what a failed first connection means.
//!
//! Why it exists: a hub given a wrong credential or the wrong CA must say so at once, in
//! one line naming the server and the cause, instead of retrying in silence; a server that
//! is merely not up yet must not stop the hub (it serves its own cameras and joins when
//! NATS comes). So the first connection is tried once: a refusal (credentials, TLS) is a
//! start-up error, an unreachable server is retried in the background.
//!
//! It must never fall back to plain text when TLS was asked for (a CA or client certificate
//! given means TLS), never skip verifying the server's certificate, and never log the
//! credential, token or key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use super::{ClusterConfig, ClusterError};

/// What the options are built from, read once at start-up.
pub(super) struct Prepared {
    /// The `.creds` file's text (user JWT + nkey seed).
    creds: Option<String>,
    /// The TLS client configuration, when TLS is asked for.
    tls: Option<rustls::ClientConfig>,
}

const CREDS: &str = "the NATS credentials file (cluster.credentials)";

fn file_error(what: &'static str, path: &Path, message: String) -> ClusterError {
    ClusterError::File {
        what,
        path: path.to_path_buf(),
        io: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    }
}

fn pem_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClusterError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            file_error(
                what,
                path,
                format!("{e}: expected PEM (-----BEGIN CERTIFICATE-----)"),
            )
        })?;
    if certs.is_empty() {
        return Err(file_error(
            what,
            path,
            "no certificate in it: expected PEM (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The rustls client configuration (ring provider, as the hub's own TLS): the server's
/// certificate verified against `tls_ca` (or the system's roots) and its name against the
/// URL's host; the client certificate presented when one is configured.
fn tls_config(config: &ClusterConfig) -> Result<rustls::ClientConfig, ClusterError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls_ca {
        Some(path) => {
            for c in pem_certs("the NATS CA certificate (cluster.tls_ca)", path)? {
                roots.add(c).map_err(|e| {
                    file_error(
                        "the NATS CA certificate (cluster.tls_ca)",
                        path,
                        format!("{e}: expected a CA certificate"),
                    )
                })?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let tls_error = |e: rustls::Error| ClusterError::Connect {
        url: config.url.clone(),
        message: format!("TLS setup: {e}"),
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_root_certificates(roots);
    Ok(match &config.tls_client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = pem_certs("the NATS client certificate (cluster.tls_cert)", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                file_error(
                    "the NATS client key (cluster.tls_key)",
                    key,
                    format!("{e}: expected a PEM private key (PKCS#8, RSA or EC)"),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(tls_error)?
        }
    })
}

impl Prepared {
    /// Reads and checks the credentials and TLS files: a missing or malformed file is a
    /// start-up error naming it.
    pub(super) fn read(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let creds = match &config.credentials {
            None => None,
            Some(path) => {
                let what = CREDS;
                let text = std::fs::read_to_string(path).map_err(|io| ClusterError::File {
                    what,
                    path: path.clone(),
                    io,
                })?;
                // Parsed once here so that a bad file is named now, not at each connect.
                ConnectOptions::new().credentials(&text).map_err(|e| {
                    file_error(
                        what,
                        path,
                        format!("{e}: expected a NATS .creds file (user JWT and nkey seed)"),
                    )
                })?;
                Some(text)
            }
        };
        let tls = if config.tls {
            Some(tls_config(config)?)
        } else {
            None
        };
        Ok(Self { creds, tls })
    }

    /// The client options; `retry` makes the first connection retry in the background.
    fn options(
        &self,
        config: &ClusterConfig,
        request_timeout: Duration,
        retry: bool,
    ) -> Result<ConnectOptions, ClusterError> {
        let mut options = ConnectOptions::new()
            .name(format!("espcam-hub {}", config.node))
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(request_timeout));
        if retry {
            options = options.retry_on_initial_connect();
        }
        if let (Some(text), Some(path)) = (&self.creds, &config.credentials) {
            options = options.credentials(text).map_err(|e| {
                file_error(CREDS, path, format!("{e}: expected a NATS .creds file"))
            })?;
        }
        if let Some((u, p)) = &config.user_password {
            options = options.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &config.token {
            options = options.token(t.clone());
        }
        if let Some(tls) = &self.tls {
            options = options.require_tls(true).tls_client_config(tls.clone());
        }
        // The client reports each failed reconnection: log a state once, not every retry.
        let last = Arc::new(std::sync::Mutex::new(String::new()));
        let url = config.url.clone();
        Ok(options.event_callback(move |event| {
            let (last, url) = (last.clone(), url.clone());
            async move {
                use async_nats::Event;
                let line = match &event {
                    Event::Connected => format!("connected to NATS at {url}"),
                    Event::Disconnected => format!("disconnected from NATS at {url}; reconnecting"),
                    other => format!("NATS at {url}: {other}"),
                };
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != line {
                    match event {
                        Event::Connected => info!("cluster: {line}"),
                        _ => warn!("cluster: {line}"),
                    }
                    *last = line;
                }
            }
        }))
    }
}

/// Why a first connection failed, when it is a refusal rather than an absent server: the
/// credentials, or TLS (the certificate, the CA, a client certificate the server wants).
fn refusal(e: &async_nats::ConnectError) -> Option<String> {
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            Some(format!("wrong or missing credentials ({e})"))
        }
        ConnectErrorKind::Tls => Some(format!("TLS failed ({e})")),
        ConnectErrorKind::ServerParse => Some(format!("the URL cannot be used ({e})")),
        ConnectErrorKind::Io => {
            // A TLS handshake failure (unknown issuer, wrong name, a certificate the server
            // wanted) reaches us as an I/O error of kind InvalidData from rustls.
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                std::error::Error::source(e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::InvalidData
                {
                    return Some(format!("TLS failed ({io})"));
                }
                source = s.source();
            }
            None
        }
        _ => None,
    }
}

/// Connects once; on a refusal returns the error; on an unreachable server, warns and
/// connects in the background (the hub serves its own cameras meanwhile).
pub(super) async fn connect(
    config: &ClusterConfig,
    request_timeout: Duration,
) -> Result<async_nats::Client, ClusterError> {
    let prepared = Prepared::read(config)?;
    let url = config.url.as_str();
    let first = prepared
        .options(config, request_timeout, false)?
        .connect(url)
        .await;
    let e = match first {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    if let Some(cause) = refusal(&e) {
        return Err(ClusterError::Refused {
            url: config.url.clone(),
            cause,
        });
    }
    warn!(
        "cluster: NATS at {url} not reachable yet ({e}); retrying in the background, serving this hub's own cameras meanwhile"
    );
    prepared
        .options(config, request_timeout, true)?
        .connect(url)
        .await
        .map_err(|e| ClusterError::Connect {
            url: config.url.clone(),
            message: e.to_string(),
        })
}
