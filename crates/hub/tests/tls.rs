//! TLS on both ports (issue 15, point 6): a hub started with a self-signed certificate
//! (`--tls-self-signed`) takes a virtual camera over `wss://` on both camera sockets, pinned
//! to that certificate as a real camera pins it (`cert_pem`), and serves a viewer over
//! `https://`; a client speaking plain HTTP to it gets no HTTP answer.

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
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = ServerName::IpAddress(addr.ip().into());
    let mut s = connector.connect(name, tcp).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
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
