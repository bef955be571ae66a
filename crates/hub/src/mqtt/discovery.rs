//! Topic names and Home Assistant discovery payloads: pure functions, no I/O.
//!
//! Layout (prefix `espcam`, discovery prefix `homeassistant`, client id `espcam-hub`):
//!
//! - `espcam/hub/status`: `online` / `offline` (retained; `offline` is the last will);
//! - `espcam/hub/<leaf>`: hub sensors (`cameras_online`, `recording_used_bytes`, `disk_free_bytes`);
//! - `espcam/camera/<id>/<leaf>`: camera state (`online`, `telemetry` JSON, `resolution`,
//!   `quality`, `brightness`, `vflip`, `hmirror`, `recording`, `motion`, `image`);
//! - `espcam/camera/<id>/<leaf>/set`: commands;
//! - `homeassistant/<component>/<node>/<object>/config`: discovery (retained), node
//!   `espcam-hub` for the hub and `espcam-hub_<id>` for a camera.
//!
//! Unique ids derive from the client id and the camera id only, so they are stable across
//! restarts. This module must never hold state: the service decides when to publish.

use espcam_proto::{CameraId, Resolution};
use serde_json::{Map, Value, json};

use crate::mqtt::config::MqttConfig;

/// Topic names for one hub.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
    discovery: String,
    client_id: String,
}

impl Topics {
    /// The topics of a hub configured with `c`.
    pub fn new(c: &MqttConfig) -> Self {
        Self {
            prefix: c.topic_prefix.clone(),
            discovery: c.discovery_prefix.clone(),
            client_id: c.client_id.clone(),
        }
    }

    /// The hub's availability topic (last will).
    pub fn hub_status(&self) -> String {
        format!("{}/hub/status", self.prefix)
    }

    /// A hub-level state topic.
    pub fn hub(&self, leaf: &str) -> String {
        format!("{}/hub/{leaf}", self.prefix)
    }

    /// A camera state topic.
    pub fn camera(&self, id: &CameraId, leaf: &str) -> String {
        format!("{}/camera/{id}/{leaf}", self.prefix)
    }

    /// A camera command topic.
    pub fn command(&self, id: &CameraId, leaf: &str) -> String {
        format!("{}/camera/{id}/{leaf}/set", self.prefix)
    }

    /// The filter matching every command topic.
    pub fn command_filter(&self) -> String {
        format!("{}/camera/+/+/set", self.prefix)
    }

    /// Home Assistant's birth/will topic: `online` there means it (re)started and wants
    /// the discovery configs again.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }

    /// `(camera id, leaf)` of a command topic, if `topic` is one.
    pub fn parse_command<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/camera/")?
            .strip_suffix("/set")?;
        let (id, leaf) = rest.split_once('/')?;
        (!leaf.contains('/')).then_some((id, leaf))
    }

    fn config_topic(&self, component: &str, node: &str, object: &str) -> String {
        format!("{}/{component}/{node}/{object}/config", self.discovery)
    }

    fn hub_identifier(&self) -> String {
        self.client_id.clone()
    }

    fn camera_node(&self, id: &CameraId) -> String {
        format!("{}_{id}", self.client_id)
    }
}

/// What the device block says about a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraDevice {
    /// `ESP32-S3 camera` or `virtual`.
    pub model: String,
    /// Firmware, when the camera reported it.
    pub firmware: Option<String>,
}

impl CameraDevice {
    /// From the sensor and firmware of the camera's hello.
    pub fn new(sensor: Option<&str>, firmware: Option<&str>) -> Self {
        let model = if sensor == Some("virtual") {
            "virtual"
        } else {
            "ESP32-S3 camera"
        };
        Self {
            model: model.into(),
            // Peer text: bounded before it goes anywhere.
            firmware: firmware.map(|f| f.chars().take(64).collect()),
        }
    }
}

fn origin() -> Value {
    json!({
        "name": "espcam",
        "sw_version": env!("CARGO_PKG_VERSION"),
        "support_url": "https://github.com/espcam/espcam",
    })
}

fn hub_device(t: &Topics) -> Value {
    json!({
        "identifiers": [t.hub_identifier()],
        "name": "espcam hub",
        "manufacturer": "espcam",
        "model": "espcam hub",
        "sw_version": env!("CARGO_PKG_VERSION"),
    })
}

