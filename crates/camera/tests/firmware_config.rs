//! The firmware's `cfg.toml` rules, as `firmware/build.rs` applies them before a build and
//! the firmware again at boot: what a good hub or standalone configuration turns into, and
//! that every mistake is reported with the key to fix.

use std::time::Duration;

use espcam_camera::{
    Fingerprint, FirmwareConfig, Link, Mode, OtaBoot, RawConfig, Role, Trust, check_image_fits,
    check_range_status, range_body_limit, range_header,
};

const PEM: &str = include_str!("fixtures/hub-cert.pem");
const FP: &str = "E8:46:F9:67:AE:74:7F:61:1B:89:FD:AC:4C:9A:AD:EB:DB:A2:82:25:B1:35:FC:AE:C5:9F:79:03:70:4B:53:8E";

fn hub() -> RawConfig<'static> {
    RawConfig {
        mode: "hub",
        xclk_mhz: "0",
        wifi_ssid: "home",
        wifi_password: "correct horse",
        hub_url: "192.168.1.10",
        control_port: "6971",
        stream_port: "6972",
        camera_id: "porch",
        token: "s3cret",
        ap_ssid: "espcam",
        ..RawConfig::default()
    }
}

fn keys(raw: &RawConfig<'_>) -> Vec<&'static str> {
    match FirmwareConfig::parse(raw) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.0.iter().map(|e| e.key).collect(),
    }
}

#[test]
fn a_plain_hub_configuration() {
    let c = FirmwareConfig::parse(&hub()).unwrap();
    assert_eq!(c.xclk_hz, None);
    assert!(!c.standalone());
    let (target, trust) = c.hub().unwrap();
    assert_eq!(
        target.link_url(Link::Control),
        "ws://192.168.1.10:6971/ws/camera"
    );
    assert_eq!(*trust, Trust::Plain);
    let core = c.camera_config();
    assert!(
        matches!(&core.mode, Mode::Hub(h) if h.camera.as_str() == "porch" && h.token == "s3cret")
    );
    assert_eq!(core.ota.fetch_timeout, Duration::from_secs(60));
    // The station joins the configured network; plain downloads.
    assert_eq!(c.wifi(), ("home", "correct horse", false));
    assert_eq!(c.download_trust(), Some(&Trust::Plain));
    let board = c.board_camera_config(
        "espcam-fw 0.1.0",
        "OV3660",
        "esp32s3-eye",
        OtaBoot::Pending,
        7,
    );
    assert_eq!(
        (
            board.firmware.as_str(),
            board.sensor.as_str(),
            board.board.as_deref()
        ),
        ("espcam-fw 0.1.0", "OV3660", Some("esp32s3-eye"))
    );
    assert_eq!((board.ota_boot, board.seed), (OtaBoot::Pending, 7));
    assert_eq!(board.ota.fetch_timeout, core.ota.fetch_timeout);
}

#[test]
fn a_wss_hub_pinned_by_fingerprint_or_by_pem() {
    let c = FirmwareConfig::parse(&RawConfig {
        hub_url: "wss://hub.lan",
        hub_cert_sha256: FP,
        xclk_mhz: "20",
        ..hub()
    })
    .unwrap();
    assert_eq!(c.xclk_hz, Some(20_000_000));
    let (target, trust) = c.hub().unwrap();
    assert_eq!(
        target.link_url(Link::Stream),
        "wss://hub.lan:6972/ws/stream"
    );
    assert_eq!(*trust, Trust::Fingerprint(Fingerprint::parse(FP).unwrap()));

    let c = FirmwareConfig::parse(&RawConfig {
        hub_url: "wss://hub.lan",
        hub_cert_pem: Some(PEM),
        ..hub()
    })
    .unwrap();
    assert_eq!(c.hub().unwrap().1.fingerprint().unwrap().to_string(), FP);
}

#[test]
fn pin_mistakes_name_the_pin_key() {
    let wss = RawConfig {
        hub_url: "wss://hub.lan",
        ..hub()
    };
    assert_eq!(keys(&wss), ["hub_cert"]);
    let msg = FirmwareConfig::parse(&wss).unwrap_err().to_string();
    assert!(msg.contains("hub_cert_sha256"), "{msg}");
    assert_eq!(
        keys(&RawConfig {
            hub_cert_sha256: "12:34",
            ..wss
        }),
        ["hub_cert_sha256"]
    );
    assert_eq!(
        keys(&RawConfig {
            hub_cert_pem: Some("junk"),
            ..wss
        }),
        ["hub_cert"]
    );
    assert_eq!(
        keys(&RawConfig {
            hub_cert_sha256: FP,
            ..hub()
        }),
        ["hub_cert_sha256"]
    );
}

