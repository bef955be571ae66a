//! Firmware updates in the virtual camera: a flash that holds images in memory, the two
//! "partitions" a virtual camera boots from across its reboots, and the HTTP range fetches
//! the core asks for.
//!
//! A virtual image is a file whose first line is `espcam-image board=virtual version=V`
//! (anything may follow); booting it means running the same simulator with `firmware = V`.
//! The boot rules copy esp-idf's app rollback: a freshly installed image boots *pending*; if
//! it restarts for any reason before the core confirmed it, the previous image boots again.
//! This module must never decide anything the core decides (ranges, retries, timeouts,
//! whether the hash matches): it only stores bytes, parses the first line, and moves bytes
//! over HTTP(S), trusting exactly the links' pin for `https://`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use espcam_camera::{OtaBoot, OtaSink, OtaSinkError};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// The board name virtual cameras report and accept images for.
pub const BOARD: &str = "virtual";

/// The first line of a virtual firmware image: `espcam-image board=B version=V`.
pub fn image_header(board: &str, version: &str) -> String {
    format!("espcam-image board={board} version={version}\n")
}

/// Reads `(board, version)` from a virtual image's first line.
pub fn parse_image(bytes: &[u8]) -> Option<(String, String)> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let rest = line.strip_prefix("espcam-image board=")?;
    let (board, version) = rest.split_once(" version=")?;
    if board.is_empty() || version.is_empty() || version.len() > 64 {
        return None;
    }
    Some((board.to_string(), version.to_string()))
}

/// The virtual flash: the inactive partition being written.
#[derive(Debug, Default)]
pub struct SimFlash {
    capacity: u32,
    expected: u32,
    staged: Vec<u8>,
    /// The version of the image `finish` accepted, to boot next.
    finished: Option<String>,
}

impl SimFlash {
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// The version `finish` accepted, if any.
    pub(crate) fn finished(&self) -> Option<&str> {
        self.finished.as_deref()
    }
}

impl OtaSink for SimFlash {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        espcam_camera::check_image_fits(size, self.capacity)?;
        self.expected = size;
        self.staged.clear();
        self.finished = None;
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), OtaSinkError> {
        if self.staged.len() + chunk.len() > self.expected as usize {
            return Err(OtaSinkError("more bytes than the image size".into()));
        }
        self.staged.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OtaSinkError> {
        // esp-idf checks the image header at `esp_ota_end`; the simulator checks its own.
        match parse_image(&self.staged) {
            Some((board, _)) if board != BOARD => Err(OtaSinkError(format!(
                "the image header names board {board:?}, expected {BOARD}"
            ))),
            Some((_, version)) => {
                self.finished = Some(version);
                self.staged = Vec::new();
                Ok(())
            }
            None => Err(OtaSinkError(
                "not an espcam image: its first line must be `espcam-image board=B version=V`"
                    .into(),
            )),
        }
    }

    fn abort(&mut self) {
        self.staged = Vec::new();
        self.finished = None;
    }
}

/// What the virtual camera boots, kept across its reboots (the otadata partition).
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    pub(crate) running: String,
    previous: Option<String>,
    pub(crate) boot: OtaBoot,
    /// Set by the core's outputs during this boot: what the next boot is.
    next: Option<(String, OtaBoot)>,
    confirm_secs: u64,
}

impl Slots {
    pub(crate) fn new(firmware: String, confirm_secs: u64) -> Self {
        Self {
            running: firmware,
            previous: None,
            boot: OtaBoot::Normal,
            next: None,
            confirm_secs,
        }
    }

    /// `SetBootAndReboot`: the next boot runs `version`, pending.
    pub(crate) fn installed(&mut self, version: String) {
        self.next = Some((version, OtaBoot::Pending));
    }

    /// `ConfirmImage`.
    pub(crate) fn confirmed(&mut self) {
        self.boot = OtaBoot::Normal;
    }

    /// `RollbackAndReboot`.
    pub(crate) fn rollback(&mut self, why: String) {
        if let Some(prev) = self.previous.clone() {
            let boot = OtaBoot::RolledBack {
                version: self.running.clone(),
                reason: why,
            };
            self.next = Some((prev, boot));
        }
    }

    /// A restart, for whatever reason: applies what this boot decided, and rolls back an
    /// image that restarts before it was confirmed (the bootloader's rule).
    pub(crate) fn restart(&mut self) {
        if let Some((version, boot)) = self.next.take() {
            if boot == OtaBoot::Pending {
                self.previous = Some(std::mem::replace(&mut self.running, version));
            } else {
                self.running = version;
            }
            self.boot = boot;
            return;
        }
        if self.boot == OtaBoot::Pending {
            let why = format!(
                "{} restarted before it reached the hub (within {} s)",
                self.running, self.confirm_secs
            );
            self.rollback(why);
            return self.restart();
        }
        self.boot = OtaBoot::Normal;
    }
}

