//! Cluster settings: `[cluster]` in `espcam.toml`, `--cluster` / `ESPCAM_CLUSTER` and
//! `--node` / `ESPCAM_NODE`. Validated here once, like the rest of the configuration; this
//! module reads neither the environment nor the command line (the binary does).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// `[cluster]` as written in `espcam.toml`. Every key is optional; `url` (or `--cluster`)
/// turns cluster mode on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// NATS server URL(s), e.g. `nats://10.0.0.5:4222`.
    pub url: Option<String>,
    /// This hub's node name (default: the host name).
    pub node: Option<String>,
    /// NATS credentials file (`.creds`, JWT + nkey seed).
    pub credentials: Option<PathBuf>,
    /// NATS user name (with `password`).
    pub user: Option<String>,
    /// NATS password.
    pub password: Option<String>,
    /// NATS token.
    pub token: Option<String>,
    /// Require TLS to the NATS server.
    #[serde(default)]
    pub tls: bool,
    /// CA certificate (PEM) for the NATS server's TLS certificate.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a NATS server that verifies clients (`verify: true`).
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How long a directory entry lives without a heartbeat, ms (default 5000).
    pub ttl_ms: Option<u64>,
}

/// How this hub joins the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URL.
    pub url: String,
    /// This hub's node name: letters, digits, `-`, `_` (it is part of NATS subjects).
    pub node: String,
    /// Credentials file.
    pub credentials: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Token.
    pub token: Option<String>,
    /// Require TLS.
    pub tls: bool,
    /// CA certificate for TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and its key (PEM files), for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Lifetime of a directory entry without a heartbeat (the bucket's `max_age`).
    pub ttl: Duration,
}

impl ClusterConfig {
    /// A cluster configuration for tests: this URL and node, defaults otherwise.
    pub fn new(url: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node: node.into(),
            credentials: None,
            user_password: None,
            token: None,
            tls: false,
            tls_ca: None,
            tls_client: None,
            ttl: Duration::from_secs(5),
        }
    }
}

/// Whether `name` can be a node name (it becomes a NATS subject token).
pub fn valid_node(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn default_node() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(64)
        .collect();
    if valid_node(&host) {
        host
    } else {
        "espcam".into()
    }
}

/// Combines the file's `[cluster]` with `--cluster` / `--node` (flags win). No URL anywhere:
/// no cluster.
pub fn resolve(
    file: Option<&ClusterFile>,
    url: Option<String>,
    node: Option<String>,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let empty = ClusterFile::default();
    let f = file.unwrap_or(&empty);
    let Some(url) = url.or_else(|| f.url.clone()) else {
        if node.is_some() {
            return Err(ConfigError::Invalid(
                "--node given without --cluster: expected a NATS URL such as --cluster nats://127.0.0.1:4222".into(),
            ));
        }
        return Ok(None);
    };
    let url = url.trim().to_string();
    let scheme_ok = ["nats://", "tls://"].iter().any(|s| url.starts_with(s));
    if !scheme_ok || url.len() > 512 {
        return Err(ConfigError::Invalid(format!(
            "cluster URL {:?} is invalid: expected nats://HOST:PORT (or tls://HOST:PORT)",
            url.chars().take(80).collect::<String>()
        )));
    }
    let node = node.or_else(|| f.node.clone()).unwrap_or_else(default_node);
    if !valid_node(&node) {
        return Err(ConfigError::Invalid(format!(
            "node name {:?} is invalid: expected 1 to 64 letters, digits, '-' or '_'",
            node.chars().take(80).collect::<String>()
        )));
    }
    let ttl_ms = f.ttl_ms.unwrap_or(5000);
    if !(1000..=600_000).contains(&ttl_ms) {
        return Err(ConfigError::Invalid(format!(
            "cluster.ttl_ms {ttl_ms} out of range 1000..=600000"
        )));
    }
    let user_password = match (&f.user, &f.password) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid(
                "cluster.user and cluster.password go together: give both or neither".into(),
            ));
        }
    };
    let given = [
        f.credentials.is_some(),
        user_password.is_some(),
        f.token.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ConfigError::Invalid(
            "cluster: give one NATS credential: credentials (a .creds file), user and password, or token".into(),
        ));
    }
    let tls_client = match (&f.tls_cert, &f.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid(
                "cluster.tls_cert and cluster.tls_key go together: give both PEM files or neither"
                    .into(),
            ));
        }
    };
    Ok(Some(ClusterConfig {
        // A CA or a client certificate means TLS: never plain text to a server the
        // configuration expects to verify.
        tls: f.tls || url.starts_with("tls://") || f.tls_ca.is_some() || tls_client.is_some(),
        url,
        node,
        credentials: f.credentials.clone(),
        user_password,
        token: f.token.clone(),
        tls_ca: f.tls_ca.clone(),
        tls_client,
        ttl: Duration::from_millis(ttl_ms),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_no_cluster() {
        assert_eq!(resolve(None, None, None).unwrap(), None);
        let err = resolve(None, None, Some("a".into()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--node given without --cluster"), "{err}");
    }

    #[test]
    fn flags_win_and_names_are_checked() {
        let file = ClusterFile {
            url: Some("nats://10.0.0.1:4222".into()),
            node: Some("file-node".into()),
            ..ClusterFile::default()
        };
        let c = resolve(Some(&file), None, Some("hub-b".into()))
            .unwrap()
            .unwrap();
        assert_eq!(c.url, "nats://10.0.0.1:4222");
        assert_eq!(c.node, "hub-b");
        assert_eq!(c.ttl, Duration::from_secs(5));
        let err = resolve(None, Some("nats://x:1".into()), Some("a.b".into()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("node name \"a.b\" is invalid"), "{err}");
        let err = resolve(None, Some("http://x".into()), Some("a".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cluster URL \"http://x\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn credentials_are_one_and_tls_files_imply_tls() {
        let url = || Some("nats://10.0.0.1:4222".to_string());
        let file = ClusterFile {
            token: Some("t".into()),
            user: Some("u".into()),
            password: Some("p".into()),
            ..ClusterFile::default()
        };
        let err = resolve(Some(&file), url(), None).unwrap_err().to_string();
        assert!(err.contains("give one NATS credential"), "{err}");
        let file = ClusterFile {
            tls_cert: Some("c.pem".into()),
            ..ClusterFile::default()
        };
        let err = resolve(Some(&file), url(), None).unwrap_err().to_string();
        assert!(
            err.starts_with("cluster.tls_cert and cluster.tls_key go together"),
            "{err}"
        );
        let file = ClusterFile {
            tls_ca: Some("ca.pem".into()),
            ..ClusterFile::default()
        };
        let c = resolve(Some(&file), url(), None).unwrap().unwrap();
        assert!(c.tls, "a CA given means TLS");
        let file = ClusterFile {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            credentials: Some("hub.creds".into()),
            ..ClusterFile::default()
        };
        let c = resolve(Some(&file), url(), None).unwrap().unwrap();
        assert!(c.tls);
        assert_eq!(c.tls_client, Some(("c.pem".into(), "k.pem".into())));
        assert!(!resolve(None, url(), None).unwrap().unwrap().tls);
    }
}
