//! Frames across hubs, once per interested node.
//!
//! A node whose proxy of a remote camera has viewers announces it on
//! `espcam.interest.<camera>` (every heartbeat; the announcement is the TTL) and holds ONE
//! subscription to `espcam.frames.<camera>`, feeding each message through
//! [`crate::state::camera::Camera::ingest`] — its local viewers then fan out as for any
//! camera, so a frame crosses the network once per node, never once per viewer. The
//! holding node publishes a camera's frames only while an announcement is younger than
//! [`INTEREST_TTL`], from its own task behind a `DropPolicy::Newest` tap: a slow NATS link
//! makes that task skip frames, and never delays ingest or the holding node's viewers.

use std::time::Duration;

use espcam_proto::CameraId;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use crate::cluster::{Cluster, frames_subject, interest_subject};
use crate::state::clock::now_us;
use crate::state::tap::DropPolicy;

/// How long one interest announcement keeps a camera's frames flowing.
pub const INTEREST_TTL: Duration = Duration::from_secs(3);
/// How long a subscription outlives the last viewer here (a page reload keeps it).
const LINGER: Duration = Duration::from_secs(3);

/// Each heartbeat: announce interest in and subscribe to the remote cameras with viewers
/// here; drop the subscriptions of those nobody watched for a while.
pub(super) async fn follow_viewers(cluster: &Cluster) {
    let now = now_us();
    let mut announce: Vec<CameraId> = Vec::new();
    let mut subscribe: Vec<CameraId> = Vec::new();
    {
        let mut sh = cluster.lock();
        for (id, p) in sh.proxies.iter_mut() {
            let watched = cluster.hub().camera(id.as_str()).is_some_and(|c| {
                c.counters
                    .viewers
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > 0
            });
            if watched {
                p.watched_us = now;
                announce.push(id.clone());
                if p.frames.is_none() {
                    subscribe.push(id.clone());
                }
            } else if p.frames.is_some()
                && now.saturating_sub(p.watched_us) > LINGER.as_micros() as u64
                && let Some(f) = p.frames.take()
            {
                f.abort();
            }
        }
    }
    for id in subscribe {
        let sub = match cluster.0.client.subscribe(frames_subject(&id)).await {
            Ok(s) => s,
            Err(e) => {
                debug!("cluster: cannot subscribe to camera {id}'s frames: {e}");
                continue;
            }
        };
        let task = tokio::spawn(relay_in(cluster.clone(), id.clone(), sub));
        let mut sh = cluster.lock();
        match sh.proxies.get_mut(&id) {
            Some(p) if p.frames.is_none() => p.frames = Some(task),
            _ => task.abort(),
        }
    }
    let me = bytes::Bytes::copy_from_slice(cluster.node().as_bytes());
    for id in announce {
        if let Err(e) = cluster
            .0
            .client
            .publish(interest_subject(&id), me.clone())
            .await
        {
            debug!("cluster: interest in camera {id} not announced: {e}");
        }
    }
}

/// Feeds a remote camera's frames from NATS into its local entry.
async fn relay_in(cluster: Cluster, id: CameraId, mut sub: async_nats::Subscriber) {
    let limits = cluster.hub().config().limits;
    while let Some(msg) = sub.next().await {
        let Some(cam) = cluster.hub().camera(id.as_str()) else {
            break;
        };
        if let crate::state::camera::Ingest::Dropped(e) = cam.ingest(msg.payload, &limits)
            && cam.first_dropped()
        {
            warn!("cluster: invalid frame for camera {id} from NATS: {e}");
        }
        cam.let_viewers_run().await;
    }
}

/// Listens to interest announcements and keeps a publisher running for each local camera
/// some other node wants.
pub(super) async fn interest_loop(cluster: Cluster) {
    let mut sub = match cluster.0.client.subscribe("espcam.interest.*").await {
        Ok(s) => s,
        Err(e) => {
            warn!("cluster: cannot follow interest announcements: {e}");
            return;
        }
    };
    let mut stop = cluster.hub().shutdown_signal();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => None,
        };
        let Some(msg) = msg else { break };
        if msg.payload.as_ref() == cluster.node().as_bytes() {
            continue;
        }
        let Some(raw) = msg.subject.as_str().strip_prefix("espcam.interest.") else {
            continue;
        };
        let Ok(id) = CameraId::new(raw) else { continue };
        // Only cameras connected here: a proxy never republishes (no loops).
        if cluster.is_proxy(&id) || cluster.hub().camera(id.as_str()).is_none() {
            continue;
        }
        let deadline = now_us() + INTEREST_TTL.as_micros() as u64;
        let mut sh = cluster.lock();
        let running = match sh.publishing.get_mut(&id) {
            Some((d, task)) if !task.is_finished() => {
                *d = deadline;
                true
            }
            _ => false,
        };
        if !running {
            let task = tokio::spawn(publish(cluster.clone(), id.clone()));
            sh.publishing.insert(id, (deadline, task));
        }
    }
    let mut sh = cluster.lock();
    for (_, (_, t)) in sh.publishing.drain() {
        t.abort();
    }
}

/// Publishes a local camera's frames while someone elsewhere wants them.
async fn publish(cluster: Cluster, id: CameraId) {
    let Some(cam) = cluster.hub().camera(id.as_str()) else {
        return;
    };
    let mut tap = cam.tap(DropPolicy::Newest);
    drop(cam);
    let subject = frames_subject(&id);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            t = tap.next() => {
                let Some(t) = t else { break };
                if let Err(e) = cluster.0.client.publish(subject.clone(), t.frame.jpeg.clone()).await {
                    debug!("cluster: frame of camera {id} not published: {e}");
                }
            }
            _ = check.tick() => {
                let wanted = cluster.lock().publishing.get(&id).is_some_and(|(d, _)| *d > now_us());
                if !wanted || cluster.is_proxy(&id) {
                    break;
                }
            }
        }
    }
    cluster.lock().publishing.remove(&id);
}
