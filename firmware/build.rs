//! Build script: reads and checks `cfg.toml`, hands it to the firmware as compile-time
//! environment variables (`ESPCAM_*`, read with `env!` in `src/config.rs`), then lets embuild
//! pass on the ESP-IDF link and cfg flags.
//!
//! Every check a person could fail happens here, with a message that says what to change, so
//! a bad configuration never reaches a board. It must never pick a default for a secret.

use std::fmt::Write as _;
use std::process::exit;

// The same pin-map table the firmware uses: pure data, so the host can compile it too.
#[allow(dead_code)]
#[path = "src/boards.rs"]
mod boards;

const CFG: &str = "cfg.toml";

/// Every key cfg.toml may hold, with its default when it may be left out.
const KEYS: &[(&str, Option<&str>)] = &[
    ("mode", None),
    ("board", None),
    ("xclk_mhz", Some("0")),
    ("wifi_ssid", Some("")),
    ("wifi_password", Some("")),
    ("hub_host", Some("")),
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
        Ok(values) => {
            for (key, value) in values {
                println!("cargo:rustc-env=ESPCAM_{}={value}", key.to_uppercase());
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

/// Parses and validates cfg.toml; returns every key with its value, or all problems found.
fn check(text: &str) -> Result<Vec<(&'static str, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let mut errors = String::new();
    for key in table.keys() {
        if !KEYS.iter().any(|(k, _)| k == key) {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
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
    let mut problem = |cond: bool, msg: String| {
        if cond {
            errors.push_str(&msg);
            errors.push('\n');
        }
    };

    let mode = get("mode");
    problem(
        mode != "hub" && mode != "standalone",
        format!("`mode` is {mode:?}; expected \"hub\" or \"standalone\""),
    );
    let board = get("board");
    let names: Vec<&str> = boards::BOARDS.iter().map(|b| b.name).collect();
    problem(
        boards::by_name(board).is_none(),
        format!("`board` is {board:?}; expected one of {}", names.join(", ")),
    );
    let xclk = get("xclk_mhz").parse::<u32>();
    problem(
        !matches!(xclk, Ok(0 | 6..=27)),
        format!(
            "`xclk_mhz` is {:?}; expected 0 (board default) or 6..=27",
            get("xclk_mhz")
        ),
    );
    if let Err(e) = espcam_proto::CameraId::new(get("camera_id")) {
        problem(true, format!("`camera_id`: {e}"));
    }
    problem(
        get("token").len() > 128,
        "`token` is longer than 128 bytes".into(),
    );

    if mode == "hub" {
        problem(
            get("wifi_ssid").is_empty(),
            "`wifi_ssid` is empty; hub mode joins your Wi-Fi network".into(),
        );
        problem(
            get("wifi_ssid").len() > 32,
            "`wifi_ssid` is longer than 32 bytes (the 802.11 limit)".into(),
        );
        problem(
            matches!(get("wifi_password").len(), 1..=7 | 65..),
            "`wifi_password` must be empty (open network) or 8..=64 bytes (WPA2)".into(),
        );
        problem(
            get("hub_host").is_empty(),
            "`hub_host` is empty; set the host name or IP of the machine running `espcam serve`"
                .into(),
        );
        let host = get("hub_host");
        problem(
            host.contains(['/', ':', ' ']),
            format!(
                "`hub_host` is {host:?}; expected just a host name or IP (no scheme, port, path)"
            ),
        );
        for port in ["control_port", "stream_port"] {
            problem(
                !matches!(get(port).parse::<u16>(), Ok(1..)),
                format!("`{port}` is {:?}; expected 1..=65535", get(port)),
            );
        }
    }
    if mode == "standalone" {
        let ssid = get("ap_ssid");
        problem(
            ssid.is_empty() || ssid.len() > 32,
            format!("`ap_ssid` is {ssid:?}; expected 1..=32 bytes"),
        );
        let len = get("ap_password").chars().count();
        problem(
            !(8..=63).contains(&len) || !get("ap_password").is_ascii(),
            format!(
                "standalone mode needs `ap_password`: 8..=63 ASCII characters (WPA2), got {len}.\n\
                 espcam ships no default password: choose one and set it in cfg.toml."
            ),
        );
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}
