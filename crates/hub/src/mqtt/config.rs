//! `[mqtt]` in espcam.toml, `--mqtt URL` and `ESPCAM_MQTT*`: parsed and validated once into
//! [`MqttConfig`]. Nothing here connects; a bad value is a start-up error that says what was
//! expected, never a surprise at the first publish.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// `[mqtt]` as written in espcam.toml. Every key is optional; the section is active when a
/// `url` is given (here or by `--mqtt` / `ESPCAM_MQTT`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttFile {
    /// `mqtt://HOST[:PORT]` (default port 1883).
    pub url: Option<String>,
    /// User name for the broker.
    pub user: Option<String>,
    /// Password for the broker.
    pub password: Option<String>,
    /// MQTT client id (default `espcam-hub`); also the hub's device id in Home Assistant.
    pub client_id: Option<String>,
    /// First level of every state and command topic (default `espcam`).
    pub topic_prefix: Option<String>,
    /// Home Assistant's discovery prefix (default `homeassistant`).
    pub discovery_prefix: Option<String>,
    /// Milliseconds between two images of one camera on its image topic (default 1000).
    pub image_interval_ms: Option<u64>,
}

/// Flag and environment values for MQTT; `None` leaves the file's value.
#[derive(Debug, Default, Clone)]
pub struct MqttOverrides {
    /// `--mqtt` / `ESPCAM_MQTT`.
    pub url: Option<String>,
    /// `--mqtt-user` / `ESPCAM_MQTT_USER`.
    pub user: Option<String>,
    /// `--mqtt-password` / `ESPCAM_MQTT_PASSWORD`.
    pub password: Option<String>,
    /// `--mqtt-client-id` / `ESPCAM_MQTT_CLIENT_ID`.
    pub client_id: Option<String>,
}

/// The validated MQTT settings.
#[derive(Clone)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Credentials, if any.
    pub credentials: Option<(String, String)>,
    /// Client id.
    pub client_id: String,
    /// Topic prefix (`espcam`).
    pub topic_prefix: String,
    /// Discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
    /// Time between two images of one camera.
    pub image_interval: Duration,
}

impl std::fmt::Debug for MqttConfig {
    // The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("image_interval", &self.image_interval)
            .finish()
    }
}

impl MqttConfig {
    /// A configuration for `host:port` with every default (tests).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            credentials: None,
            client_id: "espcam-hub".into(),
            topic_prefix: "espcam".into(),
            discovery_prefix: "homeassistant".into(),
            image_interval: Duration::from_secs(1),
        }
    }

    /// Resolves the file's section and the overrides; `Ok(None)` when no URL is given.
    pub fn resolve(
        file: Option<&MqttFile>,
        o: &MqttOverrides,
    ) -> Result<Option<Self>, ConfigError> {
        let d = MqttFile::default();
        let f = file.unwrap_or(&d);
        let Some(url) = o.url.as_ref().or(f.url.as_ref()) else {
            return Ok(None);
        };
        let (host, port) = parse_url(url)?;
        let mut c = Self::new(host, port);
        let user = o.user.clone().or_else(|| f.user.clone());
        let password = o.password.clone().or_else(|| f.password.clone());
        c.credentials = match (user, password) {
            (Some(u), p) => Some((u, p.unwrap_or_default())),
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "mqtt.password is set without mqtt.user: give both".into(),
                ));
            }
            (None, None) => None,
        };
        if let Some(id) = o.client_id.clone().or_else(|| f.client_id.clone()) {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::Invalid(format!(
                    "mqtt.client_id {:?} is invalid: expected 1 to 64 letters, digits, '-' or '_'",
                    cut(&id)
                )));
            }
            c.client_id = id;
        }
        if let Some(p) = &f.topic_prefix {
            c.topic_prefix = prefix("mqtt.topic_prefix", p)?;
        }
        if let Some(p) = &f.discovery_prefix {
            c.discovery_prefix = prefix("mqtt.discovery_prefix", p)?;
        }
        if let Some(ms) = f.image_interval_ms {
            if !(100..=3_600_000).contains(&ms) {
                return Err(ConfigError::Invalid(format!(
                    "mqtt.image_interval_ms {ms} out of range 100..=3600000"
                )));
            }
            c.image_interval = Duration::from_millis(ms);
        }
        Ok(Some(c))
    }
}

fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `mqtt://HOST[:PORT]` or `tcp://…`; `mqtts://` is refused with what to do instead.
fn parse_url(url: &str) -> Result<(String, u16), ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!(
            "mqtt url {:?} is invalid: {why}; expected mqtt://HOST[:PORT], e.g. mqtt://127.0.0.1:1883",
            cut(url)
        ))
    };
    let rest = if let Some(r) = url.strip_prefix("mqtt://") {
        r
    } else if let Some(r) = url.strip_prefix("tcp://") {
        r
    } else if url.starts_with("mqtts://") || url.starts_with("ssl://") {
        return Err(bad(
            "TLS is not built into this hub (use a local broker or a TLS bridge such as mosquitto's)",
        ));
    } else {
        return Err(bad("unknown scheme"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad(
            "give only a host and a port (user and password go in mqtt.user / mqtt.password)",
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        // `[::1]:1883`
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            let port: u16 = p
                .parse()
                .map_err(|_| bad("the port is not a number 1..=65535"))?;
            if port == 0 {
                return Err(bad("port 0"));
            }
            (h, port)
        }
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_string(), port))
}

fn prefix(name: &str, p: &str) -> Result<String, ConfigError> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && !p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'));
    if ok {
        Ok(p.to_string())
    } else {
        Err(ConfigError::Invalid(format!(
            "{name} {:?} is invalid: expected topic levels of letters, digits, '-' or '_' separated by '/', e.g. \"espcam\"",
            cut(p)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Result<Option<MqttConfig>, ConfigError> {
        MqttConfig::resolve(
            None,
            &MqttOverrides {
                url: Some(u.into()),
                ..MqttOverrides::default()
            },
        )
    }

    #[test]
    fn urls() {
        let c = url("mqtt://127.0.0.1:1884").unwrap().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 1884));
        let c = url("mqtt://broker.lan").unwrap().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("broker.lan", 1883));
        let c = url("tcp://[::1]:2000").unwrap().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 2000));
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtts://h",
        ] {
            let e = url(bad).unwrap_err().to_string();
            assert!(e.contains("expected mqtt://HOST"), "{bad}: {e}");
        }
        assert!(
            MqttConfig::resolve(None, &MqttOverrides::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn file_values_and_validation() {
        let f = MqttFile {
            url: Some("mqtt://h".into()),
            user: Some("ha".into()),
            password: Some("secret".into()),
            topic_prefix: Some("home/cams".into()),
            image_interval_ms: Some(500),
            ..MqttFile::default()
        };
        let c = MqttConfig::resolve(Some(&f), &MqttOverrides::default())
            .unwrap()
            .unwrap();
        assert_eq!(c.topic_prefix, "home/cams");
        assert_eq!(c.discovery_prefix, "homeassistant");
        assert_eq!(c.image_interval, Duration::from_millis(500));
        assert!(!format!("{c:?}").contains("secret"));
        let o = MqttOverrides {
            url: Some("mqtt://other:1".into()),
            ..MqttOverrides::default()
        };
        let c = MqttConfig::resolve(Some(&f), &o).unwrap().unwrap();
        assert_eq!(c.host, "other");
        let bad = MqttFile {
            topic_prefix: Some("a/#".into()),
            ..f.clone()
        };
        let e = MqttConfig::resolve(Some(&bad), &MqttOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("mqtt.topic_prefix"), "{e}");
        let bad = MqttFile {
            image_interval_ms: Some(5),
            ..f
        };
        let e = MqttConfig::resolve(Some(&bad), &MqttOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("out of range 100..=3600000"), "{e}");
    }
}
