//! One follower task per camera, for the services that watch every camera's frames (the
//! recorder, the motion analysis, the timelapse): follow the camera registry, start a
//! follower for each camera present and each that appears later, restart one whose task
//! ended (a camera that was forgotten and came back is a new `Camera` with a new tap), and
//! stop when the hub shuts down. Before it, each service had its own copy of this loop.
//!
//! A follower holds its camera's tap, not the camera, and ends when the tap ends; this loop
//! never waits for a follower, and must never hold a camera itself (the registry could then
//! not forget it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use espcam_proto::CameraId;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::state::Hub;
use crate::state::camera::Camera;
use crate::state::event::Event;

/// Runs until the hub stops: calls `spawn` for every camera that has no running follower
/// (it returns the follower's task, or `None` when this camera needs none), and `on_tick`
/// every `tick` if one is given. Returns the cameras that had a follower at the end, for
/// the service's own clean-up.
pub(crate) async fn follow_cameras(
    hub: Hub,
    tick: Option<Duration>,
    mut on_tick: impl FnMut(),
    mut spawn: impl FnMut(Arc<Camera>) -> Option<JoinHandle<()>>,
) -> Vec<CameraId> {
    let mut events = hub.subscribe();
    let mut stop = hub.shutdown_signal();
    let mut tick = tick.map(tokio::time::interval);
    let mut started: HashMap<CameraId, JoinHandle<()>> = HashMap::new();
    let mut start = |cam: Arc<Camera>, started: &mut HashMap<CameraId, JoinHandle<()>>| {
        if started.get(&cam.id).is_none_or(|h| h.is_finished()) {
            let id = cam.id.clone();
            if let Some(task) = spawn(cam) {
                started.insert(id, task);
            }
        }
    };
    for cam in hub.cameras() {
        start(cam, &mut started);
    }
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = next_tick(&mut tick) => on_tick(),
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
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    started.into_keys().collect()
}

/// The next tick, or never without a ticker.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
