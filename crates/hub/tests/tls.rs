//! TLS on both ports (issue 15, point 6): a hub started with a self-signed certificate
//! (`--tls-self-signed`) takes a virtual camera over `wss://` on both camera sockets, pinned
//! to that certificate as a real camera pins it (`cert_pem`), and serves a viewer over
//! `https://`; a client speaking plain HTTP to it gets no HTTP answer; a camera pinned by
//! the printed fingerprint takes a firmware update from it, downloaded over `https://`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Resp, TestHub, decode, parse_response};
use espcam_hub::Config;
use espcam_hub::config::TlsSource;
use espcam_proto::CameraId;
use espcam_sim::{HubCamera, HubCameraConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client configuration that trusts exactly the hub's certificate.
fn pinned(cert_pem: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// `GET path` over TLS, `Connection: close`, the whole answer.
async fn https_get(
    tls: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    path: &str,
) -> Resp {
    https(tls, addr, "GET", path, None).await
}

/// `method path` over TLS with an optional JSON body, `Connection: close`, the whole answer.
async fn https(
    tls: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Resp {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = ServerName::IpAddress(addr.ip().into());
    let mut s = connector.connect(name, tcp).await.unwrap();
    let body = match json {
        Some(b) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => "\r\n".to_string(),
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body}");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // A close_notify-less end is fine here: the body length is checked by parse_response.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

#[tokio::test]
async fn a_camera_over_wss_and_a_viewer_over_https_with_a_self_signed_hub() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.tls = TlsSource::SelfSigned;
    let hub = TestHub::start(config).await;
    // The hub writes its certificate while starting up.
    let cert = dir.path().join("tls/cert.pem");
    for _ in 0..100 {
        if cert.exists() && dir.path().join("tls/key.pem").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cert.exists(),
        "the self-signed certificate is kept in the data directory"
    );
    let tls = pinned(&cert);

    let mut cam = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new("cam-tls").unwrap(),
        "",
    );
    cam.control_url = cam.control_url.replacen("ws://", "wss://", 1);
    cam.stream_url = cam.stream_url.replacen("ws://", "wss://", 1);
    cam.tls = Some(tls.clone());
    cam.fps = 10;
    let _cam = HubCamera::spawn(cam);

    // Frames arrive through the stream socket only: a decoded snapshot proves both
    // camera sockets (hello on control, frames on stream) and the viewer side work on TLS.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = https_get(&tls, hub.http, "/api/cameras/cam-tls/snapshot.jpg").await;
        if r.status == 200 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (w, h) = decode(&r.body);
    assert_eq!((w, h), (640, 480), "the camera's default VGA frame");
    let cams = https_get(&tls, hub.http, "/api/cameras/cam-tls").await;
    assert_eq!(cams.status, 200);
    assert_eq!(cams.json()["online"], true, "{}", cams.text());

    // Plain HTTP on the TLS port gets no HTTP answer (no fallback to clear text).
    for addr in [hub.http, hub.stream] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(
            !buf.starts_with(b"HTTP/"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }
    // A client that does not trust the certificate cannot connect.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let other_pem = dir.path().join("other.pem");
    std::fs::write(&other_pem, other.cert.pem()).unwrap();
    let stranger = pinned(&other_pem);
    let tcp = TcpStream::connect(hub.http).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(stranger)
        .connect(ServerName::IpAddress(hub.http.ip().into()), tcp)
        .await;
    assert!(refused.is_err(), "a certificate not pinned was accepted");
    hub.stop().await;
}

/// A virtual camera configured as a board is (`hub_url = "wss://…"` and
/// `hub_cert_sha256` = the fingerprint the hub prints, through the core's
/// `FirmwareConfig` rules) reaches a self-signed hub; the same camera with another
/// fingerprint never gets in.
#[tokio::test]
async fn a_camera_pinned_by_the_printed_fingerprint_connects_and_a_wrong_pin_does_not() {
    use espcam_camera::{FirmwareConfig, RawConfig, Trust};

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.tls = TlsSource::SelfSigned;
    let hub = TestHub::start(config).await;
    let cert = dir.path().join("tls/cert.pem");
    for _ in 0..100 {
        if cert.exists() && dir.path().join("tls/key.pem").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let der = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let printed = espcam_hub::net::tls::fingerprint(&der);

    let stream = hub.stream.port().to_string();
    let url = format!("wss://127.0.0.1:{}", hub.http.port());
    let board = |id: &str, fingerprint: &str| {
        let fw = FirmwareConfig::parse(&RawConfig {
            mode: "hub",
            xclk_mhz: "0",
            wifi_ssid: "home",
            hub_url: &url,
            control_port: "6971",
            stream_port: &stream,
            camera_id: id,
            hub_cert_sha256: fingerprint,
            ..RawConfig::default()
        })
        .unwrap();
        let (target, trust) = fw.hub().unwrap();
        assert!(matches!(trust, Trust::Fingerprint(_)));
        let mut cam =
            HubCameraConfig::for_target(target, trust, CameraId::new(id).unwrap(), "").unwrap();
        cam.fps = 10;
        cam
    };
    let _good = HubCamera::spawn(board("cam-pin", &printed));
    let wrong = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let _wrong = HubCamera::spawn(board("cam-wrong-pin", wrong));

    let tls = pinned(&cert);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = https_get(&tls, hub.http, "/api/cameras/cam-pin/snapshot.jpg").await;
        if r.status == 200 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(decode(&r.body), (640, 480));
    // By now the wrong pin has had several seconds of attempts: it never registered.
    let cams = https_get(&tls, hub.http, "/api/cameras").await;
    assert_eq!(cams.status, 200);
    let text = cams.text();
    assert!(text.contains("cam-pin"), "{text}");
    assert!(
        !text.contains("cam-wrong-pin"),
        "a camera with a wrong pin got in: {text}"
    );
    hub.stop().await;
}

/// Waits for the self-signed hub's certificate and returns its DER.
async fn hub_certificate(dir: &std::path::Path) -> CertificateDer<'static> {
    let cert = dir.join("tls/cert.pem");
    for _ in 0..100 {
        if cert.exists() && dir.join("tls/key.pem").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// A camera built as a board is for a `--tls-self-signed` hub (`hub_url = "wss://…"`,
/// `hub_cert_sha256` = the printed fingerprint) takes a firmware update through the hub:
/// the image is downloaded over `https://` with the same pin as the links, the camera
/// reboots into it and `GET /api/cameras` lists the new version.
#[tokio::test]
async fn a_pinned_camera_updates_its_firmware_from_a_tls_hub() {
    use espcam_camera::{FirmwareConfig, RawConfig};
    use espcam_hub::firmware::Firmware;

    const NEW: &str = "espcam-sim 9.9.9";
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.tls = TlsSource::SelfSigned;
    let hub = TestHub::start(config).await;
    let der = hub_certificate(dir.path()).await;
    let printed = espcam_hub::net::tls::fingerprint(&der);
    let tls = pinned(&dir.path().join("tls/cert.pem"));

    // More than one range request (16 KiB each), added as `espcam firmware add` adds it.
    let mut img = espcam_sim::ota::image_header("virtual", NEW).into_bytes();
    img.extend((0..100_000).map(|i| (i * 7 % 253) as u8));
    let src = dir.path().join("new.img");
    std::fs::write(&src, &img).unwrap();
    let added = Firmware::open(dir.path())
        .unwrap()
        .add_file(&src, None, None)
        .unwrap();

    let url = format!("wss://127.0.0.1:{}", hub.http.port());
    let stream = hub.stream.port().to_string();
    let fw = FirmwareConfig::parse(&RawConfig {
        mode: "hub",
        xclk_mhz: "0",
        wifi_ssid: "home",
        hub_url: &url,
        control_port: "6971",
        stream_port: &stream,
        camera_id: "cam-tls-ota",
        hub_cert_sha256: &printed,
        ..RawConfig::default()
    })
    .unwrap();
    let (target, trust) = fw.hub().unwrap();
    let mut cam =
        HubCameraConfig::for_target(target, trust, CameraId::new("cam-tls-ota").unwrap(), "")
            .unwrap();
    cam.fps = 5;
    cam.reboot_delay = Duration::from_millis(100);
    let cam = HubCamera::spawn(cam);

    let listed = |pred: fn(&serde_json::Value) -> bool| {
        let tls = tls.clone();
        let addr = hub.http;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut last = serde_json::Value::Null;
            while tokio::time::Instant::now() < deadline {
                let list = https_get(&tls, addr, "/api/cameras").await.json();
                if let Some(c) = list
                    .as_array()
                    .and_then(|a| a.iter().find(|c| c["id"] == "cam-tls-ota"))
                {
                    if pred(c) {
                        return c.clone();
                    }
                    last = c.clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("cam-tls-ota never reached the expected state; last seen: {last}");
        }
    };
    let before = listed(|c| c["online"] == true).await;
    assert_eq!(before["firmware"], espcam_sim::FIRMWARE);

    let r = https(
        &tls,
        hub.http,
        "POST",
        "/api/cameras/cam-tls-ota/update",
        Some(&format!(r#"{{"firmware":"{}"}}"#, added.id)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());

    let done = listed(|c| c["ota"]["phase"] == "done" || c["ota"]["phase"] == "failed").await;
    assert!(done["ota"]["error"].is_null(), "{done}");
    assert_eq!(done["ota"]["phase"], "done", "{done}");
    assert_eq!(done["firmware"], NEW, "{done}");
    assert_eq!(done["online"], true);
    assert_eq!(done["ota"]["bytes"], img.len());
    let status = cam.status();
    assert_eq!(status.boots, 2, "exactly one reboot");
    assert_eq!(status.firmware, NEW);
    cam.stop().await;
    hub.stop().await;
}
