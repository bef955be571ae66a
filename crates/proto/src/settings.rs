//! Camera settings as validated values.
//!
//! Parse, don't validate: a [`Quality`] is always in `0..=63`, a [`Brightness`] always in
//! `-2..=2`, a [`Resolution`] always one of the seed's thirteen frame sizes. Everything that
//! crosses a wire is turned into these types once, at the edge, with a [`SettingError`] that
//! names the field, the value and what was expected.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A setting value that was out of range or of the wrong kind.
///
/// Its `Display` is the message users see, e.g. `quality 70 out of range 0..=63`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A number outside the field's range.
    #[error("{field} {value} out of range {expected}")]
    OutOfRange {
        /// The setting's wire name (`quality`).
        field: &'static str,
        /// The value as received.
        value: i64,
        /// The allowed range (`0..=63`).
        expected: &'static str,
    },
    /// A value of the wrong JSON kind, or an unknown name.
    #[error("{field}: invalid value {value}, expected {expected}")]
    Invalid {
        /// The setting's wire name.
        field: &'static str,
        /// The value as received, rendered as JSON.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Frame size, by the seed's own index `0..=12` (QQVGA … QXGA).
///
/// The index is **not** the esp32-camera driver's `framesize_t` number: that enum has extra
/// sizes (96X96, 128X128, 240X240, 320X320, FHD, …) whose positions changed between driver
/// releases. Firmware must map by name with [`Resolution::framesize_name`], never by number.
/// See docs/PROTOCOL.md, "Resolution table".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Resolution {
    /// 160×120
    Qqvga = 0,
    /// 176×144
    Qcif = 1,
    /// 240×176
    Hqvga = 2,
    /// 320×240
    Qvga = 3,
    /// 400×296
    Cif = 4,
    /// 480×320
    Hvga = 5,
    /// 640×480
    Vga = 6,
    /// 800×600
    Svga = 7,
    /// 1024×768
    Xga = 8,
    /// 1280×720
    Hd = 9,
    /// 1280×1024
    Sxga = 10,
    /// 1600×1200
    Uxga = 11,
    /// 2048×1536
    Qxga = 12,
}

/// One row of the resolution table: the single source of truth for names and sizes.
struct ResolutionRow {
    res: Resolution,
    name: &'static str,
    width: u16,
    height: u16,
    framesize: &'static str,
}

const TABLE: [ResolutionRow; 13] = {
    use Resolution::*;
    const fn row(
        res: Resolution,
        name: &'static str,
        width: u16,
        height: u16,
        framesize: &'static str,
    ) -> ResolutionRow {
        ResolutionRow {
            res,
            name,
            width,
            height,
            framesize,
        }
    }
    [
        row(Qqvga, "QQVGA", 160, 120, "FRAMESIZE_QQVGA"),
        row(Qcif, "QCIF", 176, 144, "FRAMESIZE_QCIF"),
        row(Hqvga, "HQVGA", 240, 176, "FRAMESIZE_HQVGA"),
        row(Qvga, "QVGA", 320, 240, "FRAMESIZE_QVGA"),
        row(Cif, "CIF", 400, 296, "FRAMESIZE_CIF"),
        row(Hvga, "HVGA", 480, 320, "FRAMESIZE_HVGA"),
        row(Vga, "VGA", 640, 480, "FRAMESIZE_VGA"),
        row(Svga, "SVGA", 800, 600, "FRAMESIZE_SVGA"),
        row(Xga, "XGA", 1024, 768, "FRAMESIZE_XGA"),
        row(Hd, "HD", 1280, 720, "FRAMESIZE_HD"),
        row(Sxga, "SXGA", 1280, 1024, "FRAMESIZE_SXGA"),
        row(Uxga, "UXGA", 1600, 1200, "FRAMESIZE_UXGA"),
        row(Qxga, "QXGA", 2048, 1536, "FRAMESIZE_QXGA"),
    ]
};

impl Resolution {
    /// All thirteen sizes, by index.
    pub const ALL: [Resolution; 13] = {
        let mut all = [Resolution::Qqvga; 13];
        let mut i = 0;
        while i < 13 {
            all[i] = TABLE[i].res;
            i += 1;
        }
        all
    };

    const RANGE: &'static str = "0..=12";

