//! The recordings panel in a real browser: turn recording on for a virtual camera, play the
//! recording from the timeline into the live canvas (older capture times, the playback
//! badge, speed), go back to live, select a range on the timeline and download it as MKV and
//! AVI (checked with `ffprobe` when it is installed).

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use serde_json::Value;

use crate::driver::Browser;
use crate::harness::Harness;

const CAMERA: &str = "cam-1";

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The x offset (CSS px from the timeline's centre) where the timeline shows `ms`, as the
/// page maps it now.
async fn timeline_x(b: &Browser, ms: f64) -> f64 {
    let v = b
        .js("const t = document.querySelector('#timeline'); return [+t.dataset.fromMs, +t.dataset.toMs, t.getBoundingClientRect().width];")
        .await;
    let (from, to, width) = (num(&v[0]), num(&v[1]), num(&v[2]));
    assert!(to > from && width > 100.0, "timeline {v}");
    assert!(
        (from..=to).contains(&ms),
        "{ms} is outside the timeline {from}..{to}"
    );
    ((ms - from) / (to - from) - 0.5) * width
}

/// Real pointer input on the timeline: press at `from_ms`, release at `to_ms` (the same
/// instant: a click).
pub async fn press_on_timeline(b: &Browser, from_ms: f64, to_ms: f64) {
    let timeline = b.client.find(Locator::Id("timeline")).await.unwrap();
    let x0 = timeline_x(b, from_ms).await.round();
    let x1 = timeline_x(b, to_ms).await.round();
    let mut mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: timeline.clone(),
            duration: None,
            x: x0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    if x1 != x0 {
        mouse = mouse.then(PointerAction::MoveToElement {
            element: timeline,
            duration: Some(Duration::from_millis(150)),
            x: x1,
            y: 0.0,
        });
    }
    let mouse = mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    b.client.perform_actions(mouse).await.unwrap();
    b.client.release_actions().await.unwrap();
}

/// The recorded spans the hub lists for the camera, `(start_ms, end_ms)`.
async fn spans(hub: &Harness) -> Vec<(f64, f64)> {
    let body = hub
        .get_bytes(&format!("/api/cameras/{CAMERA}/recordings"))
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (num(&s["start_us"]) / 1000.0, num(&s["end_us"]) / 1000.0))
        .collect()
}

/// `ffprobe`'s `width,height,nb_read_frames` of the first video stream in `bytes`, or `None`
/// when ffprobe is not installed (a failure under `ESPCAM_REQUIRE_TOOLS=1`).
fn ffprobe(bytes: &[u8], ext: &str) -> Option<(u64, u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("export.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("ESPCAM_REQUIRE_TOOLS").is_none(),
                "ffprobe is required (ESPCAM_REQUIRE_TOOLS): {e}"
            );
            println!("skipping the ffprobe check of the export: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "ffprobe failed on the {ext} export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: Vec<u64> = text
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("ffprobe said {text:?}"))
        })
        .collect();
    assert_eq!(f.len(), 3, "ffprobe said {text:?}");
    Some((f[0], f[1], f[2]))
}

