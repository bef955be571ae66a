//! One camera's entry in the `espcam_cameras` JetStream KV bucket: key = camera id, value
//! = this JSON. Written by the holding node at every heartbeat; the bucket's `max_age`
//! removes the entries of a node that stopped writing, so a dead node's cameras go stale on
//! their own. Values from the bucket are peer input: parsed, never trusted to be valid.

use async_nats::jetstream::kv;
use espcam_proto::{CameraId, Settings, Telemetry};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

/// Largest entry accepted from the bucket.
const MAX_ENTRY: usize = 8 * 1024;
/// Most entries read per pass (a bound on what a broken peer can make this node hold).
const MAX_ENTRIES: usize = 4096;

/// What the directory says about one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The node whose hub the camera is connected to.
    pub node: String,
    /// Whether its control link is up there.
    pub online: bool,
    /// Settings in force.
    pub settings: Option<Settings>,
    /// Latest telemetry.
    pub telemetry: Option<Telemetry>,
    /// Sensor model.
    #[serde(default)]
    pub sensor: Option<String>,
    /// When the holding node wrote this, ms since the Unix epoch.
    pub updated_ms: u64,
}

impl Entry {
    /// The JSON value stored in the bucket.
    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// Parses a value from the bucket.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() > MAX_ENTRY {
            return None;
        }
        let e: Entry = serde_json::from_slice(raw).ok()?;
        crate::cluster::config::valid_node(&e.node).then_some(e)
    }
}

/// One camera's entry, if any.
pub(crate) async fn get(s: &kv::Store, id: &CameraId) -> Result<Option<Entry>, String> {
    let raw = s.get(id.as_str()).await.map_err(|e| e.to_string())?;
    Ok(raw.and_then(|r| Entry::parse(&r)))
}

/// Every valid entry.
pub(crate) async fn read_all(s: &kv::Store) -> Result<Vec<(CameraId, Entry)>, String> {
    let mut keys = s.keys().await.map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| e.to_string())?;
        if let Ok(id) = CameraId::new(&k) {
            ids.push(id);
        }
        if ids.len() >= MAX_ENTRIES {
            break;
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(e) = get(s, &id).await? {
            out.push((id, e));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let e = Entry {
            node: "hub-a".into(),
            online: true,
            settings: Some(Settings::default()),
            telemetry: None,
            sensor: Some("OV2640".into()),
            updated_ms: 12,
        };
        assert_eq!(Entry::parse(&e.to_bytes()), Some(e));
        assert_eq!(Entry::parse(b"{"), None);
        let bad =
            br#"{"node":"a.b","online":true,"settings":null,"telemetry":null,"updated_ms":1}"#;
        assert_eq!(Entry::parse(bad), None);
        assert_eq!(Entry::parse(&vec![b' '; MAX_ENTRY + 1]), None);
    }
}