/// The URL of an offer's `url`: the core's rule (`espcam_camera::offer_url`), which the
/// firmware follows too: an absolute path goes to the host and port the control link dialled
/// (`ws://` → `http://`, `wss://` → `https://`).
pub(crate) fn resolve(control_url: &str, url: &str) -> String {
    espcam_camera::offer_url(control_url, url)
}

/// Whom an `https://` download trusts: the hub endpoint's pinned TLS configuration (the
/// links' pin, as the firmware uses it); `None` for a plain hub.
pub(crate) type DownloadTls = Option<Arc<rustls::ClientConfig>>;

/// `GET url` with `Range: bytes=offset-(offset+len-1)`, on a connection of its own
/// (`http://`, or `https://` trusting exactly `tls`): the body of a 206 answer, or why not.
/// Bodies longer than asked are cut at `len + 1` bytes (the core refuses them).
pub(crate) async fn fetch_range(
    tls: &DownloadTls,
    url: &str,
    offset: u32,
    len: u32,
) -> Result<Bytes, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let secure = match (uri.scheme_str(), tls) {
        (Some("http"), _) => None,
        (Some("https"), Some(config)) => Some(config.clone()),
        (Some("https"), None) => {
            return Err("an https:// image from a hub without a pinned certificate".into());
        }
        _ => return Err("invalid URL: expected http:// or https://".into()),
    };
    let host = uri.host().ok_or("invalid URL: no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if secure.is_some() { 443 } else { 80 });
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            hyper::header::HOST,
            uri.authority().map_or("", |a| a.as_str()),
        )
        .header(
            hyper::header::RANGE,
            espcam_camera::range_header(offset, len),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| error_chain(&e))?;
        let resp = if let Some(config) = secure {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("invalid URL host: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {}", error_chain(&e)))?;
            send(stream, req).await?
        } else {
            send(tcp, req).await?
        };
        espcam_camera::check_range_status(resp.status().as_u16())?;
        let body = Limited::new(resp.into_body(), espcam_camera::range_body_limit(len));
        body.collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("reading the body: {e}"))
    };
    match tokio::time::timeout(Duration::from_secs(60), work).await {
        Ok(r) => r,
        Err(_) => Err("no answer within 60 s".into()),
    }
}

/// One HTTP/1.1 request on `io`; the connection is driven by a task of its own until the
/// answer's body is read (or dropped).
async fn send<S>(io: S, req: hyper::Request<Empty<Bytes>>) -> Result<Response<Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| error_chain(&e))?;
    tokio::spawn(async move {
        // Its end (or error) shows up as the request's or the body's error.
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| error_chain(&e))
}

/// `connection refused` rather than `client error (Connect)`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text = s.to_string();
        src = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_control_link() {
        assert_eq!(
            resolve(
                "ws://127.0.0.1:6971/ws/camera",
                "/api/firmware/x/image?key=k"
            ),
            "http://127.0.0.1:6971/api/firmware/x/image?key=k"
        );
        assert_eq!(resolve("ws://h:1/ws/camera", "http://o/i"), "http://o/i");
    }

    #[tokio::test]
    async fn https_needs_the_pin_and_other_schemes_are_refused() {
        let r = fetch_range(&None, "https://127.0.0.1:1/api/firmware/x/image", 0, 16).await;
        assert_eq!(
            r,
            Err("an https:// image from a hub without a pinned certificate".into())
        );
        let r = fetch_range(&None, "ftp://127.0.0.1/image", 0, 16).await;
        assert_eq!(r, Err("invalid URL: expected http:// or https://".into()));
    }

    #[test]
    fn image_header_round_trip() {
        let mut img = image_header("virtual", "espcam-sim 9").into_bytes();
        img.extend_from_slice(b"payload");
        assert_eq!(
            parse_image(&img),
            Some(("virtual".to_string(), "espcam-sim 9".to_string()))
        );
        assert_eq!(parse_image(b"garbage\n"), None);
        assert_eq!(parse_image(b"espcam-image board=virtual version=1"), None);
    }

    #[test]
    fn rollback_rules_follow_esp_idf() {
        let mut s = Slots::new("v1".into(), 120);
        s.installed("v2".into());
        s.restart();
        assert_eq!((s.running.as_str(), &s.boot), ("v2", &OtaBoot::Pending));
        // Restarted before confirming: back to v1, which reports it.
        s.restart();
        assert_eq!(s.running, "v1");
        assert!(matches!(&s.boot, OtaBoot::RolledBack { version, .. } if version == "v2"));
        s.restart();
        assert_eq!(s.boot, OtaBoot::Normal);
        // Installed and confirmed: stays.
        s.installed("v3".into());
        s.restart();
        s.confirmed();
        s.restart();
        assert_eq!((s.running.as_str(), &s.boot), ("v3", &OtaBoot::Normal));
    }
}