    fn row(self) -> &'static ResolutionRow {
        &TABLE[self as usize]
    }

    /// The seed's index, `0..=12`.
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// From the seed's index.
    pub fn from_index(index: i64) -> Result<Self, SettingError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| TABLE.get(i))
            .map(|r| r.res)
            .ok_or(SettingError::OutOfRange {
                field: "resolution",
                value: index,
                expected: Self::RANGE,
            })
    }

    /// From a name such as `"VGA"` (case-insensitive), or a decimal index such as `"6"`.
    pub fn from_name(name: &str) -> Result<Self, SettingError> {
        if let Some(row) = TABLE.iter().find(|r| r.name.eq_ignore_ascii_case(name)) {
            return Ok(row.res);
        }
        if let Ok(i) = name.trim().parse::<i64>() {
            return Self::from_index(i);
        }
        Err(SettingError::Invalid {
            field: "resolution",
            value: alloc::format!("{name:?}"),
            expected: "an index 0..=12 or one of QQVGA, QCIF, HQVGA, QVGA, CIF, HVGA, VGA, SVGA, XGA, HD, SXGA, UXGA, QXGA",
        })
    }

    /// Upper-case name, e.g. `"VGA"`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// Width in pixels.
    pub fn width(self) -> u16 {
        self.row().width
    }

    /// Height in pixels.
    pub fn height(self) -> u16 {
        self.row().height
    }

    /// The esp32-camera `framesize_t` constant for this size, e.g. `"FRAMESIZE_VGA"`.
    pub fn framesize_name(self) -> &'static str {
        self.row().framesize
    }

    /// The size whose dimensions are exactly `width`×`height`, if any.
    pub fn from_dimensions(width: u16, height: u16) -> Option<Self> {
        TABLE
            .iter()
            .find(|r| r.width == width && r.height == height)
            .map(|r| r.res)
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Resolution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.index())
    }
}

impl<'de> Deserialize<'de> for Resolution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        parse_resolution(&v).map_err(serde::de::Error::custom)
    }
}

/// JPEG quality `0..=63`; lower is better quality and bigger frames (the esp32-camera scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quality(u8);

impl Quality {
    /// The largest (worst) quality value.
    pub const MAX: u8 = 63;

    /// Validates `value`.
    pub fn new(value: i64) -> Result<Self, SettingError> {
        match u8::try_from(value) {
            Ok(v) if v <= Self::MAX => Ok(Self(v)),
            _ => Err(SettingError::OutOfRange {
                field: "quality",
                value,
                expected: "0..=63",
            }),
        }
    }

    /// The value, always `0..=63`.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Exposure compensation `-2..=2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Brightness(i8);

impl Brightness {
    /// Validates `value`.
    pub fn new(value: i64) -> Result<Self, SettingError> {
        match i8::try_from(value) {
            Ok(v) if (-2..=2).contains(&v) => Ok(Self(v)),
            _ => Err(SettingError::OutOfRange {
                field: "brightness",
                value,
                expected: "-2..=2",
            }),
        }
    }

    /// The value, always `-2..=2`.
    pub const fn get(self) -> i8 {
        self.0
    }
}

macro_rules! int_newtype_serde {
    ($ty:ty, $prim:ty, $ser:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.$ser(self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = i64::deserialize(d)?;
                <$ty>::new(v).map_err(serde::de::Error::custom)
            }
        }
    };
}
int_newtype_serde!(Quality, u8, serialize_u8);
int_newtype_serde!(Brightness, i8, serialize_i8);

/// Every setting a camera has, as in force on the sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Settings {
    /// Frame size.
    pub resolution: Resolution,
    /// JPEG quality (lower = better).
    pub quality: Quality,
    /// Exposure compensation.
    pub brightness: Brightness,
    /// Vertical flip. On the wire `0`/`1` (booleans are accepted too).
    #[serde(with = "vflip_flag")]
    pub vflip: bool,
    /// Horizontal mirror. On the wire `0`/`1` (booleans are accepted too).
    #[serde(with = "hmirror_flag")]
    pub hmirror: bool,
}

impl Default for Settings {
    /// The seed-002 defaults: VGA, quality 12, no flips.
    fn default() -> Self {
        Self {
            resolution: Resolution::Vga,
            quality: Quality(12),
            brightness: Brightness(0),
            vflip: false,
            hmirror: false,
        }
    }
}

/// Parses a 0/1 flag (booleans are accepted too).
pub(crate) fn parse_flag(field: &'static str, v: &serde_json::Value) -> Result<bool, SettingError> {
    match v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(other) => Err(SettingError::OutOfRange {
                field,
                value: other,
                expected: "0..=1",
            }),
            None => Err(invalid(field, v, "0 or 1")),
        },
        _ => Err(invalid(field, v, "0 or 1")),
    }
}

