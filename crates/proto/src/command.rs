//! Commands: the seed's command table, validated.
//!
//! Wire form (backward compatible with the seed): `{"cmd":"quality","value":10}`. Optional
//! fields: `"id"` (a correlation id the camera echoes in its ack), `"camera"` (which camera,
//! used by browsers talking to the hub), `"type":"command"` (ignored, allowed for symmetry
//! with the other control messages).

use alloc::string::{String, ToString};
use core::fmt;

use serde_json::{Map, Value};

use crate::settings::{
    Brightness, Quality, Resolution, SettingError, Settings, invalid, parse_flag, parse_int,
    parse_resolution,
};

/// One camera command, with a value that is already in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Change the frame size.
    Resolution(Resolution),
    /// Change the JPEG quality (lower = better).
    Quality(Quality),
    /// Change the exposure compensation.
    Brightness(Brightness),
    /// Flip vertically.
    Vflip(bool),
    /// Mirror horizontally.
    Hmirror(bool),
    /// Restart the camera.
    Reboot,
}

/// Why a command could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not JSON, or not a JSON object.
    #[error("command is not a JSON object: {0}")]
    NotAnObject(String),
    /// No `"cmd"` string field.
    #[error("command has no \"cmd\" field; expected e.g. {{\"cmd\":\"quality\",\"value\":10}}")]
    MissingCmd,
    /// A `"cmd"` that is not in the table.
    #[error(
        "unknown command {0:?}; expected one of resolution, quality, brightness, vflip, hmirror, reboot"
    )]
    Unknown(String),
    /// A command that needs a value but has none.
    #[error("command {0} needs a \"value\"")]
    MissingValue(&'static str),
    /// A value out of range or of the wrong kind.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// An `"id"` that is not an unsigned 32-bit integer.
    #[error("command id must be an integer 0..=4294967295")]
    BadId,
}

impl Command {
    /// The wire name (`"quality"`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Resolution(_) => "resolution",
            Command::Quality(_) => "quality",
            Command::Brightness(_) => "brightness",
            Command::Vflip(_) => "vflip",
            Command::Hmirror(_) => "hmirror",
            Command::Reboot => "reboot",
        }
    }

    /// Validates a `cmd` name and its JSON `value`.
    pub fn from_parts(cmd: &str, value: Option<&Value>) -> Result<Self, CommandError> {
        let need = |name: &'static str| value.ok_or(CommandError::MissingValue(name));
        Ok(match cmd {
            "resolution" | "framesize" => {
                Command::Resolution(parse_resolution(need("resolution")?)?)
            }
            "quality" => Command::Quality(Quality::new(parse_int("quality", need("quality")?)?)?),
            "brightness" => Command::Brightness(Brightness::new(parse_int(
                "brightness",
                need("brightness")?,
            )?)?),
            "vflip" => Command::Vflip(parse_flag("vflip", need("vflip")?)?),
            "hmirror" => Command::Hmirror(parse_flag("hmirror", need("hmirror")?)?),
            "reboot" | "restart" => Command::Reboot,
            other => {
                let mut name: String = other.chars().take(32).collect();
                if other.len() > name.len() {
                    name.push_str("...");
                }
                return Err(CommandError::Unknown(name));
            }
        })
    }

    /// The JSON `value` of this command (`None` for `reboot`).
    pub fn value(&self) -> Option<Value> {
        Some(match *self {
            Command::Resolution(r) => Value::from(r.index()),
            Command::Quality(q) => Value::from(q.get()),
            Command::Brightness(b) => Value::from(b.get()),
            Command::Vflip(f) | Command::Hmirror(f) => Value::from(u8::from(f)),
            Command::Reboot => return None,
        })
    }

    /// Applies a setting command to `settings`. Returns `false` for `reboot`, which is not a
    /// setting and leaves `settings` as they are.
    pub fn apply(&self, settings: &mut Settings) -> bool {
        match *self {
            Command::Resolution(r) => settings.resolution = r,
            Command::Quality(q) => settings.quality = q,
            Command::Brightness(b) => settings.brightness = b,
            Command::Vflip(f) => settings.vflip = f,
            Command::Hmirror(f) => settings.hmirror = f,
            Command::Reboot => return false,
        }
        true
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(v) => write!(f, "{} {}", self.name(), v),
            None => f.write_str(self.name()),
        }
    }
}

/// A command as it travels: the command plus its optional correlation id and camera id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMsg {
    /// Correlation id, echoed in the camera's ack. `None` in the seed's simple form.
    pub id: Option<u32>,
    /// Target camera, when sent by a browser to the hub. Cameras ignore it.
    pub camera: Option<String>,
    /// The command.
    pub command: Command,
}

impl CommandMsg {
    /// A command without id or camera (the seed's simple form).
    pub fn simple(command: Command) -> Self {
        Self {
            id: None,
            camera: None,
            command,
        }
    }

