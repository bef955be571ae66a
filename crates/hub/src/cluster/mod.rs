//! Cluster mode: several hubs as one, on NATS (docs/CLUSTER.md).
//!
//! A service beside `recorder` and `ingest`, built on `state` only: it never touches HTTP
//! and the state layer never learns that NATS exists. Cameras held by other nodes appear
//! here as ordinary registry entries ("proxies") whose control link is this module — the
//! commands the hub queues to them go by NATS request/reply to the holding node, their
//! acks come back through [`Hub::on_ack`], and their frames arrive on NATS and go through
//! [`crate::state::camera::Camera::ingest`] — so every viewer output, the REST API and the
//! browser socket work on them unchanged.
//!
//! - [`config`]: `[cluster]`, `--cluster`, `--node`.
//! - [`directory`]: the JetStream KV entry of one camera.
//! - `frames`: publishing a held camera's frames while another node wants them, and
//!   subscribing (once per camera per node) to a remote camera's frames while it has viewers.
//! - `commands`: the request/reply responder and the proxies' command links.
//! - `events`: each node's camera and snapshot events on `espcam.events.<node>`, applied by
//!   the others to their proxies and buses.
//! - `requests`: snapshots across nodes (take, list, JPEG) on `espcam.node.<node>`.
//! - `recordings`: recordings across nodes (spans, export by chunks, playback batches) on
//!   `espcam.rec.<node>`.
//!
//! What it must never do: wait on NATS in a path a local camera or viewer waits on
//! (publishing runs in its own task behind a `DropPolicy::Newest` tap); take over a camera
//! that is connected to this hub (a local link always wins over a proxy); forward a
//! command or a frame it received from NATS back onto NATS (no loops).

mod commands;
pub mod config;
mod connect;
pub mod directory;
mod events;
mod frames;
mod recordings;
mod requests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use espcam_proto::CameraId;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::state::Hub;
use crate::state::camera::Source;
use crate::state::clock::now_us;
pub use config::ClusterConfig;
use directory::Entry;

/// The directory bucket.
pub const BUCKET: &str = "espcam_cameras";
/// How often this node writes its cameras' entries and reads everyone's.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The NATS options could not be built (a credentials or CA file).
    #[error("cluster: could not read {what} {path:?}: {io}")]
    File {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// The OS error.
        io: std::io::Error,
    },
    /// The NATS server refused this hub: its credentials, or TLS (certificate, CA).
    #[error("cluster: NATS at {url} refused this hub: {cause}")]
    Refused {
        /// The URL.
        url: String,
        /// What was refused, with the client's message.
        cause: String,
    },
    /// The NATS client refused the URL or options.
    #[error("cluster: could not connect to NATS at {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// The client's message.
        message: String,
    },
}

/// A camera held by another node, represented in this hub's registry.
#[derive(Debug)]
struct Proxy {
    /// The node that holds it.
    node: String,
    /// The control connection number of this proxy (to detach only our own link).
    conn: u64,
    /// Forwards queued commands to the holding node; ends when the link is replaced.
    link: JoinHandle<()>,
    /// The NATS frame subscription, while the camera has viewers here.
    frames: Option<JoinHandle<()>>,
    /// When the camera last had a viewer here, µs (the subscription lingers a little).
    watched_us: u64,
}

#[derive(Debug, Default)]
struct Shared {
    proxies: HashMap<CameraId, Proxy>,
    /// Local cameras whose frames other nodes asked for: camera → (deadline µs, publisher).
    publishing: HashMap<CameraId, (u64, JoinHandle<()>)>,
    /// Cameras whose holding node said they went offline: (node, its clock then, ms).
    /// That node's directory entries up to then are ignored.
    gone: HashMap<CameraId, (String, u64)>,
    /// Every node named in the directory since this hub started (tells a node that is
    /// down from a name that never existed).
    seen_nodes: HashSet<String>,
}

/// The running cluster service. Cheap to clone; `server` hands its view of the directory
/// to the HTTP layer (`http::nodes::NodeDirectory`), so neither layer imports the other.
#[derive(Debug, Clone)]
pub struct Cluster(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    hub: Hub,
    config: ClusterConfig,
    client: async_nats::Client,
    shared: Mutex<Shared>,
    /// Answers other nodes' snapshot requests (installed by `server`).
    service: OnceLock<Arc<dyn crate::state::nodes::NodeService>>,
    /// Answers other nodes' recording requests (installed by `server`).
    recordings: OnceLock<Arc<dyn crate::state::node_recordings::RecordingService>>,
    /// Wakes the directory pass early (another node said a camera came online).
    directory_now: tokio::sync::Notify,
}

impl Cluster {
    /// This hub's node name.
    pub fn this_node(&self) -> &str {
        &self.0.config.node
    }