/// One retained discovery message: topic and JSON payload.
pub type Config = (String, Value);

#[allow(clippy::too_many_arguments)]
fn entity(
    t: &Topics,
    component: &str,
    node: &str,
    object: &str,
    name: &str,
    device: &Value,
    availability: &Value,
    extra: Value,
) -> Config {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("unique_id".into(), format!("{node}_{object}").into());
    m.insert("object_id".into(), format!("{node}_{object}").into());
    m.insert("device".into(), device.clone());
    m.insert("origin".into(), origin());
    m.insert("availability".into(), availability.clone());
    m.insert("availability_mode".into(), "all".into());
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    (t.config_topic(component, node, object), Value::Object(m))
}

/// The hub's own entities.
pub fn hub_configs(t: &Topics) -> Vec<Config> {
    let node = t.hub_identifier();
    let dev = hub_device(t);
    let avail = json!([{ "topic": t.hub_status() }]);
    let e = |component: &str, object: &str, name: &str, extra: Value| {
        entity(t, component, &node, object, name, &dev, &avail, extra)
    };
    vec![
        e(
            "sensor",
            "cameras_online",
            "Cameras online",
            json!({ "state_topic": t.hub("cameras_online"), "state_class": "measurement" }),
        ),
        e(
            "sensor",
            "recording_used",
            "Recording storage used",
            json!({ "state_topic": t.hub("recording_used_bytes"), "device_class": "data_size",
                    "unit_of_measurement": "B", "state_class": "measurement" }),
        ),
        e(
            "sensor",
            "recording_free",
            "Recording storage free",
            json!({ "state_topic": t.hub("disk_free_bytes"), "device_class": "data_size",
                    "unit_of_measurement": "B", "state_class": "measurement" }),
        ),
    ]
}

/// The topics of every discovery config a camera has (to clear them).
pub fn camera_config_topics(t: &Topics, id: &CameraId) -> Vec<String> {
    camera_configs(t, id, &CameraDevice::new(None, None))
        .into_iter()
        .map(|(topic, _)| topic)
        .collect()
}

