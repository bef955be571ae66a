//! Camera pin maps of the supported boards, selected at build time by `board` in `cfg.toml`.
//!
//! Pure data with no esp-idf types: `build.rs` includes this same file to reject an unknown
//! board name before anything is compiled. It must never hold behaviour.
//!
//! Pin numbers are ESP32-S3 GPIOs; `-1` means "not connected" (the driver then uses a
//! software reset / leaves the sensor powered). `d[0]..d[7]` are the sensor's data lines
//! D0..D7, called Y2..Y9 in Arduino's `camera_pins.h`.

/// The sensor wiring of one board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pins {
    /// Power-down line, active high (`-1`: tied low on the board).
    pub pwdn: i32,
    /// Reset line, active low (`-1`: the driver resets the sensor over SCCB).
    pub reset: i32,
    /// Clock output to the sensor.
    pub xclk: i32,
    /// SCCB (I²C) data.
    pub sda: i32,
    /// SCCB (I²C) clock.
    pub scl: i32,
    /// Data lines D0..D7 (Y2..Y9).
    pub d: [i32; 8],
    /// Vertical sync.
    pub vsync: i32,
    /// Horizontal reference.
    pub href: i32,
    /// Pixel clock.
    pub pclk: i32,
}

/// One supported board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// The name used in `cfg.toml`.
    pub name: &'static str,
    /// What to look for on the silkscreen or the shop page.
    pub description: &'static str,
    /// Sensor wiring.
    pub pins: Pins,
    /// Default XCLK in Hz (`xclk_mhz` in `cfg.toml` overrides it).
    pub xclk_hz: u32,
}

/// Freenove ESP32-S3-WROOM CAM. Source: Freenove's own sketch
/// `Freenove_ESP32_S3_WROOM_Board/C/Sketches/Sketch_07.1_CameraWebServer` (`board_config.h`
/// selects `CAMERA_MODEL_ESP32S3_EYE`; `camera_pins.h` also lists it as `CAMERA_MODEL_WROOM`
/// with the same GPIOs).
const FREENOVE_S3_PINS: Pins = Pins {
    pwdn: -1,
    reset: -1,
    xclk: 15,
    sda: 4,
    scl: 5,
    d: [11, 9, 8, 10, 12, 18, 17, 16],
    vsync: 6,
    href: 7,
    pclk: 13,
};

/// Every board espcam knows. Add a board by adding a row (and its source) here.
pub const BOARDS: &[Board] = &[
    // The seed's board: the widely sold "ESP32-S3-N16R8 CAM" / "ESP32-S3-WROOM-1 CAM" boards
    // with an OV3660 or OV2640 on a 24-pin FPC. They copy the Freenove / ESP32-S3-EYE camera
    // wiring (Arduino `CAMERA_MODEL_ESP32S3_EYE`, espressif/arduino-esp32
    // `libraries/ESP32/examples/Camera/CameraWebServer/camera_pins.h`). 24 MHz is the typical
    // XCLK of both sensors' datasheets (6-27 MHz) and gives 30 fps at VGA.
    Board {
        name: "generic-s3-n16r8",
        description: "generic ESP32-S3-N16R8 camera board, OV3660 or OV2640",
        pins: FREENOVE_S3_PINS,
        xclk_hz: 24_000_000,
    },
    // Espressif ESP32-S3-EYE (OV2640). Source: espressif/arduino-esp32 `camera_pins.h`,
    // `CAMERA_MODEL_ESP32S3_EYE` (same GPIOs as Freenove's board, listed in another order).
    // 20 MHz as in Espressif's CameraWebServer example.
    Board {
        name: "esp32s3-eye",
        description: "Espressif ESP32-S3-EYE",
        pins: FREENOVE_S3_PINS,
        xclk_hz: 20_000_000,
    },
    // Freenove ESP32-S3-WROOM CAM (N8R8, OV2640 or OV3660); source at FREENOVE_S3_PINS.
    // 20 MHz as in Freenove's sketch.
    Board {
        name: "freenove-s3-cam",
        description: "Freenove ESP32-S3-WROOM CAM",
        pins: FREENOVE_S3_PINS,
        xclk_hz: 20_000_000,
    },
    // Seeed Studio XIAO ESP32S3 Sense (OV2640, later OV3660). Source: espressif/arduino-esp32
    // `camera_pins.h`, `CAMERA_MODEL_XIAO_ESP32S3` (the model Seeed's camera examples select).
    // 20 MHz as in that CameraWebServer example.
    Board {
        name: "xiao-s3-sense",
        description: "Seeed Studio XIAO ESP32S3 Sense",
        pins: Pins {
            pwdn: -1,
            reset: -1,
            xclk: 10,
            sda: 40,
            scl: 39,
            d: [15, 17, 18, 16, 14, 12, 11, 48],
            vsync: 38,
            href: 47,
            pclk: 13,
        },
        xclk_hz: 20_000_000,
    },
];

/// The board called `name` in `cfg.toml`.
pub fn by_name(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}
