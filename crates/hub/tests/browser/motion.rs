//! Motion scenarios for the browser test `browser_motion.rs`: a hub with one virtual camera
//! ("porch") that looks at a still scene, records on events and ends an event after 1.5 s
//! without motion; the page is checked as a user sees it (lists, badges, thumbnails that
//! decoded, frames in the player, zones over the picture) and the hub's side through its API.

use std::time::Duration;

use espcam_hub::recorder::Mode;
use espcam_sim::Scene;
use fantoccini::Locator;
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use serde_json::Value;

use crate::driver::Browser;
use crate::harness::Harness;

const CAMERA: &str = "porch";
/// The detector's T: an event ends this long after the last moving frame.
const END_AFTER_MS: u32 = 1_500;

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// The hub with camera `porch` online, looking at a still scene.
pub async fn hub() -> Harness {
    let mut hub = Harness::start_with(|c| {
        c.motion.default.detector.end_after_ms = END_AFTER_MS;
        c.recording.default_mode = Mode::Events;
    })
    .await;
    hub.start_camera_in(CAMERA, Scene::Still).await;
    hub
}

/// A JS expression: a hash of the live canvas' pixels (every 97th byte), to see it change.
const CANVAS_HASH: &str = "(() => { const c = document.querySelector('#live'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let h = 0; for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) | 0; return String(h); })()";

const TILE_BADGE: &str =
    "document.querySelector('[data-testid=tile][data-camera=porch] [data-testid=motion-badge]')";
const PAGE_BADGE: &str = "document.querySelector('[data-testid=camera-motion]')";

