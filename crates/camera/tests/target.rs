//! The hub URL and certificate pin rules the firmware and the simulator share: which URLs
//! a camera dials for each configuration, how a firmware image URL is resolved, and which
//! fingerprints and PEM files it accepts. The fingerprint fixture was computed by openssl
//! (`openssl x509 -noout -fingerprint -sha256`), an implementation independent of ours.

use espcam_camera::{
    Fingerprint, HubTarget, Link, PinError, TargetError, Trust, TrustError, offer_url,
    pem_certificate,
};

const PEM: &str = include_str!("fixtures/hub-cert.pem");
const OPENSSL_FP: &str = "E8:46:F9:67:AE:74:7F:61:1B:89:FD:AC:4C:9A:AD:EB:DB:A2:82:25:B1:35:FC:AE:C5:9F:79:03:70:4B:53:8E";

#[test]
fn urls_for_each_way_of_naming_the_hub() {
    let cases = [
        (
            "192.168.1.10",
            "ws://192.168.1.10:6971/ws/camera",
            "ws://192.168.1.10:6972/ws/stream",
        ),
        (
            "ws://hub.lan",
            "ws://hub.lan:6971/ws/camera",
            "ws://hub.lan:6972/ws/stream",
        ),
        (
            "wss://hub.lan",
            "wss://hub.lan:6971/ws/camera",
            "wss://hub.lan:6972/ws/stream",
        ),
        (
            "wss://hub.lan:7443/",
            "wss://hub.lan:7443/ws/camera",
            "wss://hub.lan:6972/ws/stream",
        ),
        (
            "wss://[fd00::1]:7000",
            "wss://[fd00::1]:7000/ws/camera",
            "wss://[fd00::1]:6972/ws/stream",
        ),
        (
            "ws://[::1]",
            "ws://[::1]:6971/ws/camera",
            "ws://[::1]:6972/ws/stream",
        ),
    ];
    for (url, control, stream) in cases {
        let t = HubTarget::parse(url, 6971, 6972).unwrap();
        assert_eq!(t.link_url(Link::Control), control, "{url}");
        assert_eq!(t.link_url(Link::Stream), stream, "{url}");
        assert_eq!(t.tls(), url.starts_with("wss://"), "{url}");
    }
}

#[test]
fn unusable_hub_urls_say_what_is_wrong() {
    type Want = fn(String) -> TargetError;
    let cases: [(&str, Want); 9] = [
        ("http://hub", TargetError::Scheme),
        ("https://hub:6971", TargetError::Scheme),
        ("wss://", TargetError::Host),
        ("ws://hub name", TargetError::Host),
        ("ws://::1", TargetError::Host),
        ("wss://[::1", TargetError::Host),
        ("ws://hub:0", TargetError::Port),
        ("ws://hub:99999", TargetError::Port),
        ("ws://hub/ws/camera", TargetError::Path),
    ];
    for (url, want) in cases {
        assert_eq!(
            HubTarget::parse(url, 6971, 6972),
            Err(want(url.into())),
            "{url}"
        );
    }
    assert!(matches!(
        HubTarget::parse("ws://user@hub", 6971, 6972),
        Err(TargetError::Path(_))
    ));
    let msg = HubTarget::parse("http://hub", 6971, 6972)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("expected ws://HOST[:PORT], wss://HOST[:PORT]"),
        "{msg}"
    );
}

#[test]
fn image_urls_follow_the_control_link_and_its_tls() {
    let plain = HubTarget::parse("hub.lan", 6971, 6972).unwrap();
    let tls = HubTarget::parse("wss://hub.lan:7443", 6971, 6972).unwrap();
    let path = "/api/firmware/3/image?key=k";
    assert_eq!(
        plain.image_url(path),
        "http://hub.lan:6971/api/firmware/3/image?key=k"
    );
    assert_eq!(
        tls.image_url(path),
        "https://hub.lan:7443/api/firmware/3/image?key=k"
    );
    assert_eq!(tls.image_url("https://cdn/x.bin"), "https://cdn/x.bin");
    assert_eq!(
        offer_url("wss://127.0.0.1:1/ws/camera", "/i"),
        "https://127.0.0.1:1/i"
    );
}