/// Parses a resolution given as an index or a name.
pub(crate) fn parse_resolution(v: &serde_json::Value) -> Result<Resolution, SettingError> {
    match v {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Resolution::from_index(i),
            None => Err(invalid(
                "resolution",
                v,
                "an integer index 0..=12 or a name such as \"VGA\"",
            )),
        },
        serde_json::Value::String(s) => Resolution::from_name(s),
        _ => Err(invalid(
            "resolution",
            v,
            "an index 0..=12 or a name such as \"VGA\"",
        )),
    }
}

/// Parses an integer-valued setting, rejecting fractions and other JSON kinds.
pub(crate) fn parse_int(field: &'static str, v: &serde_json::Value) -> Result<i64, SettingError> {
    v.as_i64().ok_or_else(|| invalid(field, v, "an integer"))
}

pub(crate) fn invalid(
    field: &'static str,
    v: &serde_json::Value,
    expected: &'static str,
) -> SettingError {
    let mut value = serde_json::to_string(v).unwrap_or_default();
    if value.len() > 64 {
        // Never echo a huge attacker-supplied value back into logs and error messages.
        let mut cut = 61;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push_str("...");
    }
    SettingError::Invalid {
        field,
        value,
        expected,
    }
}

/// Serde helpers for a 0/1 flag field; one module per field so errors name the field.
macro_rules! flag_module {
    ($module:ident, $field:literal) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(u8::from(*v))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                super::parse_flag($field, &v).map_err(serde::de::Error::custom)
            }
        }
    };
}
flag_module!(vflip_flag, "vflip");
flag_module!(hmirror_flag, "hmirror");

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn resolution_table_matches_the_seed() {
        let expected = [
            ("QQVGA", 160, 120),
            ("QCIF", 176, 144),
            ("HQVGA", 240, 176),
            ("QVGA", 320, 240),
            ("CIF", 400, 296),
            ("HVGA", 480, 320),
            ("VGA", 640, 480),
            ("SVGA", 800, 600),
            ("XGA", 1024, 768),
            ("HD", 1280, 720),
            ("SXGA", 1280, 1024),
            ("UXGA", 1600, 1200),
            ("QXGA", 2048, 1536),
        ];
        for (i, (name, w, h)) in expected.into_iter().enumerate() {
            let r = Resolution::from_index(i as i64).unwrap();
            assert_eq!((r.name(), r.width(), r.height()), (name, w, h));
            assert_eq!(r.index() as usize, i);
            assert_eq!(Resolution::from_name(name), Ok(r));
            assert_eq!(Resolution::from_name(&name.to_lowercase()), Ok(r));
            assert_eq!(Resolution::from_dimensions(w, h), Some(r));
            assert_eq!(Resolution::ALL[i], r);
        }
    }

    #[test]
    fn errors_name_field_value_and_range() {
        assert_eq!(
            Quality::new(70).unwrap_err().to_string(),
            "quality 70 out of range 0..=63"
        );
        assert_eq!(
            Brightness::new(-3).unwrap_err().to_string(),
            "brightness -3 out of range -2..=2"
        );
        assert_eq!(
            Resolution::from_index(13).unwrap_err().to_string(),
            "resolution 13 out of range 0..=12"
        );
        let e = Resolution::from_name("8K").unwrap_err().to_string();
        assert!(
            e.starts_with("resolution: invalid value \"8K\", expected"),
            "{e}"
        );
    }

    #[test]
    fn settings_json_round_trip() {
        let s = Settings {
            resolution: Resolution::Svga,
            quality: Quality::new(10).unwrap(),
            brightness: Brightness::new(-1).unwrap(),
            vflip: true,
            hmirror: false,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"resolution":7,"quality":10,"brightness":-1,"vflip":1,"hmirror":0}"#
        );
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
        let named: Settings = serde_json::from_str(
            r#"{"resolution":"SVGA","quality":10,"brightness":-1,"vflip":true,"hmirror":false}"#,
        )
        .unwrap();
        assert_eq!(named, s);
        let bad = serde_json::from_str::<Settings>(
            r#"{"resolution":7,"quality":99,"brightness":0,"vflip":0,"hmirror":0}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("quality 99 out of range 0..=63"), "{bad}");
        let bad_flag = serde_json::from_str::<Settings>(
            r#"{"resolution":7,"quality":9,"brightness":0,"vflip":0,"hmirror":2}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad_flag.contains("hmirror 2 out of range 0..=1"),
            "{bad_flag}"
        );
    }
}
