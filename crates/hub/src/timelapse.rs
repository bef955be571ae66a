//! Timelapse: per camera, one frame kept every N seconds (`[motion] timelapse_every_s`, per
//! camera in `[motion.camera.ID]`) as a recording track of its own, the pseudo-camera
//! `{camera}_timelapse`, exported at a chosen rate by `GET /api/cameras/{camera}/timelapse`.
//!
//! A service beside `recorder`: one task per camera follows a [`DropPolicy::Newest`] tap and
//! hands the newest frame to the recorder's writer queue once per interval (no copy; the
//! recorder's retention applies to the track like to any camera). It must never wait for the
//! disk: a full writer queue drops the frame like any other.

use std::sync::Arc;

use espcam_proto::CameraId;

use crate::motion::MotionSettings;
use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::camera::Camera;
use crate::state::tap::DropPolicy;

/// Suffix of a timelapse track's pseudo-camera id.
pub const SUFFIX: &str = "_timelapse";

/// The timelapse track of `camera`; `None` when the id is too long to take the suffix.
pub fn track_id(camera: &CameraId) -> Option<CameraId> {
    CameraId::new(&format!("{camera}{SUFFIX}")).ok()
}

/// Starts a task per camera (present and future) whose settings keep a timelapse.
pub fn start(hub: &Hub, recorder: Recorder, settings: MotionSettings) {
    if settings.timelapse_every.is_none() && settings.camera_timelapse.values().all(Option::is_none)
    {
        return;
    }
    tokio::spawn(supervise(hub.clone(), recorder, Arc::new(settings)));
}

async fn supervise(hub: Hub, recorder: Recorder, settings: Arc<MotionSettings>) {
    let stop = hub.clone();
    crate::follow::follow_cameras(
        hub,
        None,
        || {},
        move |cam: Arc<Camera>| {
            let every = settings.timelapse(&cam.id)?;
            let Some(track) = track_id(&cam.id) else {
                tracing::warn!("camera {}: id too long for a timelapse track", cam.id);
                return None;
            };
            let mut tap = cam.tap(DropPolicy::Newest);
            let rec = recorder.clone();
            let mut stop = stop.shutdown_signal();
            Some(tokio::spawn(async move {
                loop {
                    let t = tokio::select! {
                        _ = stop.changed() => return,
                        t = tap.next() => match t { Some(t) => t, None => return },
                    };
                    rec.append(&track, t.frame);
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                }
            }))
        },
    )
    .await;
}