/// A camera's device and its entities.
pub fn camera_configs(t: &Topics, id: &CameraId, d: &CameraDevice) -> Vec<Config> {
    let node = t.camera_node(id);
    let mut dev = json!({
        "identifiers": [node.clone()],
        "name": id.as_str(),
        "manufacturer": "espcam",
        "model": d.model,
        "via_device": t.hub_identifier(),
    });
    if let (Some(fw), Value::Object(m)) = (&d.firmware, &mut dev) {
        m.insert("sw_version".into(), fw.as_str().into());
    }
    let both = json!([{ "topic": t.hub_status() }, { "topic": t.camera(id, "online") }]);
    let hub_only = json!([{ "topic": t.hub_status() }]);
    let e = |component: &str, object: &str, name: &str, extra: Value| {
        entity(t, component, &node, object, name, &dev, &both, extra)
    };
    let telemetry = t.camera(id, "telemetry");
    let sensor = |object: &str, name: &str, key: &str, extra: Value| {
        let mut m = json!({
            "state_topic": telemetry,
            "value_template": format!("{{{{ value_json.{key} }}}}"),
            "state_class": "measurement",
        });
        if let (Value::Object(m), Value::Object(x)) = (&mut m, extra) {
            m.extend(x);
        }
        e("sensor", object, name, m)
    };
    let switch = |object: &str, name: &str| {
        e(
            "switch",
            object,
            name,
            json!({ "state_topic": t.camera(id, object), "command_topic": t.command(id, object),
                    "payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF" }),
        )
    };
    let options: Vec<&str> = Resolution::ALL.iter().map(|r| r.name()).collect();
    vec![
        e(
            "camera",
            "image",
            "Image",
            json!({ "topic": t.camera(id, "image") }),
        ),
        sensor(
            "fps",
            "Frame rate",
            "fps",
            json!({ "unit_of_measurement": "fps" }),
        ),
        sensor(
            "bitrate_in",
            "Bitrate in",
            "bitrate_kbps",
            json!({ "device_class": "data_rate", "unit_of_measurement": "kbit/s" }),
        ),
        sensor(
            "rssi",
            "Wi-Fi signal",
            "rssi",
            json!({ "device_class": "signal_strength", "unit_of_measurement": "dBm",
                    "entity_category": "diagnostic" }),
        ),
        sensor(
            "heap_free",
            "Free heap",
            "heap_free",
            json!({ "device_class": "data_size", "unit_of_measurement": "B",
                    "entity_category": "diagnostic" }),
        ),
        sensor(
            "psram_free",
            "Free PSRAM",
            "psram_free",
            json!({ "device_class": "data_size", "unit_of_measurement": "B",
                    "entity_category": "diagnostic" }),
        ),
        sensor(
            "uptime",
            "Uptime",
            "uptime_s",
            json!({ "device_class": "duration", "unit_of_measurement": "s",
                    "entity_category": "diagnostic", "state_class": "total_increasing" }),
        ),
        sensor("viewers", "Viewers", "viewers", json!({})),
        e(
            "select",
            "resolution",
            "Resolution",
            json!({ "state_topic": t.camera(id, "resolution"),
                    "command_topic": t.command(id, "resolution"), "options": options,
                    "entity_category": "config" }),
        ),
        e(
            "number",
            "quality",
            "JPEG quality",
            json!({ "state_topic": t.camera(id, "quality"), "command_topic": t.command(id, "quality"),
                    "min": 0, "max": 63, "step": 1, "mode": "box", "entity_category": "config" }),
        ),
        e(
            "number",
            "brightness",
            "Brightness",
            json!({ "state_topic": t.camera(id, "brightness"),
                    "command_topic": t.command(id, "brightness"),
                    "min": -2, "max": 2, "step": 1, "mode": "slider", "entity_category": "config" }),
        ),
        switch("vflip", "Vertical flip"),
        switch("hmirror", "Horizontal mirror"),
        switch("recording", "Recording"),
        e(
            "button",
            "reboot",
            "Reboot",
            json!({ "command_topic": t.command(id, "reboot"), "payload_press": "PRESS",
                    "device_class": "restart", "entity_category": "config" }),
        ),
        e(
            "button",
            "snapshot",
            "Save snapshot",
            json!({ "command_topic": t.command(id, "snapshot"), "payload_press": "PRESS" }),
        ),
        // Its own state is whether the camera is online, so it depends only on the hub.
        entity(
            t,
            "binary_sensor",
            &node,
            "online",
            "Online",
            &dev,
            &hub_only,
            json!({ "state_topic": t.camera(id, "online"), "payload_on": "online",
                    "payload_off": "offline", "device_class": "connectivity",
                    "entity_category": "diagnostic" }),
        ),
        e(
            "binary_sensor",
            "motion",
            "Motion",
            json!({ "state_topic": t.camera(id, "motion"), "payload_on": "ON",
                    "payload_off": "OFF", "device_class": "motion" }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_entities_have_stable_ids_and_paired_topics() {
        let t = Topics::new(&MqttConfig::new("h", 1));
        let id = CameraId::new("porch").unwrap();
        let c = camera_configs(&t, &id, &CameraDevice::new(Some("virtual"), Some("sim 1")));
        assert_eq!(c.len(), 18);
        let (topic, v) = &c[8];
        assert_eq!(
            topic,
            "homeassistant/select/espcam-hub_porch/resolution/config"
        );
        assert_eq!(v["unique_id"], "espcam-hub_porch_resolution");
        assert_eq!(v["command_topic"], "espcam/camera/porch/resolution/set");
        assert_eq!(v["state_topic"], "espcam/camera/porch/resolution");
        assert_eq!(v["device"]["model"], "virtual");
        assert_eq!(v["device"]["via_device"], "espcam-hub");
        assert_eq!(v["options"][6], "VGA");
        assert_eq!(
            t.parse_command("espcam/camera/porch/quality/set"),
            Some(("porch", "quality"))
        );
        assert_eq!(t.parse_command("espcam/camera/porch/quality"), None);
        assert_eq!(t.parse_command("espcam/camera/a/b/c/set"), None);
        assert_eq!(camera_config_topics(&t, &id)[0], c[0].0);
    }
}