pub async fn event_appears_live_and_plays(b: &Browser, hub: &mut Harness) {
    b.client.goto(&hub.url("/")).await.unwrap();
    b.wait_for(
        "the porch tile online",
        "document.querySelector('[data-testid=tile][data-camera=porch][data-online=true]')",
    )
    .await;
    // A still scene: no event, no badge, and the list says so.
    b.wait_for(
        "an empty events list",
        "(() => { const s = document.querySelector('[data-testid=events-all]'); return s.dataset.count === '0' && !s.dataset.loading && !s.querySelector('[data-testid=events-empty]').hidden; })()",
    )
    .await;
    let badge = b.js(&format!("return {TILE_BADGE}.hidden;")).await;
    assert_eq!(badge, true, "motion badge on a still camera");
    b.screenshot("motion-still").await;
    // From here on the page must learn of motion from the socket, not by asking again.
    b.js("window.__eventFetches = 0; const f = window.fetch; window.fetch = (u, o) => { if (String(u).includes('/api/events')) window.__eventFetches += 1; return f(u, o); }; return null;")
        .await;

    // Let the background settle, then an object crosses the picture.
    tokio::time::sleep(Duration::from_secs(2)).await;
    hub.set_scene(CAMERA, Scene::Moving);
    let shown = b
        .wait_for(
            "the running event with its thumbnail and the tile's badge",
            &format!("(() => {{ const li = document.querySelector('[data-testid=events-all] [data-testid=event][data-camera=porch][data-running=true]'); const img = li?.querySelector('[data-testid=event-thumb]'); return li && img.complete && img.naturalWidth > 0 && !{TILE_BADGE}.hidden && [img.naturalWidth, img.naturalHeight, +li.dataset.eventId, li.textContent]; }})()"),
        )
        .await;
    assert_eq!((num(&shown[0]), num(&shown[1])), (640.0, 480.0), "{shown}");
    let id = num(&shown[2]) as i64;
    assert!(shown[3].as_str().unwrap().contains("motion now"), "{shown}");
    let fetches = b.js("return window.__eventFetches;").await;
    assert_eq!(num(&fetches), 0.0, "the list polled the hub");
    b.screenshot("motion-started").await;

    // The camera's page: its own list and badge, while the object still moves.
    b.click(Locator::Css("[data-testid=tile][data-camera=porch] a"))
        .await;
    b.wait_for(
        "the camera page's badge and event",
        &format!("!{PAGE_BADGE}.hidden && document.querySelector('[data-testid=events-camera] [data-testid=event][data-event-id=\"{id}\"][data-running=true]')"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    hub.set_scene(CAMERA, Scene::Still);
    let ended = b
        .wait_for(
            "the event ends and the badge goes away",
            &format!("(() => {{ const li = document.querySelector('[data-testid=events-camera] [data-testid=event][data-event-id=\"{id}\"][data-running=false]'); const img = li?.querySelector('[data-testid=event-thumb]'); return li && {PAGE_BADGE}.hidden && img.complete && img.naturalWidth > 0 && li.textContent; }})()"),
        )
        .await;
    assert!(!ended.as_str().unwrap().contains("motion now"), "{ended}");
    let event: Value =
        serde_json::from_slice(&hub.get_bytes(&format!("/api/events/{id}")).await).unwrap();
    let (started, end) = (num(&event["started_ms"]), num(&event["ended_ms"]));
    assert!(end > started, "{event}");
    // The recordings timeline marks it, in the events colour, where it started.
    let marker = b
        .wait_for(
            "the event's marker on the timeline",
            &format!("(() => {{ const t = document.querySelector('#timeline'); if (+t.dataset.events < 1) return null; const x = Math.floor(({started} - +t.dataset.fromMs) / (+t.dataset.toMs - +t.dataset.fromMs) * t.width) + 1; return [...t.getContext('2d').getImageData(x, 2, 1, 1).data]; }})()"),
        )
        .await;
    assert_eq!(
        marker,
        serde_json::json!([210, 153, 34, 255]),
        "marker pixel"
    );
    b.screenshot("motion-ended").await;

    // Its clip plays in the camera's player: recorded frames of the right size, changing.
    let before = num(&b
        .js("return +document.querySelector('#live').dataset.frameCount;")
        .await);
    b.click(Locator::Css(&format!(
        "[data-testid=events-camera] [data-event-id=\"{id}\"] [data-testid=event-open]"
    )))
    .await;
    let first = b
        .wait_for(
            "playback frames of the event",
            &format!("(() => {{ const c = document.querySelector('#live'); const d = c.dataset; return d.mode === 'playback' && +d.frameCount > {before} + 3 && document.querySelector('[data-testid=playback-status]').dataset.mode === 'playback' && [+d.capturedUs, c.width, c.height, +d.frameCount, {CANVAS_HASH}]; }})()"),
        )
        .await;
    let captured_ms = num(&first[0]) / 1000.0;
    assert!(
        captured_ms >= started - 6_500.0 && captured_ms <= end + 11_000.0 && captured_ms < now_ms(),
        "playback shows a frame captured at {captured_ms}, event {started}..{end}"
    );
    assert_eq!((num(&first[1]), num(&first[2])), (640.0, 480.0), "{first}");
    let frames = num(&first[3]);
    let hash = first[4].as_str().unwrap().to_owned();
    b.wait_for(
        "the played picture changes",
        &format!("+document.querySelector('#live').dataset.frameCount > {frames} + 3 && {CANVAS_HASH} !== {hash:?}"),
    )
    .await;
    let selected = b
        .js(&format!("return document.querySelector('[data-testid=events-camera] [data-event-id=\"{id}\"]').dataset.selected;"))
        .await;
    assert_eq!(selected, "true");
    b.screenshot("motion-playback").await;
    b.click(Locator::Id("back-live")).await;
    b.wait_for(
        "live again",
        "document.querySelector('#live').dataset.mode === 'live'",
    )
    .await;

    // Back on the grid: the tile's badge is gone, and the event is listed as ended.
    b.js("location.hash = '#/'; return null;").await;
    b.wait_for(
        "the tile without a badge, the event ended in the list",
        &format!("{TILE_BADGE}.hidden && document.querySelector('[data-testid=events-all] [data-event-id=\"{id}\"][data-running=false]')"),
    )
    .await;
}

/// Real pointer input on the zone overlay: press at (`x0`, `y0`), drag to (`x1`, `y1`), in
/// fractions of the picture.
async fn drag_on_picture(b: &Browser, from: (f64, f64), to: (f64, f64)) {
    let overlay = b.client.find(Locator::Id("zone-overlay")).await.unwrap();
    let r = b
        .js("const o = document.querySelector('#zone-overlay'); o.scrollIntoView({ block: 'end' }); const r = o.getBoundingClientRect(); return [r.width, r.height, r.top, r.bottom, window.innerHeight];")
        .await;
    let (w, h) = (num(&r[0]), num(&r[1]));
    assert!(w > 100.0 && h > 100.0, "overlay {r}");
    assert!(
        num(&r[2]) >= 0.0 && num(&r[3]) <= num(&r[4]),
        "overlay outside the viewport: {r}"
    );
    // MoveToElement offsets are from the element's centre.
    let at = |(x, y): (f64, f64)| (((x - 0.5) * w).round(), ((y - 0.5) * h).round());
    let (x0, y0) = at(from);
    let (x1, y1) = at(to);
    // Nothing (the sticky header, a toast) covers the points pressed.
    for (x, y) in [from, to] {
        let top = b
            .js(&format!("const o = document.querySelector('#zone-overlay'); const r = o.getBoundingClientRect(); return document.elementFromPoint(r.left + {x} * r.width, r.top + {y} * r.height) === o;"))
            .await;
        assert_eq!(top, true, "the overlay is covered at ({x}, {y})");
    }
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: overlay.clone(),
            duration: None,
            x: x0,
            y: y0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveToElement {
            element: overlay,
            duration: Some(Duration::from_millis(200)),
            x: x1,
            y: y1,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(mouse).await.unwrap();
    b.client.release_actions().await.unwrap();
}

/// The zones and mask the hub has for the camera: `[(name, [x0, y0, x1, y1])]`, `[[…]]`.
async fn saved_zones(hub: &Harness) -> (Vec<(String, Vec<f64>)>, Vec<Vec<f64>>) {
    let m: Value = serde_json::from_slice(
        &hub.get_bytes(&format!("/api/cameras/{CAMERA}/motion"))
            .await,
    )
    .unwrap();
    let rect = |r: &Value| ["x0", "y0", "x1", "y1"].map(|k| num(&r[k])).to_vec();
    let d = &m["settings"]["detector"];
    let zones = d["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| (z["name"].as_str().unwrap().to_owned(), rect(&z["rect"])))
        .collect();
    let mask = d["mask"].as_array().unwrap().iter().map(rect).collect();
    (zones, mask)
}

fn close_to(got: &[f64], want: [f64; 4]) -> bool {
    got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.03)
}

/// The overlay's alpha (0..=255) at (`x`, `y`), fractions of the picture.
async fn overlay_alpha(b: &Browser, x: f64, y: f64) -> f64 {
    num(&b
        .js(&format!("const o = document.querySelector('#zone-overlay'); return o.getContext('2d').getImageData(Math.floor({x} * o.width), Math.floor({y} * o.height), 1, 1).data[3];"))
        .await)
}

async fn open_zone_editor(b: &Browser) {
    b.click(Locator::Css("[data-testid=zones-toggle]")).await;
    b.wait_for(
        "the zone editor, loaded, over the picture",
        "(() => { const o = document.querySelector('#zone-overlay'); const l = document.querySelector('#live'); const a = o.getBoundingClientRect(); const c = l.getBoundingClientRect(); return !o.hidden && document.querySelector('[data-testid=zones]').dataset.loaded === 'true' && a.width > 100 && a.top >= c.top - 1 && a.bottom <= c.bottom + 1 && a.left >= c.left - 1 && a.right <= c.right + 1; })()",
    )
    .await;
}

pub async fn zones_are_drawn_saved_and_shown_after_reload(b: &Browser, hub: &Harness) {
    b.client
        .goto(&hub.url(&format!("/#/camera/{CAMERA}")))
        .await
        .unwrap();
    b.wait_for(
        "live frames",
        "document.querySelector('#live').dataset.mode === 'live' && +document.querySelector('#live').dataset.frameCount > 2",
    )
    .await;
    open_zone_editor(b).await;
    assert_eq!(saved_zones(hub).await, (vec![], vec![]));
    // The overlay is laid on the picture: as wide as the picture's aspect says.
    let aspect = b
        .js("const r = document.querySelector('#zone-overlay').getBoundingClientRect(); return r.width / r.height;")
        .await;
    assert!(
        (num(&aspect) - 640.0 / 480.0).abs() < 0.02,
        "overlay aspect {aspect}"
    );

    // A zone called "door" on the left, and a mask area at the top right.
    let name = b
        .client
        .find(Locator::Css("[data-testid=zones-name]"))
        .await
        .unwrap();
    name.clear().await.unwrap();
    name.send_keys("door").await.unwrap();
    drag_on_picture(b, (0.1, 0.2), (0.5, 0.9)).await;
    b.click(Locator::Css("[data-testid=zones-tool-mask]")).await;
    drag_on_picture(b, (0.7, 0.05), (0.95, 0.3)).await;
    let listed = b
        .wait_for(
            "a zone and a mask area listed",
            "(() => { const li = [...document.querySelectorAll('[data-testid=zone-item]')]; return li.length === 2 && li.map(x => x.dataset.kind + ':' + x.querySelector('.zone-name').textContent); })()",
        )
        .await;
    assert_eq!(listed, serde_json::json!(["zone:door", "mask:mask 1"]));
    // Not saved until Save.
    assert_eq!(saved_zones(hub).await, (vec![], vec![]));
    b.click(Locator::Css("[data-testid=zones-save]")).await;
    b.wait_for(
        "saved",
        "document.querySelector('[data-testid=zones]').dataset.saved && document.querySelector('[data-testid=zones-status]').dataset.kind === 'success'",
    )
    .await;
    let (zones, mask) = saved_zones(hub).await;
    assert_eq!(zones.len(), 1, "{zones:?}");
    assert_eq!(zones[0].0, "door");
    assert!(close_to(&zones[0].1, [0.1, 0.2, 0.5, 0.9]), "{zones:?}");
    assert_eq!(mask.len(), 1, "{mask:?}");
    assert!(close_to(&mask[0], [0.7, 0.05, 0.95, 0.3]), "{mask:?}");
    b.screenshot("motion-zones-drawn").await;

    // After a reload the editor shows what the hub keeps, drawn where it was drawn.
    b.client.refresh().await.unwrap();
    b.wait_for(
        "live frames after the reload",
        "+document.querySelector('#live').dataset.frameCount > 2",
    )
    .await;
    open_zone_editor(b).await;
    let shown = b
        .wait_for(
            "the saved zone and mask shown",
            "(() => { const o = document.querySelector('#zone-overlay'); const li = [...document.querySelectorAll('[data-testid=zone-item]')]; return o.dataset.zones === '1' && o.dataset.mask === '1' && li.map(x => x.dataset.kind + ':' + x.querySelector('.zone-name').textContent); })()",
        )
        .await;
    assert_eq!(shown, serde_json::json!(["zone:door", "mask:mask 1"]));
    assert!(overlay_alpha(b, 0.3, 0.55).await > 0.0, "zone not drawn");
    assert!(overlay_alpha(b, 0.82, 0.17).await > 0.0, "mask not drawn");
    assert_eq!(overlay_alpha(b, 0.6, 0.6).await, 0.0, "drawn outside");
    b.screenshot("motion-zones-reloaded").await;

    // A bad name is refused in the page, before the hub sees it.
    let name = b
        .client
        .find(Locator::Css("[data-testid=zones-name]"))
        .await
        .unwrap();
    name.clear().await.unwrap();
    name.send_keys("door").await.unwrap();
    b.click(Locator::Css("[data-testid=zones-tool-zone]")).await;
    drag_on_picture(b, (0.55, 0.5), (0.65, 0.6)).await;
    let status = b
        .wait_for(
            "a duplicate name refused",
            "document.querySelector('[data-testid=zones-status]').dataset.kind === 'error' && document.querySelector('[data-testid=zones-status]').textContent",
        )
        .await;
    assert!(status.as_str().unwrap().contains("already"), "{status}");
    assert_eq!(saved_zones(hub).await.0.len(), 1);

    // Remove all and save: the hub has none again.
    b.click(Locator::Css("[data-testid=zones-clear]")).await;
    b.click(Locator::Css("[data-testid=zones-save]")).await;
    b.wait_for(
        "saved empty",
        "document.querySelector('[data-testid=zones-status]').textContent.startsWith('Saved: 0 zones')",
    )
    .await;
    assert_eq!(saved_zones(hub).await, (vec![], vec![]));
}

/// What `GET /api/whoami` says to a viewer (docs/SECURITY.md): the page is told it is one.
/// The hub here runs without login (loopback), so this checks what the page shows a viewer;
/// that the hub refuses a viewer's delete or zone change is tests/security.rs's door table.
const AS_VIEWER: &str = "const real = window.fetch; window.fetch = async (u, o) => { const r = await real(u, o); if (String(u) !== '/api/whoami') return r; const me = await r.json(); me.role = 'viewer'; me.user = 'vic'; for (const k of Object.keys(me.may)) me.may[k] = ['view', 'snapshot', 'recordings', 'events'].includes(k); return new Response(JSON.stringify(me), { status: 200, headers: { 'content-type': 'application/json' } }); };";

/// A viewer sees the events (thumbnails included) and the zones, but no delete button and
/// no drawing tools, and dragging on the picture draws nothing.
pub async fn viewer_sees_events_and_zones_but_cannot_change_them(b: &Browser, hub: &Harness) {
    // As the admin, one zone to look at (the editor is open from the zones scenario).
    let name = b
        .client
        .find(Locator::Css("[data-testid=zones-name]"))
        .await
        .unwrap();
    name.clear().await.unwrap();
    name.send_keys("gate").await.unwrap();
    drag_on_picture(b, (0.2, 0.2), (0.4, 0.4)).await;
    b.click(Locator::Css("[data-testid=zones-save]")).await;
    b.wait_for(
        "saved",
        "document.querySelector('[data-testid=zones-status]').dataset.kind === 'success'",
    )
    .await;

    let script = b.run_before_pages(AS_VIEWER).await;
    b.client.goto(&hub.url("/")).await.unwrap();
    b.client.refresh().await.unwrap();
    b.wait_for(
        "a viewer's page",
        "document.documentElement.dataset.role === 'viewer'",
    )
    .await;
    let seen = b
        .wait_for(
            "the events, without delete",
            "(() => { const li = document.querySelector('[data-testid=events-all] [data-testid=event]'); const img = li?.querySelector('[data-testid=event-thumb]'); const del = li?.querySelector('[data-testid=event-delete]'); return li && img.complete && img.naturalWidth > 0 && del.hasAttribute('data-denied') && [getComputedStyle(del).display, getComputedStyle(document.querySelector('[data-testid=events-all]')).display]; })()",
        )
        .await;
    assert_eq!(seen[0], "none", "delete shown to a viewer: {seen}");
    assert_ne!(seen[1], "none", "events hidden from a viewer: {seen}");

    b.js(&format!(
        "location.hash = '#/camera/{CAMERA}'; return null;"
    ))
    .await;
    b.wait_for(
        "live frames",
        "+document.querySelector('#live').dataset.frameCount > 2",
    )
    .await;
    open_zone_editor(b).await;
    let shown = b
        .wait_for(
            "the zone shown, no tools",
            "(() => { const o = document.querySelector('#zone-overlay'); const vis = (s) => getComputedStyle(document.querySelector(s)).display !== 'none'; return o.dataset.zones === '1' && [o.dataset.editable, vis('.zones-tools'), vis('.zones-actions'), vis('[data-testid=zone-item] button'), document.querySelector('[data-testid=zone-item] .zone-name').textContent]; })()",
        )
        .await;
    assert_eq!(
        shown,
        serde_json::json!(["false", false, false, false, "gate"])
    );
    drag_on_picture(b, (0.6, 0.6), (0.8, 0.8)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = b
        .js("return [document.querySelectorAll('[data-testid=zone-item]').length, document.querySelector('#zone-overlay').dataset.zones];")
        .await;
    assert_eq!(after, serde_json::json!([1, "1"]), "a viewer drew a zone");
    assert_eq!(saved_zones(hub).await.0.len(), 1);
    b.screenshot("motion-viewer").await;

    // From the list of all cameras, a click opens the camera and plays the event there.
    b.js("location.hash = '#/'; return null;").await;
    b.click(Locator::Css(
        "[data-testid=events-all] [data-testid=event] [data-testid=event-open]",
    ))
    .await;
    b.wait_for(
        "the camera page playing the event",
        &format!("location.hash === '#/camera/{CAMERA}' && document.querySelector('#live').dataset.mode === 'playback' && +document.querySelector('#live').dataset.frameCount > 3 && document.querySelector('#live').dataset.width === '640'"),
    )
    .await;
    b.stop_running_before_pages(&script).await;
}

/// The custom range: a range after the event shows none, one around it shows it.
async fn custom_range_filters(b: &Browser, id: i64) {
    let list = "document.querySelector('[data-testid=events-all]')";
    b.click(Locator::Css(
        "[data-testid=events-all] [data-testid=events-range-custom]",
    ))
    .await;
    let set = |from_min: i64, to_min: Option<i64>| {
        let to = to_min.map_or("''".to_owned(), |m| {
            format!("local(Date.now() + {m} * 60000)")
        });
        format!(
            "const local = (ms) => {{ const d = new Date(ms); const p = (n) => String(n).padStart(2, '0'); return `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}`; }}; document.querySelector('[data-testid=events-from]').value = local(Date.now() + {from_min} * 60000); document.querySelector('[data-testid=events-to]').value = {to}; return null;"
        )
    };
    b.js(&set(2, None)).await;
    b.click(Locator::Css(
        "[data-testid=events-all] [data-testid=events-apply]",
    ))
    .await;
    b.wait_for(
        "nothing after the event",
        &format!("{list}.dataset.count === '0' && !{list}.dataset.loading && !{list}.querySelector('[data-testid=events-empty]').hidden"),
    )
    .await;
    b.js(&set(-60, Some(60))).await;
    b.click(Locator::Css(
        "[data-testid=events-all] [data-testid=events-apply]",
    ))
    .await;
    b.wait_for(
        "the event inside the range",
        &format!(
            "{list}.dataset.count === '1' && {list}.querySelector('[data-event-id=\"{id}\"]')"
        ),
    )
    .await;
    b.click(Locator::Css(
        "[data-testid=events-all] [data-testid=events-range-1h]",
    ))
    .await;
    b.wait_for(
        "back to the last hour",
        &format!("{list}.querySelector('.events-custom').hidden && {list}.dataset.count === '1'"),
    )
    .await;
}

/// An admin deletes the event from the list: gone from the page and from the hub.
pub async fn event_is_deleted(b: &Browser, hub: &Harness) {
    // A fresh page: whoever the previous scenario pretended to be, this one is the admin.
    b.client.goto(&hub.url("/")).await.unwrap();
    b.client.refresh().await.unwrap();
    b.wait_for(
        "an admin's page",
        "document.documentElement.dataset.role === 'admin'",
    )
    .await;
    let id = num(&b
        .wait_for(
            "an event in the list",
            "document.querySelector('[data-testid=events-all] [data-testid=event]')?.dataset.eventId",
        )
        .await) as i64;
    custom_range_filters(b, id).await;
    b.click(Locator::Css(&format!(
        "[data-testid=events-all] [data-event-id=\"{id}\"] [data-testid=event-delete]"
    )))
    .await;
    b.click(Locator::Id("confirm-ok")).await;
    b.wait_for(
        "the event gone from the list",
        &format!("!document.querySelector('[data-testid=events-all] [data-event-id=\"{id}\"]')"),
    )
    .await;
    assert_eq!(hub.status(&format!("/api/events/{id}")).await, 404);
}