#[test]
fn every_hub_mode_mistake_is_reported_at_once() {
    let bad = RawConfig {
        xclk_mhz: "40",
        wifi_ssid: "",
        wifi_password: "short",
        hub_url: "http://hub",
        stream_port: "0",
        camera_id: "bad id!",
        token: &"t".repeat(129),
        ..hub()
    };
    assert_eq!(
        keys(&bad),
        [
            "xclk_mhz",
            "camera_id",
            "token",
            "wifi_ssid",
            "wifi_password",
            "stream_port",
            "hub_url"
        ]
    );
    let msg = FirmwareConfig::parse(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("`xclk_mhz`: \"40\" is not a clock; expected 0"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 7, "{msg}");
    assert_eq!(
        keys(&RawConfig {
            hub_url: "",
            ..hub()
        }),
        ["hub_url"]
    );
    assert_eq!(
        keys(&RawConfig {
            mode: "ap",
            ..hub()
        }),
        ["mode"]
    );
}

#[test]
fn standalone_mode_needs_its_own_password() {
    let ap = RawConfig {
        mode: "standalone",
        ap_password: "",
        wifi_ssid: "",
        ..hub()
    };
    assert_eq!(keys(&ap), ["ap_password"]);
    let msg = FirmwareConfig::parse(&ap).unwrap_err().to_string();
    assert!(msg.contains("espcam ships no default password"), "{msg}");
    assert_eq!(
        keys(&RawConfig {
            ap_password: "pässwörd1",
            ..ap
        }),
        ["ap_password"]
    );
    let c = FirmwareConfig::parse(&RawConfig {
        ap_password: "eight888",
        ..ap
    })
    .unwrap();
    assert!(c.standalone() && c.hub().is_none());
    assert_eq!(
        c.role,
        Role::Standalone {
            ssid: "espcam".into(),
            password: "eight888".into()
        }
    );
    assert!(matches!(c.camera_config().mode, Mode::Standalone(_)));
    // An access point with its own name and password; no hub to download from.
    assert_eq!(c.wifi(), ("espcam", "eight888", true));
    assert_eq!(c.download_trust(), None);
}

#[test]
fn range_requests_as_the_shells_perform_them() {
    assert_eq!(range_header(0, 16384), "bytes=0-16383");
    assert_eq!(range_header(16384, 1), "bytes=16384-16384");
    assert_eq!(range_header(5, 0), "bytes=5-5");
    assert_eq!(
        range_header(u32::MAX, u32::MAX),
        format!("bytes={}-{}", u32::MAX, 2 * u64::from(u32::MAX) - 1)
    );
    assert_eq!(check_range_status(206), Ok(()));
    assert_eq!(
        check_range_status(200),
        Err("HTTP 200, expected 206 Partial Content".into())
    );
    assert_eq!(range_body_limit(16384), 16385);
    assert!(check_image_fits(3 << 20, 3 << 20).is_ok());
    let e = check_image_fits((3 << 20) + 1, 3 << 20).unwrap_err();
    assert_eq!(
        e.0,
        "image of 3145729 bytes does not fit the 3145728-byte OTA partition"
    );
}

#[test]
fn what_a_boot_is_from_the_bootloaders_records() {
    assert_eq!(OtaBoot::detect(false, None), OtaBoot::Normal);
    assert_eq!(OtaBoot::detect(true, None), OtaBoot::Pending);
    assert_eq!(
        OtaBoot::detect(true, Some("v1".into())),
        OtaBoot::Pending,
        "pending wins"
    );
    let OtaBoot::RolledBack { version, reason } = OtaBoot::detect(false, Some("v2".into())) else {
        panic!("not a rollback")
    };
    assert_eq!(version, "v2");
    assert!(reason.contains("did not confirm itself"), "{reason}");
}

#[test]
fn a_list_of_hubs_in_order_with_one_pin_for_the_wss_ones() {
    let c = FirmwareConfig::parse(&RawConfig {
        hub_url: "",
        hub_urls: Some("wss://a.lan:7000  ws://10.0.0.2\n192.168.1.3"),
        hub_cert_sha256: FP,
        ..hub()
    })
    .unwrap();
    let hubs: Vec<(String, Trust)> = c
        .hubs()
        .into_iter()
        .map(|(t, tr)| (t.link_url(Link::Control), tr.clone()))
        .collect();
    let pin = Trust::Fingerprint(Fingerprint::parse(FP).unwrap());
    assert_eq!(
        hubs,
        [
            ("wss://a.lan:7000/ws/camera".to_string(), pin.clone()),
            ("ws://10.0.0.2:6971/ws/camera".to_string(), Trust::Plain),
            ("ws://192.168.1.3:6971/ws/camera".to_string(), Trust::Plain),
        ]
    );
    assert_eq!(c.hub().unwrap().0.link_url(Link::Control), hubs[0].0);
    let pinned: Vec<(String, bool)> = c
        .hubs_with(|trust| *trust != Trust::Plain)
        .iter()
        .map(|(t, p)| (t.link_url(Link::Control), *p))
        .collect();
    assert_eq!(pinned[0], (hubs[0].0.clone(), true));
    assert!(!pinned[1].1);
    let Mode::Hub(h) = c.camera_config().mode else {
        panic!("not hub mode");
    };
    assert_eq!(h.hubs, 3);
    // Downloads trust the wss:// hubs' pin, wherever that hub is in the list.
    let later = FirmwareConfig::parse(&RawConfig {
        hub_url: "",
        hub_urls: Some("ws://10.0.0.2 wss://a.lan:7000"),
        hub_cert_sha256: FP,
        ..hub()
    })
    .unwrap();
    assert_eq!(later.download_trust(), Some(&pin));
    // One hub (`hub_url`) is a list of one.
    let one = FirmwareConfig::parse(&hub()).unwrap();
    assert_eq!(one.hubs().len(), 1);
    let Mode::Hub(h) = one.camera_config().mode else {
        panic!("not hub mode");
    };
    assert_eq!(h.hubs, 1);
}

#[test]
fn a_bad_list_of_hubs_is_refused_naming_the_url() {
    let list = |urls| RawConfig {
        hub_url: "",
        hub_urls: Some(urls),
        ..hub()
    };
    let msg = FirmwareConfig::parse(&list(" \n "))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("`hub_urls`: an empty list"), "{msg}");
    let msg = FirmwareConfig::parse(&list("ws://a.lan http://b.lan:6971"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("`hub_urls`: hub URL \"http://b.lan:6971\": expected ws://"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");
    // Both keys, a pin with no wss:// hub, and more hubs than the core counts.
    assert_eq!(
        keys(&RawConfig {
            hub_urls: Some("ws://a.lan"),
            ..hub()
        }),
        ["hub_urls"]
    );
    assert_eq!(
        keys(&RawConfig {
            hub_cert_sha256: FP,
            ..list("ws://a.lan ws://b.lan")
        }),
        ["hub_cert_sha256"]
    );
    let nine = "ws://a ws://b ws://c ws://d ws://e ws://f ws://g ws://h ws://i";
    let msg = FirmwareConfig::parse(&list(nine)).unwrap_err().to_string();
    assert!(msg.contains("9 hubs; expected at most 8"), "{msg}");
    // A wss:// hub of the list without a pin.
    assert_eq!(keys(&list("ws://a.lan wss://b.lan")), ["hub_cert"]);
}

/// build.rs hands the checked values to the firmware as `key=value` lines, which the
/// firmware reads back: every value survives as it was (spaces, `=`, non-ASCII, empty),
/// `hub_urls` stays unset or set, and a value that cannot be one line is refused.
#[test]
fn exported_values_read_back_as_they_were() {
    let raw = RawConfig {
        wifi_password: " pass = wörd ",
        token: "",
        hub_url: "",
        hub_urls: Some("wss://a.lan:7000 ws://10.0.0.2"),
        hub_cert_pem: Some(PEM),
        ..hub()
    };
    let text = raw.export().unwrap();
    assert!(text.contains("wifi_password= pass = wörd \n"), "{text}");
    assert!(
        !text.contains("BEGIN CERTIFICATE"),
        "the PEM is embedded separately"
    );
    let back = RawConfig::import(&text);
    assert_eq!(back.hub_cert_pem, None);
    let back = RawConfig {
        hub_cert_pem: Some(PEM),
        ..back
    };
    assert_eq!(format!("{back:?}"), format!("{raw:?}"));
    assert_eq!(
        FirmwareConfig::parse(&back).unwrap(),
        FirmwareConfig::parse(&raw).unwrap()
    );
    // Not set stays not set.
    let one = hub();
    assert_eq!(RawConfig::import(&one.export().unwrap()).hub_urls, None);
    let err = RawConfig {
        ap_password: "two\nlines",
        ..hub()
    }
    .export()
    .unwrap_err();
    assert_eq!(err.key, "ap_password");
    assert_eq!(err.problem, "contains a line break; expected a single line");
}