#[test]
fn fingerprints_are_read_as_the_hub_prints_them() {
    let fp = Fingerprint::of_pem(PEM).unwrap();
    assert_eq!(fp.to_string(), OPENSSL_FP);
    assert_eq!(Fingerprint::parse(OPENSSL_FP).unwrap(), fp);
    assert_eq!(Fingerprint::parse(&OPENSSL_FP.to_lowercase()).unwrap(), fp);
    assert_eq!(
        Fingerprint::parse(&format!("  {OPENSSL_FP}\n")).unwrap(),
        fp
    );
    assert_eq!(
        Fingerprint::parse(&OPENSSL_FP.replace(':', "")).unwrap(),
        fp
    );
    let der = pem_certificate(PEM).unwrap();
    assert!(fp.matches(&der));
    let mut other = der.clone();
    other[40] ^= 1;
    assert!(!fp.matches(&other), "one flipped bit must not match");
}

#[test]
fn malformed_fingerprints_are_refused() {
    let short = &OPENSSL_FP[..OPENSSL_FP.len() - 3];
    let wrong_group = OPENSSL_FP.replacen("E8:46", "E84:6", 1);
    let not_hex = OPENSSL_FP.replacen("E8", "G8", 1);
    for bad in [
        "",
        "SHA256:abc",
        short,
        &wrong_group,
        &not_hex,
        &"A".repeat(63),
    ] {
        assert!(
            matches!(Fingerprint::parse(bad), Err(PinError::Fingerprint(_))),
            "{bad:?}"
        );
    }
    let msg = Fingerprint::parse("12:34").unwrap_err().to_string();
    assert!(msg.contains("AB:CD:"), "{msg}");
}

#[test]
fn pem_files_without_a_certificate_are_refused() {
    assert_eq!(pem_certificate("hello"), Err(PinError::NoCertificate));
    let key = "-----BEGIN PRIVATE KEY-----\nTWFu\n-----END PRIVATE KEY-----\n";
    assert_eq!(pem_certificate(key), Err(PinError::NoCertificate));
    let broken = "-----BEGIN CERTIFICATE-----\nTW!u\n-----END CERTIFICATE-----\n";
    assert_eq!(pem_certificate(broken), Err(PinError::Base64));
}

#[test]
fn a_wss_hub_takes_exactly_one_pin_and_a_ws_hub_none() {
    let ws = HubTarget::parse("ws://hub", 6971, 6972).unwrap();
    let wss = HubTarget::parse("wss://hub", 6971, 6972).unwrap();
    let fp = Fingerprint::parse(OPENSSL_FP).unwrap();
    assert_eq!(Trust::for_target(&ws, None, None), Ok(Trust::Plain));
    assert_eq!(
        Trust::for_target(&wss, Some(OPENSSL_FP), None),
        Ok(Trust::Fingerprint(fp))
    );
    let pem = Trust::for_target(&wss, None, Some(PEM)).unwrap();
    assert_eq!(pem, Trust::Pem(PEM.into()));
    assert_eq!(pem.fingerprint(), Some(fp));
    assert_eq!(Trust::for_target(&wss, None, None), Err(TrustError::NoPin));
    assert_eq!(
        Trust::for_target(&wss, Some(OPENSSL_FP), Some(PEM)),
        Err(TrustError::TwoPins)
    );
    assert_eq!(
        Trust::for_target(&ws, Some(OPENSSL_FP), None),
        Err(TrustError::PinWithoutTls)
    );
    assert!(matches!(
        Trust::for_target(&wss, Some("nope"), None),
        Err(TrustError::Pin(PinError::Fingerprint(_)))
    ));
    assert_eq!(
        Trust::for_target(&wss, None, Some("not a pem")),
        Err(TrustError::Pin(PinError::NoCertificate))
    );
}

/// The board's mbedtls verify callback: the server's certificate (depth 0) passes only when
/// it is the pinned one; the chain above it is not what the pin names.
#[test]
fn the_verify_callback_accepts_only_the_pinned_server_certificate() {
    const NOT_TRUSTED: u32 = 0x08;
    let der = espcam_camera::pem_certificate(PEM).unwrap();
    let pin = Fingerprint::parse(OPENSSL_FP).unwrap();
    let other = Fingerprint([0; 32]);
    assert_eq!(
        Fingerprint::verify_flags(Some(&pin), 0, &der, NOT_TRUSTED),
        0
    );
    assert_eq!(
        Fingerprint::verify_flags(Some(&other), 0, &der, NOT_TRUSTED),
        NOT_TRUSTED
    );
    assert_eq!(
        Fingerprint::verify_flags(None, 0, &der, NOT_TRUSTED),
        NOT_TRUSTED
    );
    assert_eq!(
        Fingerprint::verify_flags(Some(&other), 1, b"ca", NOT_TRUSTED),
        0
    );
}
