//! The firmware's build-time configuration (`firmware/cfg.toml`), checked: every rule a
//! person could break, with a message that says what to change.
//!
//! The firmware's `build.rs` runs [`FirmwareConfig::parse`] on the host and refuses to build
//! with its errors, so a bad configuration never reaches a board; the firmware parses the
//! same (already checked) values again at boot to get typed values. Both run this one
//! function, which is tested here. It must never pick a default for a secret (Wi-Fi and
//! access-point passwords, the camera token), and never accept a `wss://` hub without a pin.
//!
//! A camera may be given several hubs (`hub_urls`, a cluster's nodes): the core moves to the
//! next after repeated failures (`HubConfig::hubs`, `Camera::hub_index`); one pin
//! (`hub_cert_sha256` or `hub_cert`) is the trust of every `wss://` hub of the list.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use espcam_proto::CameraId;

use crate::target::{HubTarget, Trust};
use crate::types::{Config, OtaBoot};

/// The values of `cfg.toml`, as text (numbers too). Empty means "not set".
#[derive(Debug, Clone, Copy, Default)]
pub struct RawConfig<'a> {
    /// `"hub"` or `"standalone"`.
    pub mode: &'a str,
    /// Camera clock in MHz, `"0"` for the board's default.
    pub xclk_mhz: &'a str,
    /// Hub mode: the Wi-Fi network to join.
    pub wifi_ssid: &'a str,
    /// Hub mode: its password (empty: an open network).
    pub wifi_password: &'a str,
    /// Hub mode: `ws://HOST[:PORT]`, `wss://HOST[:PORT]` or a bare host.
    pub hub_url: &'a str,
    /// Hub mode, instead of `hub_url`: several hubs (a cluster's nodes), separated by
    /// whitespace, each as `hub_url` takes it; the camera moves to the next when its hub is
    /// gone. `None`: not set; `Some("")`: an empty list, refused.
    pub hub_urls: Option<&'a str>,
    /// The hub's control port when `hub_url` names none (6971).
    pub control_port: &'a str,
    /// The hub's stream port (6972).
    pub stream_port: &'a str,
    /// This camera's id.
    pub camera_id: &'a str,
    /// The hub's shared secret for this camera (may be empty).
    pub token: &'a str,
    /// `wss://`: the SHA-256 fingerprint of the hub's certificate.
    pub hub_cert_sha256: &'a str,
    /// `wss://`: the text of the PEM file named by `hub_cert` (`None`: no such key).
    pub hub_cert_pem: Option<&'a str>,
    /// Standalone mode: the access point's name.
    pub ap_ssid: &'a str,
    /// Standalone mode: its WPA2 password (required).
    pub ap_password: &'a str,
}

impl<'a> RawConfig<'a> {
    /// Every value but `hub_cert_pem`, by its `cfg.toml` key (`None`: not set).
    fn fields(&self) -> [(&'static str, Option<&'a str>); 13] {
        [
            ("mode", Some(self.mode)),
            ("xclk_mhz", Some(self.xclk_mhz)),
            ("wifi_ssid", Some(self.wifi_ssid)),
            ("wifi_password", Some(self.wifi_password)),
            ("hub_url", Some(self.hub_url)),
            ("hub_urls", self.hub_urls),
            ("control_port", Some(self.control_port)),
            ("stream_port", Some(self.stream_port)),
            ("camera_id", Some(self.camera_id)),
            ("token", Some(self.token)),
            ("hub_cert_sha256", Some(self.hub_cert_sha256)),
            ("ap_ssid", Some(self.ap_ssid)),
            ("ap_password", Some(self.ap_password)),
        ]
    }