    /// Parses a command from JSON text.
    pub fn from_json(text: &str) -> Result<Self, CommandError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| CommandError::NotAnObject(alloc::format!("invalid JSON ({e})")))?;
        match value {
            Value::Object(map) => Self::from_object(&map),
            other => Err(CommandError::NotAnObject(alloc::format!(
                "got {}",
                kind_of(&other)
            ))),
        }
    }

    /// Parses a command from an already decoded JSON object.
    pub fn from_object(map: &Map<String, Value>) -> Result<Self, CommandError> {
        let cmd = map
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or(CommandError::MissingCmd)?;
        let command = Command::from_parts(cmd, map.get("value"))?;
        let id = match map.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or(CommandError::BadId)?,
            ),
        };
        let camera = map
            .get("camera")
            .and_then(Value::as_str)
            .map(ToString::to_string);
        Ok(Self {
            id,
            camera,
            command,
        })
    }

    /// Encodes as JSON: `{"cmd":"quality","value":10}` plus `id` and `camera` when set.
    pub fn to_json(&self) -> String {
        let mut map = Map::new();
        if let Some(camera) = &self.camera {
            map.insert("camera".into(), Value::from(camera.as_str()));
        }
        map.insert("cmd".into(), Value::from(self.command.name()));
        if let Some(id) = self.id {
            map.insert("id".into(), Value::from(id));
        }
        if let Some(v) = self.command.value() {
            map.insert("value".into(), v);
        }
        Value::Object(map).to_string()
    }
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates `value` as a [`SettingError::Invalid`] for a field — re-exported for callers that
/// accept settings in other shapes (e.g. the hub's REST body).
pub fn invalid_value(field: &'static str, v: &Value, expected: &'static str) -> SettingError {
    invalid(field, v, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_simple_form() {
        let m = CommandMsg::from_json(r#"{"cmd":"quality","value":10}"#).unwrap();
        assert_eq!(
            m,
            CommandMsg::simple(Command::Quality(Quality::new(10).unwrap()))
        );
        assert_eq!(m.to_json(), r#"{"cmd":"quality","value":10}"#);
    }

    #[test]
    fn every_seed_command() {
        let cases = [
            (
                r#"{"cmd":"resolution","value":6}"#,
                Command::Resolution(Resolution::Vga),
            ),
            (
                r#"{"cmd":"resolution","value":"uxga"}"#,
                Command::Resolution(Resolution::Uxga),
            ),
            (
                r#"{"cmd":"quality","value":0}"#,
                Command::Quality(Quality::new(0).unwrap()),
            ),
            (
                r#"{"cmd":"brightness","value":-2}"#,
                Command::Brightness(Brightness::new(-2).unwrap()),
            ),
            (r#"{"cmd":"vflip","value":1}"#, Command::Vflip(true)),
            (
                r#"{"cmd":"hmirror","value":false}"#,
                Command::Hmirror(false),
            ),
            (r#"{"cmd":"reboot"}"#, Command::Reboot),
        ];
        for (json, cmd) in cases {
            assert_eq!(CommandMsg::from_json(json).unwrap().command, cmd, "{json}");
        }
    }

    #[test]
    fn errors_are_specific() {
        let err = |j: &str| CommandMsg::from_json(j).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"cmd":"quality","value":70}"#),
            "quality 70 out of range 0..=63"
        );
        assert_eq!(
            err(r#"{"cmd":"vflip","value":2}"#),
            "vflip 2 out of range 0..=1"
        );
        assert_eq!(
            err(r#"{"cmd":"quality"}"#),
            "command quality needs a \"value\""
        );
        assert!(err(r#"{"cmd":"zoom","value":1}"#).starts_with("unknown command \"zoom\""));
        assert!(err(r#"{"value":1}"#).contains("no \"cmd\" field"));
        assert!(err("[1,2]").contains("got an array"));
        assert!(err("{nope").contains("invalid JSON"));
        assert_eq!(
            err(r#"{"cmd":"quality","value":"high"}"#),
            "quality: invalid value \"high\", expected an integer"
        );
        assert_eq!(
            err(r#"{"cmd":"quality","value":1,"id":-1}"#),
            "command id must be an integer 0..=4294967295"
        );
    }

    #[test]
    fn id_and_camera_round_trip() {
        let m = CommandMsg {
            id: Some(7),
            camera: Some("cam-1".into()),
            command: Command::Brightness(Brightness::new(1).unwrap()),
        };
        let j = m.to_json();
        assert_eq!(
            j,
            r#"{"camera":"cam-1","cmd":"brightness","id":7,"value":1}"#
        );
        assert_eq!(CommandMsg::from_json(&j).unwrap(), m);
    }
}
