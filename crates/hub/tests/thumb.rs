//! `GET /api/snapshots/{id}/thumb.jpg` end to end: a hub on loopback, test cameras at several
//! resolutions, saved snapshots, and thumbnails decoded to check their size, aspect ratio,
//! caching headers and the canonical-id rule.
// Test code: unwrap is an assertion.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use common::{CamOpts, TestCamera, TestHub, decode};
use espcam_proto::{Resolution, Settings};

/// Saves a snapshot of a camera sending `res` frames and returns its id.
async fn snapshot_at(hub: &TestHub, id: &str, res: Resolution) -> (i64, TestCamera) {
    let mut opts = CamOpts::new(id);
    opts.settings = Settings {
        resolution: res,
        ..Settings::default()
    };
    opts.fps = 5;
    let cam = TestCamera::connect(hub, opts).await;
    hub.wait_camera(id, |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let r = hub.post(&format!("/api/cameras/{id}/snapshots"), "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    (r.json()["id"].as_i64().unwrap(), cam)
}

#[tokio::test]
async fn thumbnails_are_small_jpegs_with_the_snapshots_aspect_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let mut cams = Vec::new();
    // 4:3 (IDCT scaling is exact), 16:9 (1/8 then the box filter), and a size whose
    // thumbnail height is not a whole number of pixels.
    for (id, res, want) in [
        ("cam-vga", Resolution::Vga, (160, 120)),
        ("cam-hd", Resolution::Hd, (160, 90)),
        ("cam-hqvga", Resolution::Hqvga, (160, 117)),
    ] {
        let (snap, cam) = snapshot_at(&hub, id, res).await;
        cams.push(cam);
        let full = hub.get(&format!("/api/snapshots/{snap}.jpg")).await;
        let (fw, fh) = decode(&full.body);
        assert_eq!((fw, fh), (res.width(), res.height()));

        let r = hub.get(&format!("/api/snapshots/{snap}/thumb.jpg")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.headers["content-type"], "image/jpeg");
        assert_eq!(
            r.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let (w, h) = decode(&r.body);
        assert_eq!((w, h), want, "{id}");
        assert_eq!(
            (
                r.headers["x-espcam-width"].as_str(),
                r.headers["x-espcam-height"].as_str()
            ),
            (w.to_string().as_str(), h.to_string().as_str())
        );
        assert!(w <= 160);
        let (ratio, full_ratio) = (f64::from(w) / f64::from(h), f64::from(fw) / f64::from(fh));
        assert!(
            (ratio - full_ratio).abs() / full_ratio < 0.02,
            "{id}: thumbnail {w}×{h} vs {fw}×{fh}"
        );
        // Fewer pixels, fewer bytes (a quarter or less from VGA up).
        let factor = if fw >= 640 { 4 } else { 1 };
        assert!(
            r.body.len() * factor < full.body.len(),
            "{id}: thumbnail {} bytes, full {} bytes",
            r.body.len(),
            full.body.len()
        );
    }

    // One canonical URL: no leading zeros, no names; unknown ids are 404s too.
    for bad in ["01", "abc", "0", "1.jpg", "999999"] {
        let r = hub.get(&format!("/api/snapshots/{bad}/thumb.jpg")).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{bad}");
    }
    let msg = hub.get("/api/snapshots/01/thumb.jpg").await.error();
    assert!(msg.contains("such as 12"), "{msg}");

    // A deleted snapshot has no thumbnail either.
    let list = hub.get("/api/snapshots?camera=cam-vga").await.json();
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(
        hub.delete(&format!("/api/snapshots/{id}")).await.status,
        204
    );
    assert_eq!(
        hub.get(&format!("/api/snapshots/{id}/thumb.jpg"))
            .await
            .status,
        404
    );
    for cam in cams {
        cam.kill();
    }
    hub.stop().await;
}
