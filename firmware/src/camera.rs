//! The sensor seam: the esp32-camera driver in JPEG mode, and the core's [`Sensor`] trait on
//! top of the driver's `sensor_t` setters.
//!
//! Frame buffers live in PSRAM, two of them in grab-latest mode, so `esp_camera_fb_get`
//! always returns the newest frame and never one that waited in a queue. This module must
//! never decide which settings, when to capture or where a frame goes: the core does.

use core::ffi::{c_int, CStr};
use core::ptr::NonNull;

use esp_idf_svc::sys::{self, esp, EspError};
use espcam_camera::{CapturedFrame, Sensor, SensorError, Setting};
use espcam_proto::{Resolution, Settings};

use crate::boards::Board;

/// The initialised driver's sensor. One per boot: the driver is a C singleton.
pub struct CameraSensor {
    sensor: NonNull<sys::sensor_t>,
    /// Largest frame size this sensor makes; bigger requests are refused, not clamped.
    max: sys::framesize_t,
    name: &'static str,
}

/// A frame held by the application; dropping it hands the buffer back to the driver.
pub struct Frame(NonNull<sys::camera_fb_t>);

impl CameraSensor {
    /// Starts the driver on `board`'s pins and puts `settings` in force.
    pub fn init(board: &Board, xclk_hz: u32, settings: &Settings) -> Result<Self, EspError> {
        let p = &board.pins;
        let config = sys::camera_config_t {
            pin_pwdn: p.pwdn,
            pin_reset: p.reset,
            pin_xclk: p.xclk,
            __bindgen_anon_1: sys::camera_config_t__bindgen_ty_1 {
                pin_sccb_sda: p.sda,
            },
            __bindgen_anon_2: sys::camera_config_t__bindgen_ty_2 {
                pin_sccb_scl: p.scl,
            },
            pin_d0: p.d[0],
            pin_d1: p.d[1],
            pin_d2: p.d[2],
            pin_d3: p.d[3],
            pin_d4: p.d[4],
            pin_d5: p.d[5],
            pin_d6: p.d[6],
            pin_d7: p.d[7],
            pin_vsync: p.vsync,
            pin_href: p.href,
            pin_pclk: p.pclk,
            xclk_freq_hz: c_int::try_from(xclk_hz).unwrap_or(20_000_000),
            ledc_timer: sys::ledc_timer_t_LEDC_TIMER_0,
            ledc_channel: sys::ledc_channel_t_LEDC_CHANNEL_0,
            pixel_format: sys::pixformat_t_PIXFORMAT_JPEG,
            // Buffers are sized for the frame size given here and never grow: ask for the
            // largest (the driver clamps it to the sensor's maximum) so that a later
            // resolution command can never overflow them (FB-OVF).
            frame_size: sys::framesize_t_FRAMESIZE_QXGA,
            jpeg_quality: settings.quality.get().into(),
            fb_count: 2,
            fb_location: sys::camera_fb_location_t_CAMERA_FB_IN_PSRAM,
            grab_mode: sys::camera_grab_mode_t_CAMERA_GRAB_LATEST,
            ..Default::default()
        };
        esp!(unsafe { sys::esp_camera_init(&config) })?;
        let sensor = NonNull::new(unsafe { sys::esp_camera_sensor_get() })
            .ok_or_else(EspError::from_infallible::<{ sys::ESP_ERR_NOT_FOUND }>)?;
        // SAFETY: the driver owns `sensor` for the rest of the program; the info table and
        // its names are static data in flash.
        let info = unsafe { sys::esp_camera_sensor_get_info(&mut (*sensor.as_ptr()).id).as_ref() };
        let name = info.and_then(|i| unsafe { CStr::from_ptr(i.name) }.to_str().ok());
        let max = info.map_or(sys::framesize_t_FRAMESIZE_UXGA, |i| i.max_size);
        let name = name.unwrap_or("unknown");
        let mut cam = Self { sensor, max, name };
        let refused =
            |_: SensorError| EspError::from_infallible::<{ sys::ESP_ERR_INVALID_STATE }>();
        Setting::all(settings)
            .into_iter()
            .try_for_each(|s| cam.set(s).map_err(refused))?;
        Ok(cam)
    }

