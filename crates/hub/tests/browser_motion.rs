//! Motion in the dashboard, in a real browser (headless Chromium over WebDriver): a virtual
//! camera whose scene goes still → moving → still makes an event that the events lists show
//! live with its thumbnail, the "Motion" badges come and go, clicking the event plays its
//! clip in the camera's player, and zones drawn on the live picture are saved and shown
//! again after a reload. Without Chromium the test says so and passes, unless
//! `ESPCAM_REQUIRE_BROWSER=1` (CI) makes that a failure. Reuses the `browser/` harness; the
//! scenarios are in `browser/motion.rs`.

// Test code, helpers included: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "browser/cameras.rs"]
mod cameras;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/harness.rs"]
mod harness;
#[path = "browser/motion.rs"]
mod motion;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_events_badges_playback_and_zones() {
    let Some(b) = driver::Browser::launch("motion_events_badges_playback_and_zones").await else {
        return;
    };
    let mut hub = motion::hub().await;
    motion::event_appears_live_and_plays(&b, &mut hub).await;
    motion::zones_are_drawn_saved_and_shown_after_reload(&b, &hub).await;
    motion::viewer_sees_events_and_zones_but_cannot_change_them(&b, &hub).await;
    motion::event_is_deleted(&b, &hub).await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    hub.stop().await;
}
