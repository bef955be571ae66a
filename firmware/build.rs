//! Build script: reads and checks `cfg.toml`, hands it to the firmware as
//! `$OUT_DIR/cfg.env` (`RawConfig::export`, read back by `src/config.rs` with
//! `RawConfig::import`) and as compile-time environment variables (`ESPCAM_*`: `env!` for
//! the mode and the board), then lets embuild pass on the ESP-IDF link and cfg flags.
//!
//! Every check a person could fail happens here, with a message that says what to change, so
//! a bad configuration never reaches a board: the TOML shape and the board name here, every
//! value rule in `espcam_camera::FirmwareConfig::parse` (host-tested, and run again by the
//! firmware at boot). It must never pick a default for a secret. The PEM file `hub_cert`
//! names is copied NUL-terminated to `$OUT_DIR/hub-cert.pem` (empty when unused), where
//! `src/config.rs` embeds it.

use std::fmt::Write as _;
use std::process::exit;

use espcam_camera::{FirmwareConfig, RawConfig};

// The same pin-map table the firmware uses: pure data, so the host can compile it too.
#[allow(dead_code)]
#[path = "src/boards.rs"]
mod boards;

const CFG: &str = "cfg.toml";

/// The key holding a list: several hubs (a cluster's nodes), instead of `hub_url`. Passed on
/// as `ESPCAM_HUB_URLS`, the URLs separated by spaces (empty: not set).
const HUB_URLS: &str = "hub_urls";

/// Every key cfg.toml may hold, with its default when it may be left out.
const KEYS: &[(&str, Option<&str>)] = &[
    ("mode", None),
    ("board", None),
    ("xclk_mhz", Some("0")),
    ("wifi_ssid", Some("")),
    ("wifi_password", Some("")),
    ("hub_url", Some("")),
    // The older name of `hub_url`, for a bare host (plain ws://).
    ("hub_host", Some("")),
    ("hub_cert_sha256", Some("")),
    ("hub_cert", Some("")),
    ("control_port", Some("6971")),
    ("stream_port", Some("6972")),
    ("camera_id", Some("cam-1")),
    ("token", Some("")),
    ("ap_ssid", Some("espcam")),
    ("ap_password", Some("")),
];

fn main() {
    println!("cargo:rerun-if-changed={CFG}");
    println!("cargo:rerun-if-changed=src/boards.rs");
    let text = match std::fs::read_to_string(CFG) {
        Ok(text) => text,
        Err(e) => fail(&format!(
            "cannot read firmware/{CFG} ({e}).\n\
             Create it from the example and fill in your Wi-Fi and hub details:\n\
             \n    cd firmware && cp cfg.toml.example cfg.toml\n"
        )),
    };
    match check(&text) {
        Ok((values, pem, exported)) => {
            for (key, value) in values {
                println!("cargo:rustc-env=ESPCAM_{}={value}", key.to_uppercase());
            }
            let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
            let pem = pem.map(|p| p + "\0").unwrap_or_default();
            for (file, text) in [("hub-cert.pem", pem), ("cfg.env", exported)] {
                if let Err(e) = std::fs::write(out.join(file), text) {
                    fail(&format!("cannot write $OUT_DIR/{file}: {e}"));
                }
            }
        }
        Err(errors) => fail(&errors),
    }
    // Link arguments and `esp_idf_*` cfgs collected by esp-idf-sys's build.
    embuild::espidf::sysenv::output();
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: firmware/{CFG}: {message}");
    exit(1);
}