    /// The values as `firmware/build.rs` hands them to the firmware, which reads them back
    /// with [`RawConfig::import`]: one `key=value` line each, the values as they are
    /// (`hub_urls` only when set; not `hub_cert_pem`: the firmware embeds that file). A value
    /// with a line break cannot be read back: refused, naming its key.
    pub fn export(&self) -> Result<String, ConfigError> {
        let mut out = String::new();
        for (key, value) in self.fields() {
            let Some(value) = value else { continue };
            if value.contains(['\n', '\r']) {
                let problem = "contains a line break; expected a single line".to_string();
                return Err(ConfigError { key, problem });
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        Ok(out)
    }

    /// Reads what [`RawConfig::export`] wrote (lines without `=` and unknown keys are
    /// skipped; what is missing stays empty, and [`FirmwareConfig::parse`] judges it).
    pub fn import(text: &'a str) -> Self {
        let mut raw = Self::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            let field = match key {
                "mode" => &mut raw.mode,
                "xclk_mhz" => &mut raw.xclk_mhz,
                "wifi_ssid" => &mut raw.wifi_ssid,
                "wifi_password" => &mut raw.wifi_password,
                "hub_url" => &mut raw.hub_url,
                "hub_urls" => {
                    raw.hub_urls = Some(value);
                    continue;
                }
                "control_port" => &mut raw.control_port,
                "stream_port" => &mut raw.stream_port,
                "camera_id" => &mut raw.camera_id,
                "token" => &mut raw.token,
                "hub_cert_sha256" => &mut raw.hub_cert_sha256,
                "ap_ssid" => &mut raw.ap_ssid,
                "ap_password" => &mut raw.ap_password,
                _ => continue,
            };
            *field = value;
        }
        raw
    }
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareConfig {
    /// Camera clock in Hz; `None`: the board's default.
    pub xclk_hz: Option<u32>,
    /// Which topology, with its settings.
    pub role: Role,
}

/// Hub or standalone, with what each needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Join `wifi_ssid` and connect to the hub.
    Hub {
        /// Network name.
        wifi_ssid: String,
        /// Network password (empty: open).
        wifi_password: String,
        /// The hub.
        target: HubTarget,
        /// Whom to trust there.
        trust: Trust,
        /// The other hubs of `hub_urls`, in order, each with its trust (empty: one hub).
        more_hubs: Vec<(HubTarget, Trust)>,
        /// This camera's id.
        camera: CameraId,
        /// The hub's shared secret.
        token: String,
    },
    /// Open an access point and serve up to five clients.
    Standalone {
        /// Access point name.
        ssid: String,
        /// WPA2 password.
        password: String,
    },
}

/// One problem in `cfg.toml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {problem}")]
pub struct ConfigError {
    /// The key to change.
    pub key: &'static str,
    /// What is wrong and what is expected.
    pub problem: String,
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

impl core::error::Error for ConfigErrors {}

/// How long one firmware range request may take on the board: the first one waits behind
/// the erase of the OTA slot, which takes seconds.
pub const BOARD_OTA_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The most hubs a camera may be given (the core counts them in a `u8`).
pub const MAX_HUBS: usize = 8;

impl FirmwareConfig {
    /// Checks every value; returns all problems at once.
    pub fn parse(raw: &RawConfig<'_>) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut problem = |key, text: String| {
            errors.push(ConfigError { key, problem: text });
        };
        let xclk_hz = match raw.xclk_mhz.parse::<u32>() {
            Ok(0) => None,
            Ok(mhz @ 6..=27) => Some(mhz * 1_000_000),
            _ => {
                problem(
                    "xclk_mhz",
                    alloc::format!(
                        "{:?} is not a clock; expected 0 (the board's default) or 6..=27",
                        raw.xclk_mhz
                    ),
                );
                None
            }
        };
        let camera = CameraId::new(raw.camera_id)
            .map_err(|e| problem("camera_id", e.to_string()))
            .ok();
        if raw.token.len() > 128 {
            problem("token", "longer than 128 bytes".into());
        }
        let role = match raw.mode {
            "hub" => {
                let ssid = raw.wifi_ssid;
                if ssid.is_empty() || ssid.len() > 32 {
                    problem(
                        "wifi_ssid",
                        alloc::format!(
                            "{} bytes; hub mode joins your Wi-Fi network: expected 1..=32 bytes",
                            ssid.len()
                        ),
                    );
                }
                if matches!(raw.wifi_password.len(), 1..=7 | 65..) {
                    problem(
                        "wifi_password",
                        "expected empty (open network) or 8..=64 bytes (WPA2)".into(),
                    );
                }
                let port =
                    |key, text: &str, problem: &mut dyn FnMut(&'static str, String)| match text
                        .parse::<u16>()
                    {
                        Ok(p @ 1..) => p,
                        _ => {
                            problem(key, alloc::format!("{text:?}; expected 1..=65535"));
                            1
                        }
                    };
                let control = port("control_port", raw.control_port, &mut problem);
                let stream = port("stream_port", raw.stream_port, &mut problem);
                let urls: Vec<&str> = match raw.hub_urls {
                    Some(_) if !raw.hub_url.is_empty() => {
                        problem(
                            "hub_urls",
                            "set with hub_url (or hub_host): set one of them".into(),
                        );
                        Vec::new()
                    }
                    Some(list) => {
                        let urls: Vec<&str> = list.split_whitespace().collect();
                        if urls.is_empty() {
                            problem(
                                "hub_urls",
                                "an empty list; give at least one ws://HOST (or wss://HOST) of a machine running `espcam serve`".into(),
                            );
                        } else if urls.len() > MAX_HUBS {
                            problem(
                                "hub_urls",
                                alloc::format!("{} hubs; expected at most {MAX_HUBS}", urls.len()),
                            );
                        }
                        urls
                    }
                    None if raw.hub_url.is_empty() => {
                        problem(
                            "hub_url",
                            "empty; set ws://HOST (or wss://HOST) of the machine running `espcam serve`"
                                .into(),
                        );
                        Vec::new()
                    }
                    None => alloc::vec![raw.hub_url],
                };
                let key = if raw.hub_urls.is_some() {
                    "hub_urls"
                } else {
                    "hub_url"
                };
                let mut targets = Vec::new();
                for url in urls.iter().take(MAX_HUBS) {
                    // Each error names the URL (`hub URL "http://b": expected …`).
                    match HubTarget::parse(url, control, stream) {
                        Ok(t) => targets.push(t),
                        Err(e) => problem(key, e.to_string()),
                    }
                }
                let fp = Some(raw.hub_cert_sha256).filter(|s| !s.is_empty());
                let pin_key = if fp.is_some() {
                    "hub_cert_sha256"
                } else {
                    "hub_cert"
                };
                // One pin for the list: it is the trust of its wss:// hubs, and ws:// ones of
                // a list with wss:// ones are plain (a pin with no wss:// hub is refused).
                let any_tls = targets.iter().any(HubTarget::tls);
                let (mut hubs, mut pin_error) = (Vec::new(), None);
                for t in targets {
                    let trust = if !t.tls() && any_tls {
                        Ok(Trust::Plain)
                    } else {
                        Trust::for_target(&t, fp, raw.hub_cert_pem)
                    };
                    match trust {
                        Ok(trust) => hubs.push((t, trust)),
                        // The same pin for every hub: one message is enough.
                        Err(e) => pin_error = Some(e.to_string()),
                    }
                }
                if let Some(e) = pin_error {
                    problem(pin_key, e);
                }
                let all_ok = hubs.len() == urls.len();
                let mut hubs = hubs.into_iter();
                let first = hubs.next().filter(|_| all_ok);
                let (target, trust) = match first {
                    Some((t, tr)) => (Some(t), Some(tr)),
                    None => (None, None),
                };
                let more_hubs: Vec<(HubTarget, Trust)> = hubs.collect();
                match (target, trust, camera) {
                    (Some(target), Some(trust), Some(camera)) => Some(Role::Hub {
                        wifi_ssid: ssid.into(),
                        wifi_password: raw.wifi_password.into(),
                        target,
                        trust,
                        more_hubs,
                        camera,
                        token: raw.token.into(),
                    }),
                    _ => None,
                }
            }
            "standalone" => {
                let ssid = raw.ap_ssid;
                if ssid.is_empty() || ssid.len() > 32 {
                    problem("ap_ssid", alloc::format!("{ssid:?}; expected 1..=32 bytes"));
                }
                let len = raw.ap_password.chars().count();
                if !(8..=63).contains(&len) || !raw.ap_password.is_ascii() {
                    problem(
                        "ap_password",
                        alloc::format!(
                            "standalone mode needs 8..=63 ASCII characters (WPA2), got {len}. \
                         espcam ships no default password: choose one and set it in cfg.toml."
                        ),
                    );
                }
                Some(Role::Standalone {
                    ssid: ssid.into(),
                    password: raw.ap_password.into(),
                })
            }
            other => {
                problem(
                    "mode",
                    alloc::format!("{other:?}; expected \"hub\" or \"standalone\""),
                );
                None
            }
        };
        match role {
            Some(role) if errors.is_empty() => Ok(Self { xclk_hz, role }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Whether this is the standalone (access point) topology.
    pub fn standalone(&self) -> bool {
        matches!(self.role, Role::Standalone { .. })
    }

    /// The (first) hub, in hub mode.
    pub fn hub(&self) -> Option<(&HubTarget, &Trust)> {
        match &self.role {
            Role::Hub { target, trust, .. } => Some((target, trust)),
            Role::Standalone { .. } => None,
        }
    }

    /// Every hub in order (empty in standalone mode); the shell connects to the one at
    /// `Camera::hub_index`.
    pub fn hubs(&self) -> Vec<(&HubTarget, &Trust)> {
        match &self.role {
            Role::Hub {
                target,
                trust,
                more_hubs,
                ..
            } => core::iter::once((target, trust))
                .chain(more_hubs.iter().map(|(t, tr)| (t, tr)))
                .collect(),
            Role::Standalone { .. } => Vec::new(),
        }
    }

    /// [`FirmwareConfig::hubs`] with each trust as the board's TLS stack takes it (`pin`).
    pub fn hubs_with<P>(&self, pin: impl Fn(&Trust) -> P) -> Vec<(HubTarget, P)> {
        let hubs = self.hubs().into_iter();
        hubs.map(|(target, trust)| (target.clone(), pin(trust)))
            .collect()
    }

    /// The Wi-Fi of this role: the network's name and password (empty: an open network),
    /// and whether the camera opens it as an access point (standalone) instead of joining
    /// it (hub).
    pub fn wifi(&self) -> (&str, &str, bool) {
        match &self.role {
            Role::Hub {
                wifi_ssid,
                wifi_password,
                ..
            } => (wifi_ssid, wifi_password, false),
            Role::Standalone { ssid, password } => (ssid, password, true),
        }
    }

    /// Whom `https://` firmware downloads trust: the pin of the first `wss://` hub (one pin
    /// serves every `wss://` hub of the list), else the first hub's (plain); `None`
    /// standalone.
    pub fn download_trust(&self) -> Option<&Trust> {
        let hubs = self.hubs();
        let tls = hubs.iter().find(|(t, _)| t.tls()).or(hubs.first());
        tls.map(|(_, trust)| *trust)
    }

    /// [`FirmwareConfig::camera_config`] with what the board adds: its firmware version,
    /// sensor model, board name, this boot's OTA state and the reconnect jitter's seed.
    pub fn board_camera_config(
        &self,
        firmware: &str,
        sensor: &str,
        board: &str,
        ota_boot: OtaBoot,
        seed: u64,
    ) -> Config {
        let mut config = self.camera_config();
        config.firmware = firmware.into();
        config.sensor = sensor.into();
        config.board = Some(board.into());
        config.ota_boot = ota_boot;
        config.seed = seed;
        config
    }

    /// The core's configuration for this role, with the board's timing (see
    /// [`BOARD_OTA_FETCH_TIMEOUT`]). The shell adds firmware, sensor, board and seed.
    pub fn camera_config(&self) -> Config {
        let mut config = match &self.role {
            Role::Hub {
                camera,
                token,
                more_hubs,
                ..
            } => {
                let mut c = Config::hub(camera.clone(), token.clone());
                if let crate::types::Mode::Hub(h) = &mut c.mode {
                    // At most MAX_HUBS (8) - 1 more: fits.
                    h.hubs = u8::try_from(1 + more_hubs.len()).unwrap_or(u8::MAX);
                }
                c
            }
            Role::Standalone { .. } => Config::standalone(),
        };
        config.ota.fetch_timeout = BOARD_OTA_FETCH_TIMEOUT;
        config
    }
}