    /// The node holding `camera`, when another node does (`None`: this node, or unknown).
    pub fn remote_node(&self, camera: &str) -> Option<String> {
        let id = CameraId::new(camera).ok()?;
        self.lock().proxies.get(&id).map(|p| p.node.clone())
    }
}

/// Subject of a camera's frames.
/// Answers requests on `subject` until the hub stops: each request with a reply subject is
/// answered by `answer(cluster, payload)` on its own task, so one slow answer never holds
/// the others. `what` names the requests in the log ("commands", "snapshot requests").
/// The one request/reply loop of the cluster (commands and node requests use it).
pub(crate) async fn serve_requests<F, Fut>(
    cluster: Cluster,
    subject: String,
    what: &'static str,
    answer: F,
) where
    F: Fn(Cluster, bytes::Bytes) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bytes::Bytes> + Send + 'static,
{
    use futures_util::StreamExt as _;
    let mut sub = match cluster.0.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            warn!("cluster: cannot answer {what} on {subject}: {e}");
            return;
        }
    };
    let answer = Arc::new(answer);
    let mut stop = cluster.hub().shutdown_signal();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => None,
        };
        let Some(msg) = msg else { break };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let (cluster, answer) = (cluster.clone(), answer.clone());
        tokio::spawn(async move {
            let body = answer(cluster.clone(), msg.payload).await;
            if let Err(e) = cluster.0.client.publish(reply_to, body).await {
                debug!("cluster: could not answer one of the {what}: {e}");
            }
        });
    }
}

pub fn frames_subject(camera: &CameraId) -> String {
    format!("espcam.frames.{camera}")
}
/// Subject on which nodes with viewers announce their interest in a camera.
pub fn interest_subject(camera: &CameraId) -> String {
    format!("espcam.interest.{camera}")
}
/// Subject of a node's command responder.
pub fn command_subject(node: &str) -> String {
    format!("espcam.cmd.{node}")
}