pub async fn record_play_back_and_export(b: &Browser, hub: &Harness) {
    b.js(&format!(
        "location.hash = '#/camera/{CAMERA}'; return null;"
    ))
    .await;
    b.wait_for(
        "live frames",
        "document.querySelector('#live').dataset.mode === 'live' && +document.querySelector('#live').dataset.frameCount > 2",
    )
    .await;
    b.wait_for(
        "recording state shown",
        "document.querySelector('[data-testid=rec-state]').dataset.mode === 'off'",
    )
    .await;
    let live_size = b
        .js("const d = document.querySelector('#live').dataset; return [+d.width, +d.height];")
        .await;
    let (width, height) = (num(&live_size[0]) as u64, num(&live_size[1]) as u64);

    // The manual toggle starts and stops a recording.
    b.click(Locator::Id("rec-manual")).await;
    b.wait_for(
        "manual recording on",
        "document.querySelector('#rec-manual').getAttribute('aria-pressed') === 'true' && document.querySelector('[data-testid=rec-state]').textContent.includes('manual')",
    )
    .await;
    b.click(Locator::Id("rec-manual")).await;
    b.wait_for(
        "manual recording off",
        "document.querySelector('#rec-manual').getAttribute('aria-pressed') === 'false'",
    )
    .await;

    // Continuous mode, chosen in the page.
    let mode = b.client.find(Locator::Id("rec-mode")).await.unwrap();
    mode.select_by_value("continuous").await.unwrap();
    b.wait_for(
        "recording",
        "document.querySelector('[data-testid=rec-state]').dataset.recording === 'true' && document.querySelector('[data-testid=rec-state]').dataset.mode === 'continuous'",
    )
    .await;
    // Let about eight seconds be recorded and committed.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let recorded = spans(hub).await;
    let (start, end) = *recorded.last().expect("a recorded span");
    assert!(end - start > 5000.0, "spans {recorded:?}");
    b.wait_for(
        "timeline shows the span and the storage",
        "+document.querySelector('#timeline').dataset.spans > 0 && +document.querySelector('[data-testid=rec-usage]').dataset.bytes > 0 && /disk free: \\d/.test(document.querySelector('[data-testid=rec-usage]').textContent)",
    )
    .await;

    // Click two seconds into the span: frames recorded then are drawn in the same canvas.
    let before = num(&b
        .js("return +document.querySelector('#live').dataset.frameCount;")
        .await);
    press_on_timeline(b, start + 2000.0, start + 2000.0).await;
    let clicked_at = now_ms();
    let shown = b
        .wait_for(
            "playback frames",
            &format!("(() => {{ const d = document.querySelector('#live').dataset; const s = document.querySelector('[data-testid=playback-status]'); return d.mode === 'playback' && +d.frameCount > {before} + 5 && s.dataset.mode === 'playback' && !document.querySelector('#back-live').hidden && [+d.capturedUs, +d.width, +d.height, s.textContent]; }})()"),
        )
        .await;
    let captured_ms = num(&shown[0]) / 1000.0;
    assert!(
        captured_ms >= start - 1000.0 && captured_ms < clicked_at - 1500.0,
        "playback shows a frame captured at {captured_ms}, recorded {start}..{end}, clicked at {clicked_at}"
    );
    assert_eq!(
        (num(&shown[1]) as u64, num(&shown[2]) as u64),
        (width, height)
    );
    assert!(
        shown[3].as_str().unwrap().starts_with("Playback"),
        "{shown}"
    );
    b.screenshot("recording-playback").await;

    // 4×: the badge says so and frames keep coming.
    b.click(Locator::Css("[data-testid=speed-4]")).await;
    let at = num(&b
        .js("return +document.querySelector('#live').dataset.frameCount;")
        .await);
    b.wait_for(
        "4× playback",
        &format!("document.querySelector('[data-testid=playback-status]').textContent.includes('4×') && +document.querySelector('#live').dataset.frameCount > {at} + 5"),
    )
    .await;

    // Back to live: current frames again.
    b.click(Locator::Id("back-live")).await;
    let at = num(&b
        .js("return +document.querySelector('#live').dataset.frameCount;")
        .await);
    let live = b
        .wait_for(
            "live again",
            &format!("(() => {{ const d = document.querySelector('#live').dataset; return d.mode === 'live' && +d.frameCount > {at} + 3 && document.querySelector('[data-testid=playback-status]').textContent === 'Live' && document.querySelector('#back-live').hidden && +d.capturedUs; }})()"),
        )
        .await;
    let age = now_ms() - num(&live) / 1000.0;
    assert!(age < 2000.0, "live frame is {age} ms old");

    // A range where nothing was recorded offers no file.
    let from = num(&b
        .js("return +document.querySelector('#timeline').dataset.fromMs;")
        .await);
    press_on_timeline(b, from + 10_000.0, from + 40_000.0).await;
    b.wait_for(
        "empty range says so",
        "document.querySelector('[data-testid=selection]').textContent.endsWith('nothing recorded') && document.querySelector('#export-mkv').hidden && document.querySelector('#export-avi').hidden",
    )
    .await;

    // Drag across the span: the selected range is offered as MKV and AVI.
    press_on_timeline(b, start + 1000.0, end - 1000.0).await;
    let link = b
        .wait_for(
            "export links",
            "!document.querySelector('#export-mkv').hidden && !document.querySelector('#export-avi').hidden && [document.querySelector('#export-mkv').getAttribute('href'), document.querySelector('#export-avi').getAttribute('href'), document.querySelector('[data-testid=selection]').textContent]",
        )
        .await;
    let (mkv, avi) = (
        link[0].as_str().unwrap().to_owned(),
        link[1].as_str().unwrap().to_owned(),
    );
    assert!(
        mkv.starts_with(&format!("/api/cameras/{CAMERA}/export?")) && mkv.ends_with("format=mkv"),
        "{link}"
    );
    assert!(avi.ends_with("format=avi"), "{link}");
    // The page's own fetch of the link, as a download would do it.
    let fetched = b
        .js("return fetch(document.querySelector('#export-mkv').href).then(async r => [r.status, r.headers.get('content-disposition') ?? '', (await r.arrayBuffer()).byteLength]);")
        .await;
    assert_eq!(num(&fetched[0]), 200.0, "{fetched}");
    assert!(
        fetched[1].as_str().unwrap().starts_with("attachment"),
        "{fetched}"
    );
    assert!(num(&fetched[2]) > 10_000.0, "{fetched}");
    for (url, ext) in [(&mkv, "mkv"), (&avi, "avi")] {
        let bytes = hub.get_bytes(url).await;
        if ext == "mkv" {
            assert_eq!(bytes.len() as f64, num(&fetched[2]), "the same file twice");
            assert_eq!(&bytes[..4], b"\x1a\x45\xdf\xa3", "EBML magic");
        } else {
            assert_eq!(&bytes[..4], b"RIFF");
        }
        if let Some((w, h, frames)) = ffprobe(&bytes, ext) {
            assert_eq!((w, h), (width, height), "{ext}");
            // The range is about six seconds of a camera sending several frames a second.
            assert!(frames >= 10, "{ext}: {frames} frames");
        }
    }
    b.screenshot("recording-export").await;

    // Recording off again, for the scenarios after this one.
    let mode = b.client.find(Locator::Id("rec-mode")).await.unwrap();
    mode.select_by_value("off").await.unwrap();
    b.wait_for(
        "recording off",
        "document.querySelector('[data-testid=rec-state]').dataset.mode === 'off' && document.querySelector('[data-testid=rec-state]').dataset.recording === 'false'",
    )
    .await;
}