    /// The sensor model the driver detected, e.g. `OV3660`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// One setting through the driver's `sensor_t` setters, table-driven by the core
/// (`Setting::int_setter`, `driver_result`). Which settings change, in which order, and
/// undoing a half-applied change are the core's decisions.
impl Sensor for CameraSensor {
    fn set(&mut self, setting: Setting) -> Result<(), SensorError> {
        let p = self.sensor.as_ptr();
        // SAFETY: `p` is the driver's live sensor; its setters take it as first argument.
        let s = unsafe { &*p };
        let ret = match (setting, setting.int_setter()) {
            (_, Some((i, value))) => {
                let setters = [s.set_quality, s.set_brightness, s.set_vflip, s.set_hmirror];
                setters[i].map(|set| unsafe { set(p, value) })
            }
            // Frame sizes go through their own setter type (`framesize_t`), by name.
            (Setting::Resolution(r), _) if framesize(r) > self.max => {
                return Err(setting.refused("larger than this sensor's maximum"));
            }
            (Setting::Resolution(r), _) => {
                s.set_framesize.map(|set| unsafe { set(p, framesize(r)) })
            }
            (_, None) => None,
        };
        setting.driver_result(ret)
    }
}

/// The driver's `framesize_t` for `r`, by name: the driver's numbering is not the seed's.
fn framesize(r: Resolution) -> sys::framesize_t {
    match r {
        Resolution::Qqvga => sys::framesize_t_FRAMESIZE_QQVGA,
        Resolution::Qcif => sys::framesize_t_FRAMESIZE_QCIF,
        Resolution::Hqvga => sys::framesize_t_FRAMESIZE_HQVGA,
        Resolution::Qvga => sys::framesize_t_FRAMESIZE_QVGA,
        Resolution::Cif => sys::framesize_t_FRAMESIZE_CIF,
        Resolution::Hvga => sys::framesize_t_FRAMESIZE_HVGA,
        Resolution::Vga => sys::framesize_t_FRAMESIZE_VGA,
        Resolution::Svga => sys::framesize_t_FRAMESIZE_SVGA,
        Resolution::Xga => sys::framesize_t_FRAMESIZE_XGA,
        Resolution::Hd => sys::framesize_t_FRAMESIZE_HD,
        Resolution::Sxga => sys::framesize_t_FRAMESIZE_SXGA,
        Resolution::Uxga => sys::framesize_t_FRAMESIZE_UXGA,
        Resolution::Qxga => sys::framesize_t_FRAMESIZE_QXGA,
    }
}

/// The newest frame, or None when the driver timed out (it logs why: NO-SOI, FB-OVF, …).
pub fn grab() -> Option<Frame> {
    NonNull::new(unsafe { sys::esp_camera_fb_get() }).map(Frame)
}

impl Frame {
    fn fb(&self) -> &sys::camera_fb_t {
        // SAFETY: the driver does not touch a buffer between fb_get and fb_return.
        unsafe { self.0.as_ref() }
    }

    /// The frame as the core sees it. The driver stamps the first DMA transfer with
    /// `esp_timer` time, the same clock as [`crate::clock::now`].
    pub fn describe(&self) -> CapturedFrame {
        let fb = self.fb();
        let (sec, us) = (fb.timestamp.tv_sec as i64, fb.timestamp.tv_usec as i64);
        CapturedFrame::from_driver(sec, us, fb.width, fb.height, fb.len)
    }
}

/// The JPEG bytes, in place in PSRAM.
impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        unsafe { core::slice::from_raw_parts(self.fb().buf, self.fb().len) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        unsafe { sys::esp_camera_fb_return(self.0.as_ptr()) }
    }
}
