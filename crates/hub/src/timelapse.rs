//! Timelapse: per camera, one frame kept every N seconds (`[motion] timelapse_every_s`, per
//! camera in `[motion.camera.ID]`) as a recording track of its own, the pseudo-camera
//! `{camera}_timelapse`, exported at a chosen rate by `GET /api/cameras/{camera}/timelapse`.
//!
//! A service beside `recorder`: one task per camera follows a [`DropPolicy::Newest`] tap and
//! hands the newest frame to the recorder's writer queue once per interval (no copy; the
//! recorder's retention applies to the track like to any camera). It must never wait for the
//! disk: a full writer queue drops the frame like any other.

use std::collections::HashMap;
use std::sync::Arc;

use espcam_proto::CameraId;
use tokio::sync::broadcast;

use crate::motion::MotionSettings;
use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::camera::Camera;
use crate::state::event::Event;
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
    let mut events = hub.subscribe();
    let mut stop = hub.shutdown_signal();
    let mut started: HashMap<CameraId, tokio::task::JoinHandle<()>> = HashMap::new();
    let start = |cam: Arc<Camera>, started: &mut HashMap<CameraId, tokio::task::JoinHandle<()>>| {
        let Some(every) = settings.timelapse(&cam.id) else {
            return;
        };
        let Some(track) = track_id(&cam.id) else {
            tracing::warn!("camera {}: id too long for a timelapse track", cam.id);
            return;
        };
        if started.get(&cam.id).is_none_or(|h| h.is_finished()) {
            let id = cam.id.clone();
            let mut tap = cam.tap(DropPolicy::Newest);
            let rec = recorder.clone();
            let mut stop = hub.shutdown_signal();
            started.insert(
                id,
                tokio::spawn(async move {
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
                }),
            );
        }
    };
    for cam in hub.cameras() {
        start(cam, &mut started);
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            ev = events.recv() => match ev {
                Ok(Event::Online(info)) => {
                    if let Some(cam) = hub.camera(info.id.as_str()) {
                        start(cam, &mut started);
                    }
                }
                Ok(Event::CamerasChanged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    started.retain(|_, h| !h.is_finished());
                    for cam in hub.cameras() {
                        start(cam, &mut started);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