/// What `check` hands on: every key with its value (for `env!`), the `hub_cert` PEM, and
/// the values as `RawConfig::export` writes them (for `src/config.rs`).
type Checked = (Vec<(&'static str, String)>, Option<String>, String);

/// Parses and validates cfg.toml; returns what the firmware gets, or all problems found.
fn check(text: &str) -> Result<Checked, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let mut errors = String::new();
    for key in table.keys() {
        if key != HUB_URLS && !KEYS.iter().any(|(k, _)| k == key) {
            let mut known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            known.push(HUB_URLS);
            let _ = writeln!(
                errors,
                "unknown key `{key}`; known keys: {}",
                known.join(", ")
            );
        }
    }
    let mut values = Vec::new();
    for &(key, default) in KEYS {
        let value = match (table.get(key), default) {
            (Some(toml::Value::String(s)), _) => s.clone(),
            (Some(toml::Value::Integer(i)), _) => i.to_string(),
            (Some(other), _) => {
                let _ = writeln!(errors, "`{key}` must be a string or a number, not {other}");
                continue;
            }
            (None, Some(default)) => default.to_string(),
            (None, None) => {
                let _ = writeln!(errors, "`{key}` is missing (see cfg.toml.example)");
                continue;
            }
        };
        if value.contains(['\n', '\r', '\0']) {
            let _ = writeln!(errors, "`{key}` must be a single line");
        }
        values.push((key, value));
    }
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    };
    let board = get("board");
    if boards::by_name(board).is_none() {
        let names: Vec<&str> = boards::BOARDS.iter().map(|b| b.name).collect();
        let _ = writeln!(
            errors,
            "`board` is {board:?}; expected one of {}",
            names.join(", ")
        );
    }
    let url = match (get("hub_url"), get("hub_host")) {
        (url, "") => url.to_string(),
        ("", host) => host.to_string(),
        _ => {
            let _ = writeln!(errors, "`hub_host` is the older name of `hub_url`: set one");
            String::new()
        }
    };
    // `hub_urls = ["wss://a:6971", "ws://b:6971"]`: strings without spaces, checked as URLs
    // by the core (which refuses an empty list).
    let hub_urls = match table.get(HUB_URLS) {
        None => None,
        Some(toml::Value::Array(items)) => {
            let mut urls = Vec::new();
            for item in items {
                match item {
                    toml::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                        urls.push(s.as_str())
                    }
                    other => {
                        let _ = writeln!(
                            errors,
                            "`{HUB_URLS}`: {other} is not a hub URL; expected strings such as \"ws://HOST:6971\" without spaces"
                        );
                    }
                }
            }
            Some(urls.join(" "))
        }
        Some(other) => {
            let _ = writeln!(
                errors,
                "`{HUB_URLS}` must be a list such as [\"wss://a:6971\", \"ws://b:6971\"], not {other}"
            );
            None
        }
    };
    let pem = match get("hub_cert") {
        "" => None,
        path => {
            println!("cargo:rerun-if-changed={path}");
            match std::fs::read_to_string(path) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    let _ = writeln!(errors, "`hub_cert`: cannot read firmware/{path}: {e}");
                    Some(String::new())
                }
            }
        }
    };
    let raw = RawConfig {
        mode: get("mode"),
        xclk_mhz: get("xclk_mhz"),
        wifi_ssid: get("wifi_ssid"),
        wifi_password: get("wifi_password"),
        hub_url: &url,
        hub_urls: hub_urls.as_deref(),
        control_port: get("control_port"),
        stream_port: get("stream_port"),
        camera_id: get("camera_id"),
        token: get("token"),
        hub_cert_sha256: get("hub_cert_sha256"),
        hub_cert_pem: pem.as_deref(),
        ap_ssid: get("ap_ssid"),
        ap_password: get("ap_password"),
    };
    if let Err(e) = FirmwareConfig::parse(&raw) {
        errors.push_str(&e.to_string());
    }
    // Line breaks were refused above already; this only keeps the two checks in step.
    let exported = raw.export().unwrap_or_else(|e| {
        if errors.is_empty() {
            let _ = writeln!(errors, "{e}");
        }
        String::new()
    });
    let mut values = values;
    values.retain(|(k, _)| *k != "hub_url" && *k != "hub_host");
    values.push(("hub_url", url));
    values.push((HUB_URLS, hub_urls.unwrap_or_default()));
    if errors.is_empty() {
        Ok((values, pem, exported))
    } else {
        Err(errors)
    }
}