impl Cluster {
    /// Connects to NATS (retrying in the background when the server is not up yet: the hub
    /// serves its own cameras meanwhile) and starts the service's tasks.
    pub async fn start(hub: Hub, config: ClusterConfig) -> Result<Self, ClusterError> {
        let request_timeout = hub.config().ack_timeout + Duration::from_secs(1);
        let client = connect::connect(&config, request_timeout).await?;
        info!(
            "cluster: node {} on NATS {} (directory bucket {BUCKET}, entries live {} ms without a heartbeat)",
            config.node,
            config.url,
            config.ttl.as_millis()
        );
        let cluster = Self(Arc::new(Inner {
            hub,
            config,
            client,
            shared: Mutex::new(Shared::default()),
            service: OnceLock::new(),
            recordings: OnceLock::new(),
            directory_now: tokio::sync::Notify::new(),
        }));
        tokio::spawn(cluster.clone().directory_loop());
        tokio::spawn(frames::interest_loop(cluster.clone()));
        tokio::spawn(commands::responder(cluster.clone()));
        tokio::spawn(requests::responder(cluster.clone()));
        tokio::spawn(recordings::responder(cluster.clone()));
        tokio::spawn(events::publisher(cluster.clone()));
        tokio::spawn(events::receiver(cluster.clone()));
        Ok(cluster)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hub(&self) -> &Hub {
        &self.0.hub
    }

    fn node(&self) -> &str {
        &self.0.config.node
    }

    /// Whether `camera` is one of this node's proxies (held by another node).
    fn is_proxy(&self, camera: &CameraId) -> bool {
        self.lock().proxies.contains_key(camera)
    }

    /// The directory bucket, created by the first node that needs it.
    ///
    /// The bucket's stream is created here rather than with `create_key_value`, which
    /// first reads the account's JetStream info in a shape only servers from 2.10 on send
    /// (Debian bookworm ships 2.9): the same stream settings a KV bucket has — one value
    /// per key, `max_age` = the TTL, rollups, direct get, in memory (the directory is
    /// rebuilt by the next heartbeats after a NATS restart).
    async fn bucket(&self) -> Result<kv::Store, String> {
        use async_nats::jetstream::stream;
        let js = async_nats::jetstream::new(self.0.client.clone());
        if let Ok(s) = js.get_key_value(BUCKET).await {
            return Ok(self.checked(s).await);
        }
        let created = js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{BUCKET}"),
                description: Some("espcam camera directory: camera id -> holding node".into()),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 1,
                max_age: self.0.config.ttl,
                storage: stream::StorageType::Memory,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: 1,
                ..Default::default()
            })
            .await;
        if let Err(e) = created {
            // Two nodes starting together: the other one created the bucket a moment
            // earlier, with its own TTL ("stream name already in use with a different
            // configuration"). Use that bucket now instead of waiting for the next tick.
            return match js.get_key_value(BUCKET).await {
                Ok(s) => Ok(self.checked(s).await),
                Err(_) => Err(e.to_string()),
            };
        }
        js.get_key_value(BUCKET).await.map_err(|e| e.to_string())
    }

    /// Says so when the bucket keeps entries for another time than this node's `ttl`: the
    /// node that created the bucket set its `max_age`, and that value is in force for
    /// every node's entries.
    async fn checked(&self, store: kv::Store) -> kv::Store {
        if let Ok(status) = store.status().await
            && status.max_age() != self.0.config.ttl
        {
            warn!(
                "cluster: the directory keeps entries {} ms without a heartbeat (set by the node that created it), not this node's ttl of {} ms",
                status.max_age().as_millis(),
                self.0.config.ttl.as_millis()
            );
        }
        store
    }

    /// Heartbeats this node's cameras into the directory and makes the registry match
    /// everyone else's, twice a second, until the hub stops.
    async fn directory_loop(self) {
        let mut stop = self.hub().shutdown_signal();
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut store: Option<kv::Store> = None;
        let mut published: HashSet<CameraId> = HashSet::new();
        let mut last_read_us = now_us();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.0.directory_now.notified() => {}
                _ = stop.changed() => break,
            }
            if store.is_none() {
                match self.bucket().await {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        if !failing {
                            warn!(
                                "cluster: directory unavailable ({e}); serving this hub's own cameras meanwhile"
                            );
                            failing = true;
                        }
                    }
                }
            }
            let Some(s) = &store else {
                self.expire_if_stale(last_read_us);
                continue;
            };
            // Bounded: a NATS call that never answers (a server gone mid-stream) must not
            // stop this loop, which is what expires remote cameras.
            let bound = self.0.config.ttl.max(Duration::from_secs(1));
            let beat = tokio::time::timeout(bound, self.heartbeat(s, &mut published)).await;
            let read = match beat {
                Ok(()) => tokio::time::timeout(bound, directory::read_all(s))
                    .await
                    .unwrap_or_else(|_| Err("the directory did not answer in time".into())),
                Err(_) => Err("a heartbeat did not complete in time".into()),
            };
            match read {
                Ok(entries) => {
                    if failing {
                        info!("cluster: directory reachable again");
                        failing = false;
                    }
                    last_read_us = now_us();
                    self.reconcile(&entries);
                }
                Err(e) => {
                    if !failing {
                        warn!(
                            "cluster: could not read the directory ({e}); serving this hub's own cameras meanwhile"
                        );
                        failing = true;
                    }
                    // A restarted NATS server may have lost the bucket: look it up again.
                    store = None;
                    published.clear();
                    self.expire_if_stale(last_read_us);
                }
            }
            frames::follow_viewers(&self).await;
        }
        let ids: Vec<CameraId> = self.lock().proxies.keys().cloned().collect();
        for id in ids {
            self.drop_proxy(&id, "this hub stopped");
        }
    }

    /// Writes the entry of every camera connected to this hub (proxies excluded), and one
    /// last `online: false` for a camera that just went offline while this node held it.
    async fn heartbeat(&self, s: &kv::Store, published: &mut HashSet<CameraId>) {
        let now_ms = now_us() / 1000;
        for cam in self.hub().cameras() {
            if self.is_proxy(&cam.id) {
                published.remove(&cam.id);
                continue;
            }
            let online = cam.online();
            if !online && !published.contains(&cam.id) {
                continue;
            }
            let info = cam.info();
            let entry = Entry {
                node: self.node().to_string(),
                online,
                settings: info.settings,
                telemetry: info.telemetry,
                sensor: info.sensor,
                updated_ms: now_ms,
            };
            if !online {
                published.remove(&cam.id);
                // Only if the directory still says it is ours (it may have moved on).
                let ours = directory::get(s, &cam.id)
                    .await
                    .is_ok_and(|e| e.is_some_and(|e| e.node == self.node()));
                if !ours {
                    continue;
                }
            } else {
                published.insert(cam.id.clone());
            }
            if let Err(e) = s.put(cam.id.as_str(), entry.to_bytes()).await {
                debug!("cluster: heartbeat of camera {} failed: {e}", cam.id);
            }
        }
    }

    /// Makes the proxies match the directory: one per camera another node holds online.
    fn reconcile(&self, entries: &[(CameraId, Entry)]) {
        let now_ms = now_us() / 1000;
        let ttl_ms = self.0.config.ttl.as_millis() as u64;
        let mut wanted: HashMap<&CameraId, &Entry> = HashMap::new();
        {
            let mut sh = self.lock();
            for (id, e) in entries {
                if !sh.seen_nodes.contains(&e.node) {
                    sh.seen_nodes.insert(e.node.clone());
                }
                let fresh = now_ms.saturating_sub(e.updated_ms) <= ttl_ms;
                let said_gone = match sh.gone.get(id) {
                    Some((node, at)) if *node == e.node && e.updated_ms <= *at => true,
                    Some(_) => {
                        sh.gone.remove(id);
                        false
                    }
                    None => false,
                };
                if e.node != self.node() && e.online && fresh && !said_gone {
                    wanted.insert(id, e);
                }
            }
            // Entries gone from the directory need no memory of their end.
            sh.gone.retain(|id, _| entries.iter().any(|(e, _)| e == id));
        }
        // Gone, offline, stale, or now held here.
        let stale: Vec<CameraId> = self
            .lock()
            .proxies
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .cloned()
            .collect();
        for id in stale {
            self.drop_proxy(&id, "its node no longer holds it");
        }
        for (id, e) in wanted {
            self.ensure_proxy(id, e);
        }
    }

    /// Without a directory for longer than the TTL, remote cameras are unknown: drop them.
    fn expire_if_stale(&self, last_read_us: u64) {
        let ttl_us = self.0.config.ttl.as_micros() as u64;
        if now_us().saturating_sub(last_read_us) <= ttl_us {
            return;
        }
        let ids: Vec<CameraId> = self.lock().proxies.keys().cloned().collect();
        for id in ids {
            self.drop_proxy(&id, "the cluster directory is unreachable");
        }
    }

    fn ensure_proxy(&self, id: &CameraId, e: &Entry) {
        let hub = self.hub();
        let existing = self.lock().proxies.get(id).map(|p| p.node.clone());
        match existing {
            Some(node) => {
                if node != e.node {
                    info!("cluster: camera {id} moved to node {:?}", e.node);
                    if let Some(p) = self.lock().proxies.get_mut(id) {
                        p.node = e.node.clone();
                    }
                }
            }
            None => {
                // A camera connected to this hub wins over the directory.
                if hub.camera(id.as_str()).is_some_and(|c| c.online()) {
                    return;
                }
                let cam = match hub.register(id, Source::Push) {
                    Ok(c) => c,
                    Err(err) => {
                        debug!("cluster: cannot show remote camera {id}: {err}");
                        return;
                    }
                };
                let attached = hub.attach_control(
                    cam,
                    crate::state::LinkInfo {
                        sensor: e.sensor.clone(),
                        settings: e.settings,
                        relayed: true,
                        ..Default::default()
                    },
                );
                let conn = attached.conn;
                info!("cluster: camera {id} is on node {:?}", e.node);
                let link = tokio::spawn(commands::proxy_link(self.clone(), attached));
                self.lock().proxies.insert(
                    id.clone(),
                    Proxy {
                        node: e.node.clone(),
                        conn,
                        link,
                        frames: None,
                        watched_us: 0,
                    },
                );
            }
        }
        if let (Some(t), Some(cam)) = (&e.telemetry, hub.camera(id.as_str()))
            && self.is_proxy(id)
        {
            hub.on_telemetry(&cam, t.clone());
        } else if let (Some(s), Some(cam)) = (e.settings, hub.camera(id.as_str()))
            && self.is_proxy(id)
        {
            hub.on_settings(&cam, s);
        }
    }

    /// Ends a proxy: its command link, its frame subscription, and (if it is still the
    /// camera's link) marks the camera offline here.
    fn drop_proxy(&self, id: &CameraId, reason: &str) {
        let Some(p) = self.lock().proxies.remove(id) else {
            return;
        };
        p.link.abort();
        if let Some(f) = p.frames {
            f.abort();
        }
        if let Some(cam) = self.hub().camera(id.as_str()) {
            cam.set_relayed(false);
            self.hub().detach_control(&cam, p.conn, reason);
        }
    }

    /// The proxy's link was replaced by a real connection to this hub (the camera moved
    /// here): forget the proxy without touching the camera.
    fn release_proxy(&self, id: &CameraId, conn: u64) {
        let mut sh = self.lock();
        if sh.proxies.get(id).is_some_and(|p| p.conn == conn)
            && let Some(p) = sh.proxies.remove(id)
        {
            if let Some(f) = p.frames {
                f.abort();
            }
            info!("cluster: camera {id} is now connected to this hub");
        }
    }

    /// Whether `node` was named in the directory since this hub started.
    fn seen_node(&self, node: &str) -> bool {
        self.lock().seen_nodes.contains(node)
    }

    /// The node holding `camera` according to this node's proxies.
    fn holder(&self, camera: &CameraId) -> Option<String> {
        self.lock().proxies.get(camera).map(|p| p.node.clone())
    }
}
